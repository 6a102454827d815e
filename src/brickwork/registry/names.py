"""Registry entry names: ``kind.tag`` (``find.red-sgm-v1``), validated strictly.

A name becomes a file name inside the registry, so anything that could escape the
registry folder (``/``, ``\\``, ``..``, a leading dot, control characters) is refused.

Example:
    >>> validate_name("find.red-sgm-v1")
    ('find', 'red-sgm-v1')
    >>> validate_name("../etc.passwd")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    brickwork.errors.RegistryError: ...
"""

from __future__ import annotations

import re

from brickwork.errors import RegistryError

_KIND = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
_TAG = r"[A-Za-z0-9](?:[A-Za-z0-9_-]|\.(?!\.)){0,127}"
_NAME = re.compile(rf"^({_KIND})\.({_TAG})$")


def validate_name(name: object) -> tuple[str, str]:
    """Check a registry name and split it into ``(kind, tag)``.

    Raises:
        RegistryError: the name is not ``kind.tag`` with the allowed characters.
    """
    if not isinstance(name, str):
        raise RegistryError(f"registry name must be a string, got {type(name).__name__}")
    m = _NAME.match(name)
    if m is None or name.endswith("."):
        raise RegistryError(
            f"registry name {name!r} is invalid: expected 'kind.tag' where kind is letters, "
            "digits and '_' (starting with a letter or '_') and tag is letters, digits, '_', "
            "'-' and single dots; no '/', '\\\\', '..' or spaces. Example: 'find.red-sgm-v1'")
    return m.group(1), m.group(2)


def module_name_to_tag(module_name: str) -> str:
    """Turn a layout module name (``filter_color[red]``) into a tag-safe text (``red``).

    Example:
        >>> module_name_to_tag("filter_color[red]")
        'red'
        >>> module_name_to_tag("encoder")
        'default'
    """
    if "[" in module_name and module_name.endswith("]"):
        arg = module_name[module_name.index("[") + 1:-1]
        safe = re.sub(r"[^A-Za-z0-9_-]+", "-", arg).strip("-")
        return safe or "default"
    return "default"
