"""Deprecated alias of :mod:`brickwork.modules.factories` (the factory registry of module
kinds), renamed so it no longer reads like :class:`brickwork.layouts.Kinds`.

Example:
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", DeprecationWarning)
    ...     from brickwork.modules.kinds import kind_info
    >>> kind_info("And").name
    'And'
"""

import warnings

from brickwork.modules.factories import *  # noqa: F403
from brickwork.modules.factories import build_kind as build  # noqa: F401

warnings.warn(
    "brickwork.modules.kinds is deprecated: import brickwork.modules (or "
    "brickwork.modules.factories)",
    DeprecationWarning,
    stacklevel=2,
)
