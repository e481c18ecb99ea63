"""Named registries of problems and methods.

Built-in classes register themselves with a decorator when their module is imported (the
registry imports its built-in modules on first use); third-party packages add theirs through
an entry-point group (``l2obench.problems``, ``l2obench.methods``) whose entries point at the
class, so a separately installed package extends l2obench without editing it. An unknown name
raises an error that lists every valid name.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterator, Sequence
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from l2obench.errors import L2OBenchError, UnknownNameError

log = logging.getLogger(__name__)

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    """A mapping from names to classes, filled by decorator and by entry points."""

    def __init__(self, kind: str, group: str, builtins: Sequence[str] = ()) -> None:
        self.kind = kind
        self.group = group
        self.builtins = tuple(builtins)
        self._items: dict[str, T] = {}
        self._loaded = False

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
        cls.name = name
        self._items[name] = cls

    def _load(self) -> None:
        """Import the built-in modules, then the entry-point plugins (once)."""
        if self._loaded:
            return
        self._loaded = True
        for module in self.builtins:
            importlib.import_module(module)
        for ep in entry_points(group=self.group):
            if ep.name in self._items:
                continue
            try:
                cls = ep.load()
            except Exception as exc:  # a broken plugin must not break l2obench
                log.warning("could not load %s plugin '%s' (%s): %s",
                            self.kind, ep.name, ep.value, exc)
                continue
            self._add(ep.name, cls)

    def get(self, name: str) -> T:
        """The class registered as ``name``; the error lists the valid names."""
        self._load()
        try:
            return self._items[name]
        except KeyError:
            valid = ", ".join(self.names()) or "(none)"
            raise UnknownNameError(f"unknown {self.kind} '{name}'; valid: {valid}") from None

    def names(self) -> list[str]:
        """All registered names, sorted."""
        self._load()
        return sorted(self._items)

    def __iter__(self) -> Iterator[tuple[str, T]]:
        for name in self.names():
            yield name, self._items[name]

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items
