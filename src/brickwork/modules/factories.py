"""The factory registry: kind name -> the factory that builds a module of that kind from
its JSON config (the one builder funnel). Not to be confused with
:class:`brickwork.layouts.Kinds`, a layout's vocabulary of module *instances*.

A module kind is anything that rebuilds a module from a JSON config:
``factory(**config) -> Module``. Saved modules name their kind and the importable
module that defines it; loading rebuilds them through this registry, importing the
defining module only when the user allows it (see :func:`allowed_kind_modules`).
Contract tests run over every registered kind.

Example:
    >>> import brickwork.modules as bm
    >>> "And" in bm.registered_kinds()
    True
    >>> bm.build_kind("And", {"mode": "min", "axes": "b n"}).mode
    'min'
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from brickwork.errors import LoadError
from brickwork.modules.module import Module

log = logging.getLogger(__name__)

#: the entry-point group an installed package declares its kind modules under
ENTRY_POINT_GROUP = "brickwork.kinds"

_MODULE_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


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

    @property
    def module_path(self) -> str:
        """The importable module that defines the factory (recorded in ``config.json``)."""
        return str(getattr(self.factory, "__module__", "") or "")


_KINDS: dict[str, KindInfo] = {}


def _identity(factory: Any) -> tuple[str, str]:
    return (str(getattr(factory, "__module__", "")), str(getattr(factory, "__qualname__", "")))


def register_kind(
    name: str,
    *,
    example_config: dict[str, Any] | None = None,
    sizes: dict[str, int] | None = None,
    description: str = "",
) -> Callable[[Any], Any]:
    """Class/function decorator registering a module kind under ``name``.

    Registering the same name twice with a different factory is refused, so two
    libraries cannot silently shadow each other's kinds. The same factory (same
    ``__module__`` and ``__qualname__``, e.g. after a module reload) may register again.

    Example:
        >>> from brickwork.modules import Module, register_kind
        >>> @register_kind("doc.noop")
        ... class Noop(Module):
        ...     pass
        >>> Noop.kind_name
        'doc.noop'
    """

    def deco(factory: Any) -> Any:
        old = _KINDS.get(name)
        if old is not None and _identity(old.factory) != _identity(factory):
            om, oq = _identity(old.factory)
            nm, nq = _identity(factory)
            raise LoadError(
                f"module kind {name!r} is already registered by {om}.{oq}; "
                f"{nm}.{nq} cannot take its name. Register it under another name "
                "(e.g. prefix it with your package: 'mypkg.find')"
            )
        _KINDS[name] = KindInfo(
            name,
            factory,
            dict(example_config or {}),
            dict(sizes or {}),
            description or (factory.__doc__ or "").strip().split("\n")[0],
        )
        if isinstance(factory, type) and issubclass(factory, Module):
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
            "module that defines it (imports=['pkg.mod'] in Python, --import pkg.mod on the "
            "CLI), or register it with @brickwork.modules.register_kind"
        )
    return info


def registered_kinds() -> dict[str, KindInfo]:
    """Every registered module kind by name."""
    return dict(_KINDS)


def kind_module_path(module: Any) -> str:
    """The importable module path that defines ``module``'s kind (its registered
    factory's ``__module__``, else its class's)."""
    kind = getattr(module, "kind", None)
    info = _KINDS.get(kind) if isinstance(kind, str) else None
    if info is not None:
        return info.module_path
    return type(module).__module__


# ----- the allow-list ------------------------------------------------------------------
def entry_point_modules() -> set[str]:
    """Modules that installed packages declare under the ``brickwork.kinds`` entry point.

    The entry point's value is a module path (``"pkg.kinds"``) or ``"pkg.kinds:attr"``.
    """
    found: set[str] = set()
    try:
        eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception as exc:  # broken metadata of some installed distribution
        log.warning("reading the %r entry points failed: %s", ENTRY_POINT_GROUP, exc)
        return found
    for ep in eps:
        path = ep.value.split(":", 1)[0].strip()
        if _MODULE_PATH.match(path):
            found.add(path)
        else:
            log.warning(
                "entry point %r of group %r has a bad module path %r",
                ep.name,
                ENTRY_POINT_GROUP,
                ep.value,
            )
    return found


def allowed_kind_modules(imports: Iterable[str] = ()) -> set[str]:
    """The modules loading may import to find a kind: ``imports`` (what the user named)
    plus every module declared under the ``brickwork.kinds`` entry-point group.

    brickwork's own modules (``brickwork`` and ``brickwork.*``) and sub-modules of an
    allowed module are allowed too (see :func:`is_allowed_module`). A module path read
    from a downloaded file is never enough on its own.

    Example:
        >>> "my.kinds" in allowed_kind_modules(imports=["my.kinds"])
        True
    """
    return {str(m) for m in imports} | entry_point_modules()


def is_allowed_module(path: str, imports: Iterable[str] = ()) -> bool:
    """Whether loading may import ``path`` (see :func:`allowed_kind_modules`)."""
    if not isinstance(path, str) or not _MODULE_PATH.match(path):
        return False
    if path == "brickwork" or path.startswith("brickwork."):
        return True
    return any(path == a or path.startswith(a + ".") for a in allowed_kind_modules(imports))


def import_kinds(imports: Sequence[str]) -> None:
    """Import each module named in ``imports`` (registering the kinds it defines).

    Raises:
        LoadError: a name that is not a module path, or an import that fails.

    Example:
        >>> import_kinds(["brickwork.modules.ops"])
        >>> import_kinds(["no_such_pkg_xyz.kinds"])
        Traceback (most recent call last):
        ...
        brickwork.errors.LoadError: cannot import 'no_such_pkg_xyz.kinds' (named in imports /
        --import): No module named 'no_such_pkg_xyz'; install the package that provides it or
        fix the name
    """
    if isinstance(imports, str):
        imports = [imports]
    for name in imports:
        if not isinstance(name, str) or not _MODULE_PATH.match(name):
            raise LoadError(f"imports: {name!r} is not a module path like 'pkg.kinds'")
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise LoadError(
                f"cannot import {name!r} (named in imports / --import): {exc}; "
                "install the package that provides it or fix the name"
            ) from None
        except Exception as exc:
            raise LoadError(
                f"importing {name!r} (named in imports / --import) failed: "
                f"{type(exc).__name__}: {exc}"
            ) from None


def _import_entry_points() -> None:
    for path in sorted(entry_point_modules()):
        try:
            importlib.import_module(path)
        except Exception as exc:
            log.warning(
                "entry point module %r of group %r failed to import: %s",
                path,
                ENTRY_POINT_GROUP,
                exc,
            )


def resolve_kind(kind: str, module: str | None = None, imports: Sequence[str] = ()) -> KindInfo:
    """The :class:`KindInfo` of ``kind``, importing allowed modules to find it.

    Order: ``imports`` are imported first; then, when ``kind`` is still unknown,
    ``module`` (the path recorded in ``config.json``) if it is allowed; then every
    ``brickwork.kinds`` entry-point module.

    Raises:
        LoadError: the kind is unknown and no allowed module defines it; the message
            names the kind, the module and the fix.
    """
    if isinstance(imports, str):
        imports = [imports]
    import_kinds(list(imports))
    info = _KINDS.get(kind)
    if info is not None:
        if module and info.module_path and module != info.module_path:
            log.warning(
                "kind %r is recorded as defined in %r but registered by %r",
                kind,
                module,
                info.module_path,
            )
        return info
    if module:
        if is_allowed_module(module, imports):
            try:
                importlib.import_module(module)
            except Exception as exc:
                raise LoadError(
                    f"module kind {kind!r}: importing its module {module!r} failed "
                    f"({type(exc).__name__}: {exc}); install the package that "
                    "provides it"
                ) from None
        else:
            _import_entry_points()
            if kind in _KINDS:
                return _KINDS[kind]
            raise LoadError(
                f"unknown module kind {kind!r}: it is defined in module {module!r}, which is "
                "not allowed to be imported (a module path read from a file is never "
                f"imported on its own). If you trust it, pass --import {module} (CLI) or "
                f"imports=[{module!r}] (Python), or declare it under the "
                f"'{ENTRY_POINT_GROUP}' entry point of its package"
            )
    if kind not in _KINDS:
        _import_entry_points()
    if kind not in _KINDS:
        where = f" (recorded module {module!r})" if module else ""
        raise LoadError(
            f"unknown module kind {kind!r}{where}; known kinds: {sorted(_KINDS)}. Pass "
            "--import pkg.mod (CLI) or imports=['pkg.mod'] (Python) naming the module that "
            f"defines it, or declare it under the '{ENTRY_POINT_GROUP}' entry point"
        )
    return _KINDS[kind]


def _shape_problems(
    kind: str, expect: Mapping[str, Sequence[int]], got: Mapping[str, Sequence[int]]
) -> str:
    missing = sorted(set(got) - set(expect))
    unexpected = sorted(set(expect) - set(got))
    mismatched = [
        f"{k}: weights {tuple(expect[k])}, config builds {tuple(got[k])}"
        for k in sorted(set(expect) & set(got))
        if tuple(expect[k]) != tuple(got[k])
    ]
    parts = []
    if missing:
        parts.append(f"missing from the weights {missing}")
    if unexpected:
        parts.append(f"unexpected in the weights {unexpected}")
    if mismatched:
        parts.append(
            "shape mismatch "
            + "; ".join(mismatched[:5])
            + (f" (+{len(mismatched) - 5} more)" if len(mismatched) > 5 else "")
        )
    return ", ".join(parts)


def _call(info: KindInfo, kind: str, config: Mapping[str, Any]) -> Any:
    try:
        return info.factory(**config)
    except TypeError as exc:
        raise LoadError(
            f"module kind {kind!r} cannot be built from config {dict(config)!r}: {exc}"
        ) from None


def build_kind(
    kind: str,
    config: dict[str, Any] | None = None,
    *,
    module: str | None = None,
    imports: Sequence[str] = (),
    device: str | torch.device | None = None,
    expect_shapes: Mapping[str, Sequence[int]] | None = None,
) -> Any:
    """Build a module of a registered kind from its config.

    Args:
        kind: the kind's registered name.
        config: the factory's keyword arguments.
        module: the module path that defines the kind (from ``config.json``); imported
            only when allowed (see :func:`allowed_kind_modules`).
        imports: module paths the caller trusts; imported first.
        device: where the module is built (default: torch's default device).
        expect_shapes: ``{tensor name: shape}`` the state dict must have (e.g. from a
            safetensors header). The module is first built on the ``meta`` device (no
            memory) and compared, so a config that disagrees with the weights is refused
            before any real allocation.

    Raises:
        LoadError: unknown or disallowed kind, a config the factory rejects, or state
            dict shapes that differ from ``expect_shapes``.

    Example:
        >>> build_kind("Adapter", {"fn": "sigmoid", "axes": "b n"}, expect_shapes={}).fn
        'sigmoid'
    """
    info = resolve_kind(kind, module, imports)
    config = dict(config or {})
    real = None
    if expect_shapes is not None:
        try:
            with torch.device("meta"):
                probe = _call(info, kind, config)
        except LoadError:
            raise
        except Exception as exc:  # a factory that cannot run on meta: check after building
            log.warning(
                "kind %r cannot be built on the meta device (%s: %s); its shapes are "
                "checked after building it for real",
                kind,
                type(exc).__name__,
                exc,
            )
            probe = real = _build_on(info, kind, config, device)
        state = probe.state_dict() if isinstance(probe, torch.nn.Module) else {}
        got = {k: tuple(v.shape) for k, v in state.items()}
        del probe, state
        problems = _shape_problems(kind, expect_shapes, got)
        if problems:
            raise LoadError(
                f"module kind {kind!r} with config {config!r} does not fit the "
                f"weights: {problems}; the config or the weights were altered"
            )
    return real if real is not None else _build_on(info, kind, config, device)


def _build_on(
    info: KindInfo, kind: str, config: Mapping[str, Any], device: str | torch.device | None
) -> Any:
    if device is None:
        return _call(info, kind, config)
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise LoadError(
            f"module kind {kind!r}: bad device {device!r} ({exc}); use 'cpu', "
            "'cuda', 'cuda:N', 'mps' or 'meta'"
        ) from None
    with dev:
        module = _call(info, kind, config)
    if isinstance(module, torch.nn.Module):
        module.to(dev)  # tensors a factory made on an explicit device follow too
    return module
