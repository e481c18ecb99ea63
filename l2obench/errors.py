"""Errors that l2obench reports to a user as a message, not a traceback."""

from __future__ import annotations


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
