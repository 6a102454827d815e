"""Registry entry names: ``kind.tag`` (``find.red-sgm-v1``), validated strictly, and
references to one version of an entry: ``kind.tag`` (latest), ``kind.tag@3`` (version 3),
``kind.tag@production`` (an alias).

A name becomes a file name inside the registry, so anything that could escape the
registry folder (``/``, ``\\``, ``..``, a leading dot, control characters) is refused.

Example:
    >>> validate_name("find.red-sgm-v1")
    ('find', 'red-sgm-v1')
    >>> validate_name("../etc.passwd")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    brickwork.errors.RegistryError: ...
    >>> parse_ref("find.red@3"), parse_ref("find.red@production"), parse_ref("find.red")
    (('find.red', 3), ('find.red', 'production'), ('find.red', None))
"""

from __future__ import annotations

import re

from brickwork.errors import RegistryError
from brickwork.layouts.node import split_module_name

_KIND = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
_TAG = r"[A-Za-z0-9](?:[A-Za-z0-9_-]|\.(?!\.)){0,127}"
_NAME = re.compile(rf"^({_KIND})\.({_TAG})$")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
LATEST = "latest"


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
            "'-' and single dots; no '/', '\\\\', '..' or spaces. Example: 'find.red-sgm-v1'"
        )
    return m.group(1), m.group(2)


def module_name_to_tag(module_name: str) -> str:
    """The registry tag of a layout module: its ``[arg]`` (``find[red]`` → ``red``), else
    its whole name (``sum_a`` → ``sum_a``), made tag-safe; so two modules of one kind
    never share a registry name. The one place that turns module names into tags.

    Example:
        >>> module_name_to_tag("filter_color[red]"), module_name_to_tag("encoder")
        ('red', 'encoder')
        >>> module_name_to_tag("f[a b]"), module_name_to_tag("f[!]"), module_name_to_tag("?")
        ('a-b', 'f', 'default')
    """
    fn, arg = split_module_name(module_name)
    safe = _tag_safe(arg) if arg is not None else ""
    return safe or _tag_safe(fn) or "default"


def _tag_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-_")


def validate_alias(alias: object) -> str:
    """Check an alias name (``production``, ``best-v2``); ``latest`` is implicit.

    Raises:
        RegistryError: not letters, digits, ``_`` and ``-`` starting with a letter, or
            the reserved ``latest``.

    Example:
        >>> validate_alias("production")
        'production'
    """
    if not isinstance(alias, str) or _ALIAS.match(alias) is None:
        raise RegistryError(
            f"alias {alias!r} is invalid: expected letters, digits, '_' and '-' starting with "
            "a letter (at most 64 characters), e.g. 'production'; a version is written @3"
        )
    if alias == LATEST:
        raise RegistryError(
            "alias 'latest' is implicit (always the newest version) and "
            "cannot be set; choose another alias name, e.g. 'production'"
        )
    return alias


def parse_ref(ref: object) -> tuple[str, int | str | None]:
    """Split a reference into ``(name, selector)``.

    ``selector`` is ``None`` for ``kind.tag`` (the latest version), an ``int`` for
    ``kind.tag@3`` and the alias text for ``kind.tag@production`` (``@latest`` gives
    ``None`` too).

    Raises:
        RegistryError: an invalid name, version or alias.

    Example:
        >>> parse_ref("And.min-v1@latest")
        ('And.min-v1', None)
    """
    if not isinstance(ref, str):
        raise RegistryError(f"registry reference must be a string, got {type(ref).__name__}")
    name, at, selector = ref.partition("@")
    validate_name(name)
    if not at:
        return name, None
    if selector.isdigit() and selector.isascii():
        version = int(selector)
        if version < 1:
            raise RegistryError(f"registry reference {ref!r}: versions start at 1")
        return name, version
    if selector == LATEST:
        return name, None
    try:
        return name, validate_alias(selector)
    except RegistryError as exc:
        raise RegistryError(
            f"registry reference {ref!r}: after '@' write a version number "
            f"(@3) or an alias (@production); {exc}"
        ) from None
