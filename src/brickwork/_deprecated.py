"""Deprecated names: one mechanism for every package (a module ``__getattr__`` that warns).

Example:
    >>> import warnings
    >>> getattr_ = deprecated_names("pkg", {"old": ("new", lambda: 42)})
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     value = getattr_("old")
    >>> value, str(caught[0].message)
    (42, 'pkg.old is deprecated; use new')
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any


def deprecated_names(
    module: str, names: Mapping[str, tuple[str, Callable[[], Any]]], *, why: str = ""
) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` serving ``old -> (new name, getter)`` with a
    :class:`DeprecationWarning` naming the new name (and ``why``)."""

    def __getattr__(name: str) -> Any:
        if name in names:
            new, get = names[name]
            warnings.warn(
                f"{module}.{name} is deprecated; use {new}" + (f" ({why})" if why else ""),
                DeprecationWarning,
                stacklevel=2,
            )
            return get()
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
