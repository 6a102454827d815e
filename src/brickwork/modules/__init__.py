"""Typed modules: ``torch.nn.Module``s with declared, typed ports (thesis §3.1, §4.2).

Example:
    >>> import torch, brickwork.modules as bm
    >>> bm.And.min("b n")(torch.tensor([[0.3]]), torch.tensor([[0.6]]))
    tensor([[0.3000]])
"""

from brickwork.modules.checking import checking, checking_enabled
from brickwork.modules.signature import Signature
from brickwork.modules.kinds import KindInfo, build, kind_info, register_kind, registered_kinds
from brickwork.modules.module import Module
from brickwork.modules.typed import Typed, typed
from brickwork.modules.ops import Adapter, And, Or, Sum
from brickwork.modules.io import (
    atomic_write_bytes,
    atomic_write_figure,
    atomic_write_json,
    load_module,
    read_card,
    save_module,
    sha256_bytes,
)

__all__ = [
    "Adapter",
    "And",
    "KindInfo",
    "Module",
    "Or",
    "Signature",
    "Sum",
    "Typed",
    "atomic_write_bytes",
    "atomic_write_figure",
    "atomic_write_json",
    "build",
    "checking",
    "checking_enabled",
    "kind_info",
    "load_module",
    "read_card",
    "register_kind",
    "registered_kinds",
    "save_module",
    "sha256_bytes",
    "typed",
]
