"""Typed modules: ``torch.nn.Module``s with declared, typed ports (thesis §3.1, §4.2).

Example:
    >>> import torch, brickwork.modules as bm
    >>> bm.And.min("b n")(torch.tensor([[0.3]]), torch.tensor([[0.6]]))
    tensor([[0.3000]])
"""

from brickwork._deprecated import deprecated_names
from brickwork.modules.card import model_card_markdown
from brickwork.modules.checking import checking, checking_enabled
from brickwork.modules.factories import (
    ENTRY_POINT_GROUP,
    KindInfo,
    allowed_kind_modules,
    build_kind,
    import_kinds,
    kind_info,
    kind_module_path,
    register_kind,
    registered_kinds,
)
from brickwork.modules.io import (
    MAX_CONFIG_BYTES,
    MAX_WEIGHTS_BYTES,
    atomic_write_bytes,
    atomic_write_figure,
    atomic_write_json,
    file_mode,
    load_module,
    parse_json_object,
    read_card,
    read_json_object,
    read_regular_bytes,
    read_safetensors_header,
    rebuild_module,
    save_module,
    save_pretrained,
    sha256_bytes,
    state_bytes,
)
from brickwork.modules.module import Module, module_device, stack_param
from brickwork.modules.ops import ATTEND_EPS, Adapter, And, Attend, Or, Pool, Sum, attend
from brickwork.modules.signature import Signature, name_mismatch
from brickwork.modules.typed import Typed, typed

__all__ = [
    "ATTEND_EPS",
    "ENTRY_POINT_GROUP",
    "MAX_CONFIG_BYTES",
    "MAX_WEIGHTS_BYTES",
    "Adapter",
    "And",
    "Attend",
    "KindInfo",
    "Module",
    "Or",
    "Pool",
    "Signature",
    "Sum",
    "Typed",
    "atomic_write_bytes",
    "attend",
    "atomic_write_figure",
    "atomic_write_json",
    "allowed_kind_modules",
    "build_kind",
    "checking",
    "checking_enabled",
    "file_mode",
    "import_kinds",
    "kind_info",
    "kind_module_path",
    "load_module",
    "model_card_markdown",
    "module_device",
    "name_mismatch",
    "parse_json_object",
    "read_card",
    "read_json_object",
    "read_regular_bytes",
    "read_safetensors_header",
    "rebuild_module",
    "register_kind",
    "registered_kinds",
    "save_module",
    "save_pretrained",
    "sha256_bytes",
    "stack_param",
    "state_bytes",
    "typed",
]


__getattr__ = deprecated_names(
    __name__,
    {"build": ("build_kind", lambda: build_kind)},
    why="it builds a registered kind from its config",
)
