"""Attention-like types: soft masks in (0, 1), classic heatmaps (≥ 0), booleans.

Table 4.3 of the thesis contrasts the two attention interfaces: the classic NMN heatmap
(ReLU, unbounded, AND = product, OR = sum) and the typed soft mask (sigmoid, bounded,
AND = min, OR = max).
"""

from __future__ import annotations

from typing import final

import torch

from brickwork.types.base import NeuralType, _straight_through, random_like


def _range_reason(x: torch.Tensor, low: float | None, high: float | None) -> str:
    if low is not None:
        lo = float(x.min())
        if lo < low:
            return f"min {lo:.3g} is below {low:g}"
    if high is not None:
        hi = float(x.max())
        if hi > high:
            return f"max {hi:.3g} is above {high:g}"
    if x.is_floating_point() and bool(torch.isinf(x).any()):
        return "infinite values"
    return ""


def _uniform_abs_noise(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Thesis eq. 3.1: ``|x − U(0, 0.4)|``."""
    u = 0.4 * random_like(torch.rand, x, generator)
    return (x - u).abs()


class _UnitInterval(NeuralType):
    """Abstract: every value in [0, 1], codes 0 and 1, eq. 3.1 noise."""

    codes = (0.0, 1.0)
    value_range = (0.0, 1.0)
    is_mask = True

    def domain_reason(self, x: torch.Tensor) -> str:
        return _range_reason(x, 0.0, 1.0)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return _straight_through(x, torch.nan_to_num(x, nan=0.5).clamp(0.0, 1.0))

    def penalty(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.relu(-x) ** 2 + torch.relu(x - 1.0) ** 2).mean()

    def noise(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return _uniform_abs_noise(x, generator).clamp(0.0, 1.0)


@final
class SoftMask(_UnitInterval):
    """A soft mask: every value in [0, 1] (sigmoid outputs; codes 0 and 1).

    Example:
        >>> m = SoftMask("b 1 h w")
        >>> m.check(torch.full((2, 1, 3, 3), 0.5))
        ''
        >>> m.check(torch.full((2, 1, 3, 3), 1.5))
        'max 1.5 is above 1'
    """

    kind = "SoftMask"
    feeds = ("Heatmap",)


@final
class Heatmap(NeuralType):
    """A classic NMN attention heatmap: non-negative, unbounded (ReLU outputs).

    Example:
        >>> Heatmap("b h w").check(torch.tensor([[[0.0, 7.5]]]))
        ''
    """

    kind = "Heatmap"
    value_range = (0.0, float("inf"))

    def domain_reason(self, x: torch.Tensor) -> str:
        return _range_reason(x, 0.0, None)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return _straight_through(x, torch.nan_to_num(x, nan=0.0).clamp(min=0.0))

    def penalty(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.relu(-x) ** 2).mean()

    def noise(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return _uniform_abs_noise(x, generator)


@final
class Bool(_UnitInterval):
    """A probability that something holds, in [0, 1] (codes 0 = no, 1 = yes).

    Example:
        >>> Bool("b").project(torch.tensor([1.3, -2.0]))
        tensor([1., 0.])
    """

    kind = "Bool"
    feeds = ("SoftMask",)
