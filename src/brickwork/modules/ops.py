"""Parameter-free operations and adapters between types (thesis Table 4.3).

The typed interface merges soft masks with AND = min and OR = max (bounded, and the
gradient flows to one input), or with the product AND (``And.product(of="SoftMask")``:
still in (0, 1), the gradient flows to both); the classic NMN interface merges heatmaps
with AND = product and OR = sum. ``Sum`` adds logits (answer prior + evidence).
``Pool`` reduces one axis (max, noisy-OR ``1 − Π(1 − m)``, mean). ``Attend`` (and the
function :func:`attend`) pools features weighted by an attention. Adapters convert
between types (sigmoid, softmax, ReLU, log).

A merge whose output is the sum of its inputs says so with ``additive`` (``Sum``,
``Or.sum``): its inputs' gradients do not couple (the plan's taxonomy reads it).

Example:
    >>> import torch
    >>> a, b = torch.tensor([[0.2, 0.9]]), torch.tensor([[0.5, 0.4]])
    >>> And.min("b n")(a, b)
    tensor([[0.2000, 0.4000]])
    >>> Or.sum("b n")(a, b)
    tensor([[0.7000, 1.3000]])
    >>> And.product("b n", of="SoftMask")(a, b)
    tensor([[0.1000, 0.3600]])
    >>> Pool("noisy_or", "b n", over="n")(torch.tensor([[0.5, 0.5]]))
    tensor([0.7500])
"""

from __future__ import annotations

from typing import Any, ClassVar, final

import torch

from brickwork.errors import PortError, TypeMismatch
from brickwork.modules.factories import register_kind
from brickwork.modules.module import Module
from brickwork.types import Features, Heatmap, Logits, Probs, SoftMask
from brickwork.types.axes import format_axes, parse_axes
from brickwork.types.base import NeuralType


class _Merge(Module):
    """Abstract: a parameter-free merge of two inputs ``a`` and ``b`` of one type."""

    modes: ClassVar[dict[str, type[NeuralType]]] = {}
    #: modes whose gradient couples the inputs (product, min, max): see plan's taxonomy
    codependent_modes: ClassVar[frozenset[str]] = frozenset()
    #: modes whose output is the sum of the inputs (``Or.sum``)
    additive_modes: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, mode: str, axes: str = "b 1 h w"):
        super().__init__()
        if mode not in self.modes:
            raise PortError(
                f"{type(self).__name__}: unknown mode {mode!r}; choose one of {sorted(self.modes)}"
            )
        t = self.modes[mode](axes)
        self.mode = mode
        self.additive = mode in self.additive_modes
        self.inputs = {"a": t, "b": t}
        self.outputs = {"out": t}

    @property
    def codependent(self) -> bool:
        """True when the merge couples its inputs' gradients (non-additive)."""
        return self.mode in self.codependent_modes

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def _type_name(of: str | type[NeuralType]) -> str:
    return of if isinstance(of, str) else getattr(of, "__name__", str(of))


@final
@register_kind(
    "And", example_config={"mode": "min", "axes": "b 1 h w"}, sizes={"b": 3, "h": 4, "w": 5}
)
class And(_Merge):
    """Intersection of two attentions: ``min`` or ``soft_product`` for soft masks,
    ``product`` for heatmaps."""

    modes = {"min": SoftMask, "product": Heatmap, "soft_product": SoftMask}
    codependent_modes = frozenset({"min", "product", "soft_product"})

    @classmethod
    def min(cls, axes: str = "b 1 h w") -> And:  # noqa: A003 - reads like the thesis
        """The typed AND of soft masks."""
        return cls("min", axes)

    @classmethod
    def product(cls, axes: str = "b 1 h w", of: str | type[NeuralType] = "Heatmap") -> And:
        """The product AND: of heatmaps (the classic interface) or, with
        ``of="SoftMask"``, of soft masks (mode ``soft_product``: a SoftMask again).

        Example:
            >>> And.product("b n", of="SoftMask").outputs["out"]
            SoftMask['b n']
        """
        name = _type_name(of)
        if name == "Heatmap":
            return cls("product", axes)
        if name == "SoftMask":
            return cls("soft_product", axes)
        raise PortError(
            f"And.product: of={name!r} is not supported; the product AND takes "
            "'Heatmap' (classic) or 'SoftMask' (typed, stays in (0, 1))"
        )

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.minimum(a, b) if self.mode == "min" else a * b


@final
@register_kind(
    "Or", example_config={"mode": "max", "axes": "b 1 h w"}, sizes={"b": 3, "h": 4, "w": 5}
)
class Or(_Merge):
    """Union of two attentions: ``max`` for soft masks, ``sum`` for heatmaps."""

    modes = {"max": SoftMask, "sum": Heatmap}
    codependent_modes = frozenset({"max"})
    additive_modes = frozenset({"sum"})

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

    additive = True

    def __init__(self, axes: str = "b k"):
        super().__init__()
        self.inputs = {"a": Logits(axes), "b": Logits(axes)}
        self.outputs = {"out": Logits(axes)}

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


_POOL_TYPES: dict[str, type[NeuralType]] = {
    "SoftMask": SoftMask,
    "Heatmap": Heatmap,
    "Features": Features,
}
_POOL_OPS = {
    "max": ("SoftMask", "Heatmap", "Features"),
    "mean": ("SoftMask", "Heatmap", "Features"),
    "noisy_or": ("SoftMask",),
}


@final
@register_kind(
    "Pool",
    example_config={"op": "noisy_or", "axes": "b n h w", "over": "n"},
    sizes={"b": 3, "n": 4, "h": 2, "w": 5},
)
class Pool(Module):
    """Reduce one axis of a typed tensor: ``max``, ``noisy_or`` (``1 − Π(1 − m)``, the
    probability that at least one of independent events holds) or ``mean``.

    The input is ``of[axes]``; the output is the same type without the ``over`` axis.
    ``noisy_or`` takes soft masks only; ``max`` and ``mean`` also heatmaps and features.

    Args:
        op: ``"max"``, ``"noisy_or"`` or ``"mean"``.
        axes: the input's axes, e.g. ``"b n h w"``.
        over: the axis name to reduce (``"n"``).
        of: the type name: ``"SoftMask"`` (default), ``"Heatmap"`` or ``"Features"``.

    Example:
        >>> import torch
        >>> pool = Pool("max", "b n", over="n")
        >>> str(pool.signature)
        "(x: SoftMask['b n']) -> (out: SoftMask['b'])"
        >>> pool(torch.tensor([[0.2, 0.7, 0.1]]))
        tensor([0.7000])
    """

    def __init__(self, op: str, axes: str = "b n", over: str = "n", of: str = "SoftMask"):
        super().__init__()
        if op not in _POOL_OPS:
            raise PortError(f"Pool: unknown op {op!r}; choose one of {sorted(_POOL_OPS)}")
        if of not in _POOL_OPS[op]:
            raise PortError(
                f"Pool({op!r}): of={of!r} is not supported; {op} pools {' or '.join(_POOL_OPS[op])}"
            )
        parsed = parse_axes(axes)
        if over not in parsed:
            raise PortError(
                f"Pool: axis {over!r} is not one of the input axes "
                f"[{format_axes(parsed)}]; name the axis to reduce with over=..."
            )
        if parsed.count(over) > 1:
            raise PortError(f"Pool: axis {over!r} appears twice in [{format_axes(parsed)}]")
        self.op, self.dim = op, parsed.index(over)
        t = _POOL_TYPES[of]
        rest = tuple(a for a in parsed if a != over)
        self.inputs = {"x": t(axes)}
        self.outputs = {"out": t(rest)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.op == "max":
            return x.amax(dim=self.dim)
        if self.op == "mean":
            return x.mean(dim=self.dim)
        return 1.0 - torch.prod(1.0 - x, dim=self.dim)


#: added to the attention's mass before dividing: an all-zero attention pools to zero
#: features with a bounded gradient (1 / ATTEND_EPS), while any real attention (a
#: sigmoid mask of even one cell at 0.01) is 100x larger, so the mean is unchanged.
ATTEND_EPS = 1e-4


def attend(mask: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Features averaged over space, weighted by an attention: ``[b 1 ...] x [b c ...] → [b c]``.

    The one attention pooling of brickwork (NMN answer modules, relate/same inputs,
    surrogate heads with a context): ``Σ m·f / (Σ m + ATTEND_EPS)``.

    Raises:
        TypeMismatch: the mask and the features do not have the same number of dims.

    Example:
        >>> m = torch.tensor([[[1.0, 0.0]]])            # b 1 n
        >>> f = torch.tensor([[[2.0, 9.0], [4.0, 9.0]]])  # b c n
        >>> attend(m, f)
        tensor([[1.9998, 3.9996]])
    """
    if mask.dim() != features.dim() or mask.dim() < 2:
        raise TypeMismatch(
            f"attend: mask {tuple(mask.shape)} and features "
            f"{tuple(features.shape)} need the same number of dims (>= 2), "
            "e.g. [b 1 h w] and [b c h w]; unsqueeze the mask's channel axis"
        )
    w = mask.flatten(2)
    return (w * features.flatten(2)).sum(-1) / (w.sum(-1) + ATTEND_EPS)


@final
@register_kind("Attend", example_config={"axes": "h w"}, sizes={"b": 3, "c": 4, "h": 2, "w": 5})
class Attend(Module):
    """Typed :func:`attend`: ``(mask: SoftMask['b 1 <axes>'], features: Features['b c <axes>'])
    → Features['b c']``, the features under the attention.

    Args:
        axes: the spatial axes both inputs share (``"h w"``).
        of: the attention's type: ``"SoftMask"`` (typed) or ``"Heatmap"`` (classic).

    Example:
        >>> op = Attend("h w")
        >>> str(op.signature)
        "(mask: SoftMask['b 1 h w'], features: Features['b c h w']) -> (out: Features['b c'])"
        >>> op(torch.ones(2, 1, 3, 3), torch.ones(2, 4, 3, 3)).shape
        torch.Size([2, 4])
    """

    def __init__(self, axes: str = "h w", of: str = "SoftMask"):
        super().__init__()
        if of not in ("SoftMask", "Heatmap"):
            raise PortError(
                f"Attend: of={of!r} is not supported; an attention is a "
                "'SoftMask' (typed) or a 'Heatmap' (classic)"
            )
        spatial = format_axes(parse_axes(axes))
        mask_t = SoftMask if of == "SoftMask" else Heatmap
        self.inputs = {
            "mask": mask_t(f"b 1 {spatial}"),
            "features": Features(f"b c {spatial}"),
        }
        self.outputs = {"out": Features("b c")}

    def forward(self, mask: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return attend(mask, features)


_ADAPTERS: dict[str, tuple[type[NeuralType], type[NeuralType]]] = {
    "sigmoid": (Logits, SoftMask),
    "softmax": (Logits, Probs),
    "relu": (Features, Heatmap),
    "log": (Probs, Logits),
    "squash": (Heatmap, SoftMask),
}
#: what else an error message suggests next to an adapter
_ADAPTER_NOTES = {
    "squash": "use the classic ops (And.product / Or.sum) for heatmaps, or give "
    "the producer a SoftMask output"
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
        self.inputs = {"x": src(axes)}
        self.outputs = {"y": dst(axes)}

    @staticmethod
    def between(found: NeuralType, expected: NeuralType) -> str | None:
        """The adapter function converting ``found``'s kind into ``expected``'s, if any.

        Example:
            >>> from brickwork.types import Logits, SoftMask
            >>> Adapter.between(Logits("b n"), SoftMask("b n"))
            'sigmoid'
            >>> Adapter.between(SoftMask("b n"), Logits("b n")) is None
            True
        """
        for fn, (src, dst) in _ADAPTERS.items():
            if isinstance(found, src) and isinstance(expected, dst):
                return fn
        return None

    @staticmethod
    def hint(found: NeuralType, expected: NeuralType) -> str | None:
        """A fix for an edge from ``found`` to ``expected`` through an adapter, if one fits.

        Example:
            >>> from brickwork.types import Heatmap, SoftMask
            >>> Adapter.hint(Heatmap("b n"), SoftMask("b n"))[:29]
            "insert an Adapter('squash'), "
        """
        fn = Adapter.between(found, expected)
        if fn is None:
            return None
        note = _ADAPTER_NOTES.get(fn)
        return f"insert an Adapter('{fn}')" + (f", {note}" if note else "")

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
