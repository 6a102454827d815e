"""The registry of module kinds: kind name -> factory (the one builder funnel).

A module kind is anything that rebuilds a module from a JSON config:
``factory(**config) -> Module``. Saved modules name their kind, and loading rebuilds
them through this registry. Contract tests run over every registered kind.

Example:
    >>> import brickwork.modules as bm
    >>> "And" in bm.registered_kinds()
    True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from brickwork.errors import LoadError


@dataclass(frozen=True)
class KindInfo:
    """Registry metadata of a module kind.

    Attributes:
        name: the kind's name, as written in ``config.json``.
        factory: builds a module from its config.
        example_config: a small config the contract tests build (JSON-serialisable).
        sizes: axis sizes the contract tests use for example inputs.
        description: one line for listings.
    """

    name: str
    factory: Callable[..., Any]
    example_config: dict[str, Any] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    description: str = ""


_KINDS: dict[str, KindInfo] = {}


def register_kind(name: str, *, example_config: dict[str, Any] | None = None,
                  sizes: dict[str, int] | None = None,
                  description: str = "") -> Callable[[Any], Any]:
    """Class/function decorator registering a module kind under ``name``.

    Registering the same name twice with a different factory is refused, so two
    libraries cannot silently shadow each other's kinds.
    """

    def deco(factory: Any) -> Any:
        old = _KINDS.get(name)
        if old is not None and getattr(old.factory, "__qualname__", None) != getattr(
                factory, "__qualname__", None):
            raise LoadError(f"module kind {name!r} is already registered by "
                            f"{old.factory!r}; choose another name")
        _KINDS[name] = KindInfo(name, factory, dict(example_config or {}), dict(sizes or {}),
                                description or (factory.__doc__ or "").strip().split("\n")[0])
        if isinstance(factory, type):
            factory.kind_name = name
        return factory

    return deco


def kind_info(name: str) -> KindInfo:
    """The registry entry for ``name``.

    Raises:
        LoadError: unknown kind (the message lists the known ones and how to register).
    """
    info = _KINDS.get(name)
    if info is None:
        raise LoadError(
            f"unknown module kind {name!r}; known kinds: {sorted(_KINDS)}. Import the "
            "module that defines it, or register it with @brickwork.modules.register_kind")
    return info


def registered_kinds() -> dict[str, KindInfo]:
    """Every registered module kind by name."""
    return dict(_KINDS)


def build(kind: str, config: dict[str, Any] | None = None) -> Any:
    """Build a module of a registered kind from its config."""
    info = kind_info(kind)
    try:
        return info.factory(**(config or {}))
    except TypeError as exc:
        raise LoadError(f"module kind {kind!r} cannot be built from config {config!r}: {exc}") from None
