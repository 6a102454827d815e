"""Whether modules check their ports at run time.

Off by default (production speed); on when the environment variable ``BRICKWORK_CHECK``
is ``1`` (the test suite sets it) or inside ``with checking():``.

Example:
    >>> with checking():
    ...     checking_enabled()
    True
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator

_CHECKING: contextvars.ContextVar[bool | None] = contextvars.ContextVar("bw_checking", default=None)


def checking_enabled() -> bool:
    """True when run-time port checks are on in this context."""
    value = _CHECKING.get()
    if value is None:
        return os.environ.get("BRICKWORK_CHECK", "0") not in ("", "0", "false", "no")
    return value


@contextlib.contextmanager
def checking(enabled: bool = True) -> Iterator[None]:
    """Turn run-time port checks on (or off) inside a ``with`` block."""
    token = _CHECKING.set(enabled)
    try:
        yield
    finally:
        _CHECKING.reset(token)
