"""brickwork: build neural networks from typed, independently trained, reusable modules."""

from brickwork._version import __version__
from brickwork.errors import (
    BrickworkError,
    DataError,
    LayoutError,
    LoadError,
    PlanError,
    PortError,
    RegistryError,
    TrainingError,
    TypeMismatch,
)

__all__ = [
    "BrickworkError",
    "DataError",
    "LayoutError",
    "LoadError",
    "PlanError",
    "PortError",
    "RegistryError",
    "TrainingError",
    "TypeMismatch",
    "__version__",
]
