"""Named registries of problems and methods.

Every problem and method is found through an entry-point group (``l2obench.problems``,
``l2obench.methods``) whose entries point at the class: l2obench's own built-ins are declared in
its ``pyproject.toml`` exactly as a third-party package declares its plugins, so a new built-in is
one module plus one line there (and ``pip install -e .`` to refresh the installed metadata). A
class is imported only when its name is first asked for, so validating a suite imports just the
methods it names. Classes can also be registered in code with the :meth:`Registry.register`
decorator (tests, notebooks). An unknown name raises an error that lists every valid name.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from importlib.metadata import EntryPoint, entry_points
from typing import Generic, TypeVar

from l2obench.errors import L2OBenchError, UnknownNameError, did_you_mean

log = logging.getLogger(__name__)

T = TypeVar("T", bound=type)

#: The distribution whose entry points are the built-ins.
OWN_DISTRIBUTION = "l2obench"


class Registry(Generic[T]):
    """A mapping from names to classes, filled from entry points and by decorator."""

    def __init__(self, kind: str, group: str) -> None:
        self.kind = kind
        self.group = group
        self._items: dict[str, T] = {}
        self._broken: set[str] = set()

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator: register the class under ``name`` and set its ``name`` attribute."""

        def decorator(cls: T) -> T:
            self._add(name, cls)
            return cls

        return decorator

    def _add(self, name: str, cls: T) -> None:
        existing = self._items.get(name)
        if existing is not None and existing is not cls:
            raise L2OBenchError(
                f"{self.kind} '{name}' is registered twice: "
                f"{existing.__module__}.{existing.__qualname__} and "
                f"{cls.__module__}.{cls.__qualname__}"
            )
        setattr(cls, "name", name)  # noqa: B010 (T is any class; the attribute is declared by its base)
        self._items[name] = cls

    def unregister(self, name: str) -> None:
        """Forget a class registered in this process with :meth:`register` (a test's or a
        notebook's); entry points stay."""
        self._items.pop(name, None)

    @functools.cached_property
    def _entry_points(self) -> dict[str, EntryPoint]:
        """The group's entry points by name; l2obench's own win over a plugin's of that name."""
        found: dict[str, EntryPoint] = {}
        for ep in entry_points(group=self.group):
            if ep.name in found and _distribution(found[ep.name]) == OWN_DISTRIBUTION:
                log.warning("%s plugin '%s' (%s) is hidden by l2obench's built-in of that name",
                            self.kind, ep.name, ep.value)
                continue
            found[ep.name] = ep
        return found

    def _load(self, name: str) -> T | None:
        """The class of entry point ``name`` (imported now), or ``None`` if it cannot load."""
        ep = self._entry_points.get(name)
        if ep is None or name in self._broken:
            return None
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin must not break l2obench
            log.warning("could not load %s '%s' (%s): %s", self.kind, name, ep.value, exc)
            self._broken.add(name)
            return None
        self._add(name, cls)
        return cls

    def get(self, name: str) -> T:
        """The class registered as ``name``; the error lists the valid names."""
        cls = self._items.get(name) or self._load(name)
        if cls is None:
            valid = ", ".join(self.names()) or "(none)"
            raise UnknownNameError(f"unknown {self.kind} '{name}'"
                                   f"{did_you_mean(name, self.names())}; valid: {valid}")
        return cls

    def names(self) -> list[str]:
        """All registered names, sorted (without importing any class)."""
        return sorted((set(self._items) | set(self._entry_points)) - self._broken)

    def builtin_modules(self) -> list[str]:
        """The modules that define l2obench's own entries (what a fork server preloads)."""
        modules = {ep.module for ep in self._entry_points.values()
                   if _distribution(ep) == OWN_DISTRIBUTION}
        return sorted(modules)

    def __iter__(self) -> Iterator[tuple[str, T]]:
        """Every ``(name, class)``, importing each class; broken plugins are left out."""
        for name in self.names():
            cls = self._items.get(name) or self._load(name)
            if cls is not None:
                yield name, cls

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()


def _distribution(ep: EntryPoint) -> str | None:
    dist = getattr(ep, "dist", None)
    return None if dist is None else dist.name
