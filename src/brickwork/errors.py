"""The one exception hierarchy of brickwork.

Every error says where (layout, node, port, file, index), what was found, what was
expected, and how to fix it. The CLI shows the message without a traceback.

Example:
    >>> from brickwork.errors import BrickworkError, LayoutError
    >>> issubclass(LayoutError, BrickworkError)
    True
"""

from __future__ import annotations


class BrickworkError(Exception):
    """Root of every error brickwork raises on purpose."""


class TypeMismatch(BrickworkError):
    """A value or a type does not fit the neural data type a port declares."""


class PortError(BrickworkError):
    """A module's declared ports disagree with its ``forward`` or with a call."""


class LayoutError(BrickworkError):
    """A layout cannot be built: an edge does not type-check, a node is unknown, a cycle."""


class LoadError(BrickworkError):
    """Saved weights or metadata are missing, altered, of an unknown kind, or unsafe."""


class DataError(BrickworkError):
    """Input data (a file, a list, a program) is malformed."""


class PlanError(BrickworkError):
    """A training plan cannot be derived: a cycle, an input nothing provides."""


class TrainingError(BrickworkError):
    """Training could not run or resume as asked."""


class RegistryError(BrickworkError):
    """The module registry refused an operation (unknown entry, corrupt blob, bad name)."""


class AgentError(BrickworkError):
    """An agent or operator was misused (unknown field, missing operator)."""


__all__ = [
    "AgentError",
    "BrickworkError",
    "DataError",
    "LayoutError",
    "LoadError",
    "PlanError",
    "PortError",
    "RegistryError",
    "TrainingError",
    "TypeMismatch",
]
