"""Neural data types (thesis §4.2.1): what flows on an edge between modules.

Example:
    >>> import torch
    >>> from brickwork.types import SoftMask, Heatmap
    >>> SoftMask("b h w").can_feed(Heatmap("b h w"))
    True
    >>> Heatmap("b h w").feed_reason(SoftMask("b h w"))
    'a Heatmap cannot feed a SoftMask'
"""

from brickwork.types.axes import AxisBindings, format_axes, parse_axes
from brickwork.types.base import NeuralType, known_types, parse_type, type_from_json
from brickwork.types.distributions import Logits, OneHot, Pointer, Probs
from brickwork.types.masks import Bool, Heatmap, SoftMask
from brickwork.types.values import Bounded, Count, Features

__all__ = [
    "AxisBindings",
    "Bool",
    "Bounded",
    "Count",
    "Features",
    "Heatmap",
    "Logits",
    "NeuralType",
    "OneHot",
    "Pointer",
    "Probs",
    "SoftMask",
    "format_axes",
    "known_types",
    "parse_axes",
    "parse_type",
    "type_from_json",
]
