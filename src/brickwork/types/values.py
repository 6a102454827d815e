"""Real-valued types: unconstrained features, boxes and counts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, final

import torch

from brickwork.errors import TypeMismatch
from brickwork.types.axes import Axis
from brickwork.types.base import NeuralType, _straight_through, random_like
from brickwork.types.masks import _range_reason


class _FiniteReal(NeuralType):
    """Abstract: any finite real; ``project`` maps NaN/inf to finite values, no penalty."""

    def domain_reason(self, x: torch.Tensor) -> str:
        return _range_reason(x, None, None)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return _straight_through(x, torch.nan_to_num(x, nan=0.0, posinf=1e4, neginf=-1e4))

    def penalty(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum() * 0.0


@final
class Features(_FiniteReal):
    """Unconstrained real features (any finite value). Every other type can feed it.

    Example:
        >>> Features("b c h w").check(torch.zeros(2, 8, 4, 4))
        ''
    """

    kind = "Features"

    def admits(self, other: NeuralType) -> bool:
        """Any type's values are features."""
        return True


@final
class Bounded(NeuralType):
    """Values inside a box ``[low, high]``.

    Example:
        >>> Bounded("b", low=-1, high=1).check(torch.tensor([2.0]))
        'max 2 is above 1'
    """

    kind = "Bounded"

    def __init__(
        self,
        axes: str | Sequence[Axis] = "b",
        dtype: torch.dtype = torch.float32,
        low: float = 0.0,
        high: float = 1.0,
    ):
        super().__init__(axes, dtype)
        if not float(low) < float(high):
            raise TypeMismatch(f"Bounded: low {low} must be below high {high}")
        self.low, self.high = float(low), float(high)
        self.value_range = (self.low, self.high)

    def params(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high}

    def admits(self, other: NeuralType) -> bool:
        """A type whose ``value_range`` lies inside this box.

        Example:
            >>> from brickwork.types import Probs
            >>> Bounded("b k", low=0, high=1).admits(Probs("b k"))
            True
        """
        bounds = other.value_range
        return bounds is not None and self.low <= bounds[0] and bounds[1] <= self.high

    def domain_within(self, other: NeuralType) -> bool:
        p = other.params()
        return bool(p["low"] <= self.low and self.high <= p["high"])

    def domain_reason(self, x: torch.Tensor) -> str:
        return _range_reason(x, self.low, self.high)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        mid = (self.low + self.high) / 2
        return _straight_through(x, torch.nan_to_num(x, nan=mid).clamp(self.low, self.high))

    def penalty(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.relu(self.low - x) ** 2 + torch.relu(x - self.high) ** 2).mean()

    def noise(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        width = self.high - self.low
        jitter = 0.05 * width * random_like(torch.randn, x, generator)
        return (x + jitter).clamp(self.low, self.high)


@final
class Count(NeuralType):
    """A non-negative count (real-valued; integers are its codes).

    Example:
        >>> Count("b").saturation(torch.tensor([2.0, 2.5]))
        0.5
    """

    kind = "Count"
    value_range = (0.0, float("inf"))

    def domain_reason(self, x: torch.Tensor) -> str:
        return _range_reason(x, 0.0, None)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return _straight_through(x, torch.nan_to_num(x, nan=0.0, posinf=1e6).clamp(min=0.0))

    def penalty(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.relu(-x) ** 2).mean()

    def noise(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return (x + 0.1 * random_like(torch.randn, x, generator)).clamp(min=0.0)

    def saturation(self, x: torch.Tensor) -> float:
        if x.numel() == 0:
            return 0.0
        x = x.detach().float()
        return float(((x - x.round()).abs() > 0.1).float().mean())
