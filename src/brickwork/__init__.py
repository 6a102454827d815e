"""brickwork: build neural networks from typed, independently trained, reusable modules.

The core (types, modules, layouts) is imported with the package; the heavier layers
(plan, registry, training, agent) load on first use.

Example:
    >>> import brickwork as bw
    >>> from brickwork.types import SoftMask
    >>> kinds = bw.Kinds(And=lambda: bw.modules.And.min("b n"))
    >>> bw.chain("And", kinds=kinds).inputs["a"] == SoftMask("b n")
    True
"""

from __future__ import annotations

import importlib
from typing import Any

from brickwork import layouts, modules, types
from brickwork._version import __version__
from brickwork.errors import (
    AgentError,
    BrickworkError,
    DataError,
    LayoutError,
    LoadError,
    PlanError,
    PortError,
    RegistryError,
    TrainingError,
    TypeMismatch,
)
from brickwork.layouts import Kinds, Layout, LayoutBuilder, Runner, chain, from_program
from brickwork.modules import Module, checking, load_module, register_kind, save_module, typed

_LAZY = {
    "plan": ("brickwork.plan", None),
    "registry": ("brickwork.registry", None),
    "training": ("brickwork.training", None),
    "agent": ("brickwork.agent", None),
    "DataSpec": ("brickwork.plan", "DataSpec"),
    "make_plan": ("brickwork.plan", "make_plan"),
    "Registry": ("brickwork.registry", "Registry"),
    "train_plan": ("brickwork.training", "train_plan"),
    "evaluate": ("brickwork.training", "evaluate"),
    "predict": ("brickwork.training", "predict"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module_name, attr = _LAZY[name]
        module = importlib.import_module(module_name)
        return module if attr is None else getattr(module, attr)
    raise AttributeError(f"module 'brickwork' has no attribute {name!r}")


__all__ = [
    "AgentError",
    "BrickworkError",
    "DataError",
    "DataSpec",
    "Kinds",
    "Layout",
    "LayoutBuilder",
    "LayoutError",
    "LoadError",
    "Module",
    "PlanError",
    "PortError",
    "Registry",
    "RegistryError",
    "Runner",
    "TrainingError",
    "TypeMismatch",
    "__version__",
    "chain",
    "checking",
    "evaluate",
    "from_program",
    "layouts",
    "load_module",
    "make_plan",
    "modules",
    "predict",
    "register_kind",
    "save_module",
    "train_plan",
    "typed",
    "types",
]
