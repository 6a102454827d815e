"""Surrogate gradient tooling (thesis §4.2.3, Fig. 4.5–4.7), reusable for any module.

Builds surrogate heads from a declared description (:class:`SurrogateSpec`: low-rank
factorised linear layers with dropout), estimates predictive variance by MC dropout
and by a small deep ensemble, tracks relative improvement for early stopping and
model selection, finds the loss–variance Pareto front, and correlates surrogate loss
with full-model loss (Pearson r and p-value).

Example:
    >>> import torch
    >>> spec = SurrogateSpec(in_features=6, out_features=3, rank=2, dropout=0.2)
    >>> head = spec.build()
    >>> mc_dropout_variance(head, torch.rand(4, 6), samples=8) >= 0
    True
    >>> pareto_front([(1.0, 0.5), (0.5, 1.0), (1.2, 1.2)])
    [1, 0]
    >>> r, p = pearson([1, 2, 3, 4], [2, 4, 5, 9]); round(r, 2)
    0.96
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, final

import torch
from torch import nn

from brickwork.errors import TrainingError
from brickwork.training.surrogate import SurrogateHead


@final
@dataclass(frozen=True)
class SurrogateSpec:
    """Declared description of a surrogate head.

    Attributes:
        in_features: size of the module's flattened output.
        out_features: size of the supervised target.
        rank: inner rank L of W = W_A·W_B (L ≪ min(N, M)).
        dropout: dropout on the head's input (also the MC-dropout rate).
        context_channels: channels of a context attended by the output (0: none).
        ensemble: number of independently initialised heads (≥ 1).
    """

    in_features: int
    out_features: int
    rank: int = 8
    dropout: float = 0.1
    context_channels: int = 0
    ensemble: int = 1

    def __post_init__(self) -> None:
        if self.rank >= min(self.in_features + self.context_channels, self.out_features) + 64:
            raise TrainingError(f"SurrogateSpec: rank {self.rank} is not low for sizes "
                                f"{self.in_features}->{self.out_features}; choose L << min(N, M)")
        if self.ensemble < 1:
            raise TrainingError(f"SurrogateSpec: ensemble must be >= 1, got {self.ensemble}")

    def build(self) -> nn.Module:
        """One head, or an :class:`EnsembleHead` when ``ensemble > 1``."""
        heads = [SurrogateHead(self.in_features, self.out_features, self.rank, self.dropout,
                               self.context_channels) for _ in range(self.ensemble)]
        return heads[0] if self.ensemble == 1 else EnsembleHead(heads)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class EnsembleHead(nn.Module):
    """A small deep ensemble of surrogate heads; the forward pass averages their outputs.

    Example:
        >>> import torch
        >>> ens = SurrogateSpec(4, 2, rank=2, ensemble=3).build()
        >>> ens(torch.rand(5, 4)).shape, ens.members(torch.rand(5, 4)).shape
        (torch.Size([5, 2]), torch.Size([3, 5, 2]))
    """

    def __init__(self, heads: Sequence[nn.Module]):
        super().__init__()
        self.heads = nn.ModuleList(heads)

    def members(self, output: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return torch.stack([h(output, context) for h in self.heads])

    def forward(self, output: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return self.members(output, context).mean(0)


def _probs(logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits, -1)


def mc_dropout_variance(head: nn.Module, output: torch.Tensor, context: torch.Tensor | None = None,
                        samples: int = 16) -> float:
    """Mean predictive variance of the head's softmax under MC dropout."""
    was = head.training
    head.train()
    with torch.no_grad():
        draws = torch.stack([_probs(head(output, context)) for _ in range(samples)])
    head.train(was)
    return float(draws.var(0).sum(-1).mean())


def ensemble_variance(head: EnsembleHead, output: torch.Tensor,
                      context: torch.Tensor | None = None) -> float:
    """Mean predictive variance of the softmax across an ensemble's members."""
    if not isinstance(head, EnsembleHead):
        raise TrainingError("ensemble_variance needs an EnsembleHead (SurrogateSpec(ensemble>1))")
    head.eval()
    with torch.no_grad():
        draws = _probs(head.members(output, context))
    return float(draws.var(0).sum(-1).mean())


class RelativeImprovement:
    """Tracks the best loss and the relative improvement of each new one.

    ``update(loss)`` returns ``(best - loss) / best`` (positive when better) and
    ``stop`` turns true after ``patience`` updates improving by less than ``min_rel``.

    Example:
        >>> t = RelativeImprovement(patience=2, min_rel=0.01)
        >>> [round(t.update(x), 3) for x in (1.0, 0.5, 0.499, 0.498)], t.stop
        ([0.0, 0.5, 0.002, 0.002], True)
    """

    def __init__(self, patience: int = 3, min_rel: float = 0.01):
        self.patience, self.min_rel = patience, min_rel
        self.best: float | None = None
        self.best_index = -1
        self.bad = 0
        self.history: list[float] = []

    def update(self, loss: float) -> float:
        self.history.append(loss)
        if self.best is None:
            self.best, self.best_index = loss, 0
            return 0.0
        rel = (self.best - loss) / max(abs(self.best), 1e-12)
        if loss < self.best:
            self.best, self.best_index = loss, len(self.history) - 1
        self.bad = 0 if rel >= self.min_rel else self.bad + 1
        return rel

    @property
    def stop(self) -> bool:
        return self.bad >= self.patience


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated points when minimising both coordinates
    (surrogate loss, predictive variance), sorted by the first."""
    front = []
    for i, (a, b) in enumerate(points):
        dominated = any((c <= a and d <= b) and (c < a or d < b)
                        for j, (c, d) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def pearson(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Pearson r and two-sided p-value (scipy), ``nan`` for fewer than 3 points."""
    if len(x) != len(y):
        raise TrainingError(f"pearson: {len(x)} x values but {len(y)} y values")
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return float("nan"), float("nan")
    from scipy.stats import pearsonr
    r, p = pearsonr(list(x), list(y))
    return float(r), float(p)


__all__ = ["EnsembleHead", "RelativeImprovement", "SurrogateSpec", "ensemble_variance",
           "mc_dropout_variance", "pareto_front", "pearson"]
