"""Parameter-free operations and adapters between types (thesis Table 4.3).

The typed interface merges soft masks with AND = min and OR = max (bounded, and the
gradient flows to one input); the classic NMN interface merges heatmaps with AND =
product and OR = sum. ``Sum`` adds logits (answer prior + evidence). Adapters convert
between types (sigmoid, softmax, ReLU, log).

Example:
    >>> import torch
    >>> a, b = torch.tensor([[0.2, 0.9]]), torch.tensor([[0.5, 0.4]])
    >>> And.min("b n")(a, b)
    tensor([[0.2000, 0.4000]])
    >>> Or.sum("b n")(a, b)
    tensor([[0.7000, 1.3000]])
"""

from __future__ import annotations

from typing import Any, ClassVar, final

import torch

from brickwork.errors import PortError
from brickwork.modules.kinds import register_kind
from brickwork.modules.module import Module
from brickwork.types import Features, Heatmap, Logits, Probs, SoftMask
from brickwork.types.base import NeuralType


class _Merge(Module):
    """Abstract: a parameter-free merge of two inputs ``a`` and ``b`` of one type."""

    modes: ClassVar[dict[str, type[NeuralType]]] = {}
    #: modes whose gradient couples the inputs (product, min, max): see plan's taxonomy
    codependent_modes: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, mode: str, axes: str = "b 1 h w"):
        super().__init__()
        if mode not in self.modes:
            raise PortError(f"{type(self).__name__}: unknown mode {mode!r}; "
                            f"choose one of {sorted(self.modes)}")
        t = self.modes[mode](axes)
        self.mode = mode
        self.inputs = {"a": t, "b": t}  # type: ignore[misc]
        self.outputs = {"out": t}  # type: ignore[misc]

    @property
    def codependent(self) -> bool:
        """True when the merge couples its inputs' gradients (non-additive)."""
        return self.mode in self.codependent_modes

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


@final
@register_kind("And", example_config={"mode": "min", "axes": "b 1 h w"},
               sizes={"b": 3, "h": 4, "w": 5})
class And(_Merge):
    """Intersection of two attentions: ``min`` for soft masks, ``product`` for heatmaps."""

    modes = {"min": SoftMask, "product": Heatmap}
    codependent_modes = frozenset({"min", "product"})

    @classmethod
    def min(cls, axes: str = "b 1 h w") -> And:  # noqa: A003 - reads like the thesis
        """The typed AND of soft masks."""
        return cls("min", axes)

    @classmethod
    def product(cls, axes: str = "b 1 h w") -> And:
        """The classic AND of heatmaps."""
        return cls("product", axes)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.minimum(a, b) if self.mode == "min" else a * b


@final
@register_kind("Or", example_config={"mode": "max", "axes": "b 1 h w"},
               sizes={"b": 3, "h": 4, "w": 5})
class Or(_Merge):
    """Union of two attentions: ``max`` for soft masks, ``sum`` for heatmaps."""

    modes = {"max": SoftMask, "sum": Heatmap}
    codependent_modes = frozenset({"max"})

    @classmethod
    def max(cls, axes: str = "b 1 h w") -> Or:  # noqa: A003
        """The typed OR of soft masks."""
        return cls("max", axes)

    @classmethod
    def sum(cls, axes: str = "b 1 h w") -> Or:  # noqa: A003
        """The classic OR of heatmaps."""
        return cls("sum", axes)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.maximum(a, b) if self.mode == "max" else a + b


@final
@register_kind("Sum", example_config={"axes": "b k"}, sizes={"b": 3, "k": 6})
class Sum(Module):
    """Sum of two logit vectors: an answer prior plus evidence (typed prior merge)."""

    def __init__(self, axes: str = "b k"):
        super().__init__()
        self.inputs = {"a": Logits(axes), "b": Logits(axes)}  # type: ignore[misc]
        self.outputs = {"out": Logits(axes)}  # type: ignore[misc]

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


_ADAPTERS: dict[str, tuple[type[NeuralType], type[NeuralType]]] = {
    "sigmoid": (Logits, SoftMask),
    "softmax": (Logits, Probs),
    "relu": (Features, Heatmap),
    "log": (Probs, Logits),
    "squash": (Heatmap, SoftMask),
}


@final
@register_kind("Adapter", example_config={"fn": "sigmoid", "axes": "b n"}, sizes={"b": 3, "n": 7})
class Adapter(Module):
    """Convert between types: ``sigmoid`` Logits→SoftMask, ``softmax`` Logits→Probs,
    ``relu`` Features→Heatmap, ``log`` Probs→Logits, ``squash`` Heatmap→SoftMask
    (``x / (1 + x)``).

    Example:
        >>> Adapter("softmax", "b k")(torch.zeros(1, 4))
        tensor([[0.2500, 0.2500, 0.2500, 0.2500]])
    """

    def __init__(self, fn: str, axes: str = "b n"):
        super().__init__()
        if fn not in _ADAPTERS:
            raise PortError(f"Adapter: unknown function {fn!r}; choose one of {sorted(_ADAPTERS)}")
        src, dst = _ADAPTERS[fn]
        self.fn = fn
        self.inputs = {"x": src(axes)}  # type: ignore[misc]
        self.outputs = {"y": dst(axes)}  # type: ignore[misc]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fn == "sigmoid":
            return torch.sigmoid(x)
        if self.fn == "softmax":
            return torch.softmax(x, dim=-1)
        if self.fn == "relu":
            return torch.relu(x)
        if self.fn == "log":
            return torch.log(x.clamp(min=1e-12))
        return x / (1.0 + x)


def merge_modes() -> dict[str, Any]:
    """Every merge op and whether each mode is codependent (for the plan's taxonomy)."""
    return {cls.__name__: {m: m in cls.codependent_modes for m in cls.modes} for cls in (And, Or)}
