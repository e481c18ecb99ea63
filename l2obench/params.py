"""Declared parameters: types, defaults and ranges, validated before anything runs.

Problems and methods declare their parameters as a mapping ``name -> Param``; a suite or the
command line gives values, and :func:`validate_params` checks and completes them so that a typo
or an out-of-range value is refused with a message before a single cell starts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from l2obench.errors import ParameterError, did_you_mean, shown

_TYPE_NAMES = {bool: "bool", int: "int", float: "float", str: "str"}


@dataclass(frozen=True)
class Param:
    """One declared parameter.

    ``low``/``high`` bound numbers (inclusive), ``choices`` restricts any type to listed values,
    ``nullable`` admits ``None`` (read as "no limit" or "not set" by its owner). ``omit_default``
    leaves the parameter out of a cell's configuration (and so of its id) while it has its
    default value: for a parameter added to a method whose cells were already recorded, so that
    those cells keep their ids (the method fills the default in).
    """

    type: type
    default: Any
    doc: str = ""
    low: float | None = None
    high: float | None = None
    choices: Sequence[Any] | None = None
    nullable: bool = False
    omit_default: bool = False

    def describe(self) -> str:
        """A one-line human description: type, default and range."""
        parts = [f"{_TYPE_NAMES.get(self.type, self.type.__name__)} = {self.default!r}"]
        if self.choices is not None:
            parts.append("one of " + ", ".join(repr(c) for c in self.choices))
        if self.low is not None and self.high is not None:
            parts.append(f"in [{_number(self.low)}, {_number(self.high)}]")
        elif self.low is not None:
            parts.append(f"≥ {_number(self.low)}")
        elif self.high is not None:
            parts.append(f"≤ {_number(self.high)}")
        return "; ".join(parts)

    def coerce(self, owner: str, name: str, value: Any) -> Any:
        """Return ``value`` converted to this parameter's type, or raise ParameterError."""
        where = f"{owner}: parameter '{name}'"
        if value is None:
            if self.nullable:
                return None
            raise ParameterError(f"{where} may not be empty (expected {self.describe()})")
        value = _convert(self.type, value, where)
        if self.choices is not None and value not in self.choices:
            valid = ", ".join(repr(c) for c in self.choices)
            hint = did_you_mean(value, map(str, self.choices)) if isinstance(value, str) else ""
            raise ParameterError(f"{where} = {shown(value)} is not one of: {valid}{hint}")
        if self.type in (int, float):
            if self.low is not None and value < self.low:
                raise ParameterError(f"{where} = {shown(value)} is below its minimum {self.low:g}")
            if self.high is not None and value > self.high:
                raise ParameterError(f"{where} = {shown(value)} is above its maximum {self.high:g}")
        return value


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"


def _convert(kind: type, value: Any, where: str) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "false"}:
            return value.lower() == "true"
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isfinite(value):
                return float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if math.isfinite(number):
                return number
    elif kind is str:
        if isinstance(value, str):
            return value
    else:
        raise TypeError(f"unsupported parameter type {kind!r}")
    raise ParameterError(f"{where} = {shown(value)} is not a valid {_TYPE_NAMES[kind]}")


def validate_params(
    owner: str, declared: Mapping[str, Param], given: Mapping[str, Any]
) -> dict[str, Any]:
    """Check ``given`` against ``declared`` and return the full parameter set with defaults."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        valid = ", ".join(sorted(declared)) or "(none)"
        hint = did_you_mean(unknown[0], declared) if len(unknown) == 1 else ""
        raise ParameterError(
            f"{owner}: unknown parameter(s) {', '.join(map(shown, unknown))}{hint}; valid: {valid}"
        )
    return {
        name: param.coerce(owner, name, given.get(name, param.default))
        for name, param in declared.items()
    }


def cell_params(declared: Mapping[str, Param], values: Mapping[str, Any]) -> dict[str, Any]:
    """Validated ``values`` as a cell records them: without the ``omit_default`` parameters that
    have their default value."""
    return {
        name: value for name, value in values.items()
        if not (declared[name].omit_default and value == declared[name].default)
    }


def format_value(value: Any) -> str:
    """Short, stable text for a parameter value in a cell name."""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def readable_name(name: str, params: Mapping[str, Any]) -> str:
    """``name[key=value,...]`` with keys sorted; just ``name`` when there are none."""
    if not params:
        return name
    inner = ",".join(f"{k}={format_value(params[k])}" for k in sorted(params))
    return f"{name}[{inner}]"
