"""``Kinds``: the vocabulary that turns module names into shared module instances."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

from brickwork.errors import LayoutError
from brickwork.layouts.node import split_module_name
from brickwork.modules import Module, Signature


class Kinds(nn.Module):
    """Module factories by kind, and the shared instance for every module name.

    ``Kinds(filter=Find, And=lambda: And.min())`` maps a kind to a factory called with
    no argument, or with the instance's argument (``"red"``) when it takes one. A
    program function maps to a kind of the same name unless ``functions`` says
    otherwise (``functions={"filter_color": "filter"}``): then ``filter_color[red]`` is an
    instance of kind ``filter``, and all such instances run batched together. Being an
    ``nn.Module``, a ``Kinds`` holds every instance's parameters (``kinds.parameters()``).

    Example:
        >>> from brickwork.modules import And
        >>> kinds = Kinds(And=lambda: And.min("b n"))
        >>> kinds.module("And") is kinds.module("And")
        True
    """

    def __init__(
        self,
        factories: Mapping[str, Callable[..., Module]] | None = None,
        *,
        functions: Mapping[str, str] | None = None,
        **more: Callable[..., Module],
    ):
        super().__init__()
        self._factories: dict[str, Callable[..., Module]] = {**(factories or {}), **more}
        self._functions = dict(functions or {})
        self.instances = nn.ModuleDict()
        self._names: dict[str, str] = {}  # module name -> ModuleDict key

    def kinds(self) -> list[str]:
        """The kinds this vocabulary knows."""
        return sorted(self._factories)

    def kind_for(self, function: str) -> str:
        """The kind that runs a program function."""
        return self._functions.get(function, function)

    def knows(self, module_name: str) -> bool:
        fn, _ = split_module_name(module_name)
        return module_name in self._names or self.kind_for(fn) in self._factories

    def add(self, module_name: str, module: Module) -> Module:
        """Register an existing module instance under ``module_name``.

        Only ``module_name`` gets this instance (the same name means the same weights).
        When the kind has no factory yet, later unseen names of the kind (``find[purple]``
        after ``find[blue]``) get a *fresh* module rebuilt from this one's class and
        config (:class:`Rebuild`), never this instance's weights; a module that cannot
        be rebuilt that way raises a :class:`LayoutError` naming the fix.

        Example:
            >>> from brickwork.modules import And
            >>> kinds = Kinds()
            >>> red = kinds.add("And[red]", And.min("b n"))
            >>> blue = kinds.module("And[blue]")
            >>> blue is red, blue.config == red.config
            (False, True)
        """
        if not isinstance(module, Module):
            raise LayoutError(
                f"module '{module_name}': expected a brickwork Module, got "
                f"{type(module).__name__}; wrap it with brickwork.typed(...)"
            )
        existing = self._names.get(module_name)
        if existing is not None and self.instances[existing] is not module:
            raise LayoutError(
                f"module name '{module_name}' already names another module; "
                "the same name means the same weights, pick another name"
            )
        key = existing or f"m{len(self._names)}"
        self.instances[key] = module
        self._names[module_name] = key
        fn, _ = split_module_name(module_name)
        kind = self.kind_for(fn)
        if kind not in self._factories:
            # never share this instance with other names: they get fresh modules
            self._factories[kind] = Rebuild(module, module_name, kind)
        return module

    def module(self, module_name: str) -> Module:
        """The shared instance for ``module_name`` (created on first use)."""
        key = self._names.get(module_name)
        if key is not None:
            return self.instances[key]  # type: ignore[return-value]
        fn, arg = split_module_name(module_name)
        kind = self.kind_for(fn)
        factory = self._factories.get(kind)
        if factory is None:
            raise LayoutError(
                f"no module kind '{kind}' for module '{module_name}'; known kinds: "
                f"{self.kinds()}. Add it: Kinds({kind}=factory)"
            )
        try:
            module = _call_factory(factory, arg)
        except LayoutError as exc:
            if isinstance(factory, Rebuild):
                raise LayoutError(f"module '{module_name}': {exc}") from None
            raise
        if not isinstance(module, Module):
            raise LayoutError(
                f"the factory of kind '{kind}' returned {type(module).__name__}, "
                "not a brickwork Module; wrap it with brickwork.typed(...)"
            )
        return self.add(module_name, module)

    def signature(self, module_name: str) -> Signature:
        return self.module(module_name).signature

    def names(self) -> list[str]:
        """Every module name instantiated so far."""
        return list(self._names)

    def items(self) -> Iterator[tuple[str, Module]]:
        for name, key in self._names.items():
            yield name, self.instances[key]  # type: ignore[misc]

    def forward(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - not callable
        raise LayoutError("Kinds holds modules; run layouts with brickwork.layouts.Runner")


class Rebuild:
    """The factory :meth:`Kinds.add` gives a kind that has none: a fresh module of the
    added module's class and config (through the kind registry when the kind is
    registered), on the same device. It holds no reference to the added module.
    """

    def __init__(self, template: Module, name: str, kind: str | None = None):
        self.kind = kind or template.kind
        self.module_kind = template.kind
        self.cls = type(template)
        self.config = template.config
        self.name = name
        first: torch.Tensor | None = next(iter(template.parameters()), None)
        if first is None:
            first = next(iter(template.buffers()), None)
        self.device = first.device if first is not None else None

    def __call__(self) -> Module:
        from brickwork.errors import BrickworkError
        from brickwork.modules import build_kind, registered_kinds

        info = registered_kinds().get(self.module_kind)
        try:
            if info is not None and info.factory is self.cls:
                module: Module = build_kind(self.module_kind, dict(self.config), device=self.device)
                return module
            if getattr(self.cls, "manual_config", False):
                raise LayoutError(f"a {self.cls.__name__} records no constructor config")
            if self.device is not None:
                with self.device:
                    return self.cls(**self.config).to(self.device)
            return self.cls(**self.config)
        except (BrickworkError, TypeError, ValueError) as exc:
            raise LayoutError(
                f"kind '{self.kind}' has no factory, only the instance added as "
                f"'{self.name}', and a fresh {self.cls.__name__} cannot be rebuilt from its "
                f"config {self.config!r} ({exc}). Give the kind a factory "
                f"(Kinds({self.kind}=factory)) or add every name you use "
                f"(kinds.add(name, module))"
            ) from None

    def __repr__(self) -> str:
        return f"Rebuild({self.cls.__name__}, {self.config!r})"


def _call_factory(factory: Callable[..., Module], arg: str | None) -> Module:
    try:
        params = [
            p
            for p in inspect.signature(factory).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
    except (TypeError, ValueError):
        params = []
    if arg is not None and params:
        return factory(arg)
    return factory()
