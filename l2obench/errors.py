"""Errors that l2obench reports to a user as a message, not a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


class L2OBenchError(Exception):
    """A problem with the user's input (suite file, name, parameter): shown as one message."""


class UnknownNameError(L2OBenchError, KeyError):
    """A name that is not in a registry; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ParameterError(L2OBenchError, ValueError):
    """A parameter that is unknown, of the wrong type or out of its range."""


class MissingExtraError(L2OBenchError, ImportError):
    """A method or backend whose optional dependency is not installed."""


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidates to a misspelt ``name``, or ``""``."""
    close = difflib.get_close_matches(name, list(candidates), n=2, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(f"'{c}'" for c in close) + "?)"


def clip(text: str, width: int = 60) -> str:
    """``text``, its middle elided past ``width`` characters: a message echoes what the user
    gave so it can be found, without repeating a huge value whole."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def shown(value: Any, width: int = 60) -> str:
    """``repr(value)`` for a message, clipped as :func:`clip` does."""
    return clip(repr(value), width)
