"""The neural data type: what flows on an edge between two modules (thesis §4.2.1).

A type names a semantic kind (``SoftMask``, ``Probs`` …), named axes, a dtype and a
value domain. It can check a tensor (returning a *reason*, empty when the tensor
conforms, so reasons compose into precise messages), project a tensor onto its domain
(the hard constraint), measure how far a tensor is from the domain as a differentiable
loss (the soft constraint), add the thesis's training noise, and say whether it can
feed another type.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from brickwork.errors import TypeMismatch
from brickwork.types.axes import Axis, AxisBindings, format_axes, parse_axes

_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "bool": torch.bool,
}
_DTYPE_NAMES = {v: k for k, v in _DTYPES.items()}
_TYPE_CLASSES: dict[str, type[NeuralType]] = {}

#: Values within this distance of a code count as saturated (thesis §3.2.2).
SATURATION_MARGIN = 0.1


def _straight_through(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``y`` in the forward pass, the identity's gradient in the backward pass."""
    # ``x - x.detach()`` is exactly zero, so the forward value is exactly ``y``
    return y.detach() + (x - x.detach())


def random_like(fn: Any, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``fn(x.shape)`` (``torch.rand``/``torch.randn``) with ``x``'s dtype, on ``x``'s device.

    With a ``generator`` the numbers are drawn on the generator's device (the same
    numbers as on the CPU for a CPU generator) and moved to ``x``'s device.

    Example:
        >>> random_like(torch.rand, torch.zeros(2, 3)).shape
        torch.Size([2, 3])
    """
    device = generator.device if generator is not None else x.device
    out: torch.Tensor = fn(x.shape, generator=generator, dtype=x.dtype, device=device)
    return out.to(x.device)


class NeuralType(abc.ABC):
    """Abstract base of every neural data type.

    Subclasses declare ``kind``, optionally ``feeds`` (kinds this type is a declared
    subtype of) and ``codes`` (the valid discrete codes, for :meth:`saturation`), and
    implement :meth:`domain_reason`, :meth:`project` and :meth:`penalty`.

    A type also declares its family, which the library reads instead of type names
    (default losses and scores, evaluation): ``is_distribution`` (values are
    probabilities over the event axis: ``Probs``, ``OneHot``, ``Pointer``),
    ``is_logits`` (unnormalised class scores: ``Logits``), ``is_mask`` (each value
    in [0, 1] is a probability of its own: ``SoftMask``, ``Bool``). A port type that
    takes values of other kinds says so in :meth:`admits` (``Features`` takes any,
    ``Bounded`` any type whose ``value_range`` lies in its box).

    Args:
        axes: named axes, e.g. ``"b 1 h w"``; names unify across a layout, integers are
            fixed sizes.
        dtype: the tensor dtype (``torch.float32`` by default).
    """

    kind: ClassVar[str] = ""
    feeds: ClassVar[tuple[str, ...]] = ()
    codes: ClassVar[tuple[float, ...] | None] = None
    #: which axis (index) a distribution-like type normalises over
    event_axis: int = -1
    #: the interval every value lies in, when the type guarantees one
    value_range: tuple[float, float] | None = None
    #: values are probabilities over the event axis (a class prediction)
    is_distribution: ClassVar[bool] = False
    #: values are unnormalised class scores over the event axis
    is_logits: ClassVar[bool] = False
    #: each value is a probability in [0, 1] of its own (a per-element prediction)
    is_mask: ClassVar[bool] = False

    @property
    def is_categorical(self) -> bool:
        """A class prediction over the event axis: a distribution or logits.

        Example:
            >>> from brickwork.types import Logits, SoftMask
            >>> Logits("b k").is_categorical, SoftMask("b n").is_categorical
            (True, False)
        """
        return self.is_distribution or self.is_logits

    def admits(self, other: NeuralType) -> bool:
        """Whether this port type takes values of ``other``, a different kind that does
        not declare it in its ``feeds`` (default: no)."""
        return False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            _TYPE_CLASSES[cls.kind] = cls

    def __init__(self, axes: str | Sequence[Axis] = "b", dtype: torch.dtype = torch.float32):
        if dtype not in _DTYPE_NAMES:
            raise TypeMismatch(f"{self.kind}: unsupported dtype {dtype}")
        self.axes: tuple[Axis, ...] = parse_axes(axes)
        self.dtype = dtype
        if not self.axes:
            raise TypeMismatch(f"{self.kind}: needs at least one axis, got {axes!r}")

    # ----- identity -----------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """Domain parameters beyond kind and axes (e.g. a box's bounds)."""
        return {}

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in self.params().items())
        return f"{self.kind}['{format_axes(self.axes)}'{extra}]"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NeuralType) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(repr(self))

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable description; :func:`type_from_json` inverts it."""
        return {
            "kind": self.kind,
            "axes": format_axes(self.axes),
            "dtype": _DTYPE_NAMES[self.dtype],
            **self.params(),
        }

    def with_axes(self, axes: str | Sequence[Axis]) -> NeuralType:
        """The same type over other axes."""
        data = self.to_json()
        data["axes"] = format_axes(parse_axes(axes))
        return type_from_json(data)

    # ----- checks ---------------------------------------------------------------------
    @abc.abstractmethod
    def domain_reason(self, x: torch.Tensor) -> str:
        """Why ``x``'s values are outside the domain, or ``''``."""

    def check(self, x: Any, bindings: AxisBindings | None = None) -> str:
        """Return ``''`` when ``x`` conforms, else the reason (shape, dtype or domain).

        Example:
            >>> from brickwork.types import SoftMask
            >>> SoftMask("b n").check(torch.tensor([[0.2, -0.21]]))
            'min -0.21 is below 0'
        """
        if not isinstance(x, torch.Tensor):
            return f"expected a tensor, got {type(x).__name__}"
        if x.dim() != len(self.axes):
            return (
                f"{x.dim()} dims {tuple(x.shape)}, expected {len(self.axes)} "
                f"[{format_axes(self.axes)}]"
            )
        b = bindings if bindings is not None else AxisBindings()
        for axis, size in zip(self.axes, x.shape):
            reason = b.bind(axis, int(size))
            if reason:
                return f"shape {tuple(x.shape)} vs [{format_axes(self.axes)}]: {reason}"
        if x.dtype != self.dtype:
            return (
                f"dtype {_DTYPE_NAMES.get(x.dtype, x.dtype)}, expected {_DTYPE_NAMES[self.dtype]}"
            )
        if x.numel() == 0 or x.device.type == "meta":
            return ""  # no values to check (a meta tensor has a shape and a dtype only)
        if x.is_floating_point():
            bad = int(torch.isnan(x).sum())
            if bad:
                return f"{bad} NaN value{'s' if bad > 1 else ''}"
        return self.domain_reason(x.detach())

    def validate(self, x: Any, where: str = "value") -> None:
        """Raise :class:`TypeMismatch` naming ``where`` when :meth:`check` fails."""
        reason = self.check(x)
        if reason:
            raise TypeMismatch(f"{where}: {reason}; expected {self!r}")

    # ----- constraints ----------------------------------------------------------------
    @abc.abstractmethod
    def project(self, x: torch.Tensor) -> torch.Tensor:
        """The hard constraint: map ``x`` into the domain (straight-through gradients)."""

    @abc.abstractmethod
    def penalty(self, x: torch.Tensor) -> torch.Tensor:
        """The soft constraint: a differentiable scalar, zero inside the domain."""

    def noise(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Training augmentation; by default Gaussian noise with σ = 0.1."""
        return x + 0.1 * random_like(torch.randn, x, generator)

    def saturation(self, x: torch.Tensor) -> float:
        """Fraction of values farther than 0.1 from the nearest valid code (§3.2.2).

        Types without discrete codes (features, logits, heatmaps, boxes) return 0.0.
        """
        if self.codes is None or x.numel() == 0:
            return 0.0
        x = x.detach().float()
        codes = torch.tensor(self.codes, dtype=x.dtype, device=x.device)
        dist = (x.unsqueeze(-1) - codes).abs().min(dim=-1).values
        return float((dist > SATURATION_MARGIN).float().mean())

    # ----- compatibility --------------------------------------------------------------
    def domain_within(self, other: NeuralType) -> bool:
        """Whether every value of this domain is a value of ``other``'s (same kind)."""
        return self.params() == other.params()

    def feed_reason(self, other: NeuralType, bindings: AxisBindings | None = None) -> str:
        """Why a value of this type cannot flow into a port of type ``other``, or ``''``.

        ``bindings`` (when given) is updated with the axis unification.
        """
        if other.kind == self.kind:
            if not self.domain_within(other):
                return f"domain {self!r} is not within {other!r}"
        elif not (other.kind in self.feeds or other.admits(self)):
            return f"a {self.kind} cannot feed a {other.kind}"
        if self.dtype != other.dtype:
            return f"dtype {_DTYPE_NAMES[self.dtype]} vs {_DTYPE_NAMES[other.dtype]}"
        b = bindings if bindings is not None else AxisBindings()
        return b.unify(self.axes, other.axes)

    def can_feed(self, other: NeuralType, bindings: AxisBindings | None = None) -> bool:
        """Whether a value of this type may flow into a port of type ``other``.

        Example:
            >>> from brickwork.types import OneHot, Probs
            >>> OneHot("b k").can_feed(Probs("b k")), Probs("b k").can_feed(OneHot("b k"))
            (True, False)
        """
        return not self.feed_reason(other, bindings)


def type_from_json(data: dict[str, Any]) -> NeuralType:
    """Rebuild a type from :meth:`NeuralType.to_json` output.

    Raises:
        TypeMismatch: the kind is unknown or the fields do not fit it.
    """
    data = dict(data)
    kind = data.pop("kind", None)
    cls = _TYPE_CLASSES.get(str(kind))
    if cls is None:
        raise TypeMismatch(f"unknown type kind {kind!r}; known: {sorted(_TYPE_CLASSES)}")
    dtype = _DTYPES.get(data.pop("dtype", "float32"))
    if dtype is None:
        raise TypeMismatch(f"{kind}: unknown dtype in {data!r}")
    try:
        return cls(dtype=dtype, **data)
    except TypeError as exc:
        raise TypeMismatch(f"{kind}: bad fields {data!r} ({exc})") from None


def parse_type(text: str) -> NeuralType:
    """Parse the string form ``SoftMask[b 1 h w]`` (quotes optional) into a type.

    Example:
        >>> parse_type("SoftMask['b 1 h w']")
        SoftMask['b 1 h w']
    """
    text = text.strip()
    if "[" not in text or not text.endswith("]"):
        raise TypeMismatch(
            f"cannot parse type {text!r}; write it as Kind[axes], e.g. SoftMask[b 1 h w]"
        )
    kind, rest = text.split("[", 1)
    inner = rest[:-1]
    parts = [p.strip() for p in inner.split(",")]
    axes = parts[0].strip("'\"")
    fields: dict[str, Any] = {"kind": kind.strip(), "axes": axes}
    for part in parts[1:]:
        if "=" not in part:
            raise TypeMismatch(f"cannot parse {part!r} in {text!r}; expected name=value")
        key, value = part.split("=", 1)
        fields[key.strip()] = float(value)
    return type_from_json(fields)


def known_types() -> dict[str, type[NeuralType]]:
    """Every registered type class by kind name."""
    return dict(_TYPE_CLASSES)
