"""``Kinds``: the vocabulary that turns module names into shared module instances."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any

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

    def __init__(self, factories: Mapping[str, Callable[..., Module]] | None = None, *,
                 functions: Mapping[str, str] | None = None, **more: Callable[..., Module]):
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
        """Register an existing module instance under ``module_name``."""
        if not isinstance(module, Module):
            raise LayoutError(f"module '{module_name}': expected a brickwork Module, got "
                              f"{type(module).__name__}; wrap it with brickwork.typed(...)")
        existing = self._names.get(module_name)
        if existing is not None and self.instances[existing] is not module:
            raise LayoutError(f"module name '{module_name}' already names another module; "
                              "the same name means the same weights, pick another name")
        key = existing or f"m{len(self._names)}"
        self.instances[key] = module
        self._names[module_name] = key
        fn, _ = split_module_name(module_name)
        self._factories.setdefault(self.kind_for(fn), lambda: module)
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
            raise LayoutError(f"no module kind '{kind}' for module '{module_name}'; known kinds: "
                              f"{self.kinds()}. Add it: Kinds({kind}=factory)")
        module = _call_factory(factory, arg)
        if not isinstance(module, Module):
            raise LayoutError(f"the factory of kind '{kind}' returned {type(module).__name__}, "
                              "not a brickwork Module; wrap it with brickwork.typed(...)")
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


def _call_factory(factory: Callable[..., Module], arg: str | None) -> Module:
    try:
        params = [p for p in inspect.signature(factory).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                  and p.default is p.empty]
    except (TypeError, ValueError):
        params = []
    if arg is not None and params:
        return factory(arg)
    return factory()
