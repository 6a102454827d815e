"""Deprecated alias of :mod:`brickwork.training.fixtures` (the fixture kinds and the toy
NMN family), kept because plan files, saved cards and docs name it.

Importing it warns; the kinds it names are the fixtures' (one registration each).

Example:
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", DeprecationWarning)
    ...     from brickwork.training.examples import ToyFind
    >>> ToyFind.__module__
    'brickwork.training.fixtures'
"""

import warnings

from brickwork.training.fixtures import *  # noqa: F403
from brickwork.training.fixtures import __all__ as __all__

warnings.warn(
    "brickwork.training.examples is deprecated: import brickwork.training.fixtures",
    DeprecationWarning,
    stacklevel=2,
)
