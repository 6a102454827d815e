"""Categorical types over an event axis (the last axis): distributions, one-hots,
pointers and unnormalised logits.

A ``Pointer`` is a one-hot over *positions* (thesis §3.2: pointers A and B along the
list); it is valid when exactly one position is above 0.5.
"""

from __future__ import annotations

from typing import final

import torch

from brickwork.types.base import NeuralType, _straight_through
from brickwork.types.masks import _range_reason, _uniform_abs_noise
from brickwork.types.values import _FiniteReal

SUM_TOLERANCE = 1e-4


def _simplex_reason(x: torch.Tensor) -> str:
    reason = _range_reason(x, 0.0, None)
    if reason:
        return reason
    sums = x.sum(dim=-1)
    err = (sums - 1.0).abs()
    worst = int(err.argmax()) if err.numel() else 0
    if err.numel() and float(err.flatten()[worst]) > SUM_TOLERANCE:
        return f"rows sum to {float(sums.flatten()[worst]):.4g}, expected 1 ± {SUM_TOLERANCE:g}"
    return ""


def _one_hot_reason(x: torch.Tensor, what: str) -> str:
    reason = _range_reason(x, 0.0, 1.0)
    if reason:
        return reason
    above = (x > 0.5).sum(dim=-1)
    bad = above != 1
    if bool(bad.any()):
        n = int(above[bad].flatten()[0])
        count = f"{n} positions" if n != 1 else "1 position"
        return f"{count} above 0.5, {what} has exactly one"
    return ""


def _snap(x: torch.Tensor) -> torch.Tensor:
    """Straight-through argmax snap onto the one-hot codes of the last axis."""
    clean = torch.nan_to_num(x, nan=0.0, posinf=1e30, neginf=-1e30)
    hard = torch.nn.functional.one_hot(clean.argmax(dim=-1), x.shape[-1]).to(x.dtype)
    return _straight_through(x, hard)


def _one_hot_noise(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Thesis eq. 3.1 then eq. 3.2: ``softmax(100 · |x − U(0, 0.4)|)``."""
    return torch.softmax(100.0 * _uniform_abs_noise(x, generator), dim=-1)


def _one_hot_penalty(x: torch.Tensor) -> torch.Tensor:
    """Zero when values are in [0, 1] with exactly one above 0.5 per row."""
    top = x.max(dim=-1, keepdim=True)
    others = x.scatter(-1, top.indices, torch.zeros_like(top.values))
    return (
        (torch.relu(-x) ** 2 + torch.relu(x - 1.0) ** 2).mean()
        + (torch.relu(0.5 - top.values) ** 2).mean()
        + (torch.relu(others - 0.5) ** 2).mean()
    )


def _simplex_penalty(x: torch.Tensor) -> torch.Tensor:
    return ((x.sum(dim=-1) - 1.0) ** 2).mean() + (torch.relu(-x) ** 2).mean()


@final
class Probs(NeuralType):
    """A probability distribution over the last axis (a point of the simplex).

    Example:
        >>> Probs("b k").check(torch.tensor([[0.9, 0.8]]))
        'rows sum to 1.7, expected 1 ± 0.0001'
    """

    kind = "Probs"
    is_distribution = True
    codes = (0.0, 1.0)
    value_range = (0.0, 1.0)

    def domain_reason(self, x: torch.Tensor) -> str:
        return _simplex_reason(x)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        clean = torch.nan_to_num(x, nan=0.0, posinf=1.0, neginf=0.0).clamp(min=0.0)
        sums = clean.sum(dim=-1, keepdim=True)
        uniform = torch.full_like(clean, 1.0 / x.shape[-1])
        # divide by the largest entry first so huge values cannot overflow the sum
        scale = clean.amax(dim=-1, keepdim=True).clamp(min=1e-30)
        normed = (clean / scale) / (clean / scale).sum(dim=-1, keepdim=True).clamp(min=1e-30)
        return _straight_through(x, torch.where(sums > 0, normed, uniform))

    def penalty(self, x: torch.Tensor) -> torch.Tensor:
        return _simplex_penalty(x)

    def noise(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return _one_hot_noise(x, generator)


class _OneHotLike(NeuralType):
    """Abstract: values in [0, 1] with exactly one entry above 0.5 on the last axis."""

    codes = (0.0, 1.0)
    value_range = (0.0, 1.0)
    is_distribution = True
    #: how messages name one value of this type
    what = "a one-hot"

    def domain_reason(self, x: torch.Tensor) -> str:
        return _one_hot_reason(x, self.what)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return _snap(x)

    def penalty(self, x: torch.Tensor) -> torch.Tensor:
        return _one_hot_penalty(x)

    def noise(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return _one_hot_noise(x, generator)


@final
class OneHot(_OneHotLike):
    """A one-hot code over the last axis: values in [0, 1], exactly one above 0.5.

    Example:
        >>> OneHot("b k").project(torch.tensor([[0.2, 0.7, 0.1]]))
        tensor([[0., 1., 0.]])
    """

    kind = "OneHot"
    feeds = ("Probs",)


@final
class Pointer(_OneHotLike):
    """A pointer: a one-hot over positions (last axis), valid with exactly one above 0.5.

    Used as an *address* by addressed selective input/update (read the value under the
    pointer, write a result back there).

    Example:
        >>> Pointer("b n").check(torch.tensor([[0.9, 0.6, 0.0]]))
        '2 positions above 0.5, a pointer has exactly one'
    """

    kind = "Pointer"
    feeds = ("OneHot", "Probs")
    what = "a pointer"


@final
class Logits(_FiniteReal):
    """Unnormalised scores over the last axis (any finite real).

    Example:
        >>> Logits("b k").check(torch.tensor([[float("inf"), 0.0]]))
        'infinite values'
    """

    kind = "Logits"
    is_logits = True
