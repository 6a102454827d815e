"""Surrogate gradient modules (thesis §4.2.3, Fig. 4.2/4.5–4.7): small heads that carry a
learning signal from the nearest loss to a module without direct supervision, and the
tooling to choose and trust them.

* :class:`SurrogateHead`: a low-rank factorised linear map (W = W_A·W_B, rank
  L ≪ min(N, M)) with dropout, fed with the module's flattened output and, when a
  context input is given (e.g. image features next to a mask), the context attended by
  the output.
* :class:`RoutedSurrogateHead`: the head :func:`~brickwork.training.train_plan` trains
  SGM jobs with: one shared W_A, one W_B per *route* (the way from the module's output
  to the target: which ops and which reader), over a permutation-invariant summary of
  spatial outputs (:func:`surrogate_features`).
* :class:`SurrogateSpec` builds heads from a declared description, ensembles
  (:class:`EnsembleHead`); MC-dropout and ensemble variance, relative improvement for
  early stopping and model selection, the loss–variance Pareto front, and the Pearson
  correlation of surrogate and full-model losses.

Example:
    >>> import torch
    >>> head = SurrogateHead(in_features=4, out_features=3, rank=2, context_channels=5)
    >>> head(torch.rand(8, 1, 2, 2), context=torch.rand(8, 5, 2, 2)).shape
    torch.Size([8, 3])
    >>> spec = SurrogateSpec(in_features=6, out_features=3, rank=2, dropout=0.2)
    >>> mc_dropout_variance(spec.build(), torch.rand(4, 6), samples=8) >= 0
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
from brickwork.modules import attend


def _with_context(
    owner: str, x: torch.Tensor, output: torch.Tensor, context: torch.Tensor | None, channels: int
) -> torch.Tensor:
    """A head's input ``x``, followed by the ``context`` attended by ``output`` when the
    head was built with ``channels`` context channels."""
    if not channels:
        return x
    if context is None:
        raise TrainingError(f"{owner} was built with a context input; pass context=")
    return torch.cat([x, attend(output, context)], dim=1)


class SurrogateHead(nn.Module):
    """Low-rank linear surrogate head: ``dropout → W_B(W_A x) → out``.

    Args:
        in_features: size of the module's flattened output.
        out_features: size of the supervised target (classes, or values).
        rank: L, the inner rank of the factorisation.
        dropout: dropout on the head's input (also used for MC-dropout variance).
        context_channels: channels of an optional context tensor attended by the output.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rank: int = 8,
        dropout: float = 0.1,
        context_channels: int = 0,
    ):
        super().__init__()
        if rank < 1 or in_features < 1 or out_features < 1:
            raise TrainingError(
                f"SurrogateHead: sizes must be >= 1, got in={in_features}, "
                f"out={out_features}, rank={rank}"
            )
        total = in_features + context_channels
        self.context_channels = context_channels
        self.drop = nn.Dropout(dropout)
        self.a = nn.Linear(total, rank, bias=False)
        self.b = nn.Linear(rank, out_features)

    def forward(self, output: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        x = _with_context(
            "SurrogateHead", output.flatten(1), output, context, self.context_channels
        )
        out: torch.Tensor = self.b(self.a(self.drop(x)))
        return out


def surrogate_features(value: torch.Tensor, summary: str = "auto", top_k: int = 4) -> torch.Tensor:
    """What a surrogate head reads of a module's output ``[b ...]``, as ``[b n]``.

    ``"flat"``: every value. ``"pooled"`` (for outputs with spatial axes, ``[b c ...]``):
    per channel the sum and the ``top_k`` largest values — a head over the flattened
    mask would have to learn the answer separately for every cell position, and finds
    trained that way collapse to empty masks (docs/nmn-study.md). ``"auto"``: pooled for
    3 or more axes, flat otherwise.

    Example:
        >>> surrogate_features(torch.rand(2, 1, 4, 4), top_k=3).shape
        torch.Size([2, 4])
        >>> surrogate_features(torch.rand(2, 5)).shape
        torch.Size([2, 5])
    """
    if summary not in ("auto", "flat", "pooled"):
        raise TrainingError(
            f"surrogate_features: summary {summary!r} is not one of 'auto', 'flat', 'pooled'"
        )
    if summary == "flat" or (summary == "auto" and value.dim() < 3):
        return value.flatten(1)
    if value.dim() < 3:
        raise TrainingError(
            f"surrogate_features: 'pooled' needs an output [b c ...] with "
            f"spatial axes, got shape {tuple(value.shape)}; use 'flat'"
        )
    cells = value.flatten(2)
    k = min(top_k, cells.shape[-1])
    top = cells.topk(k, dim=-1).values
    if k < top_k:
        top = nn.functional.pad(top, (0, top_k - k))
    return torch.cat([cells.sum(-1, keepdim=True), top], -1).flatten(1)


class RoutedSurrogateHead(nn.Module):
    """One surrogate gradient module with a shared low-rank input map and one output map
    per route: ``logits = B_r · W_A(dropout(features)) + c_r``.

    A module's output reaches its target along different routes (``exist`` or ``count``
    of a find's mask): the gradient each route gives is different, the statistics of the
    output that matter are shared. ``B`` starts at zero, so the head adds nothing at
    first: a random head turns the output's initial statistics into large random logits,
    and the quickest way to shrink that loss is to shrink the output (e.g. a mask to
    zero, where its sigmoid's gradient dies).

    Args:
        in_features: size of :func:`surrogate_features` of the output (plus attended
            context channels).
        out_features: size of the target (classes, or values).
        routes: number of routes (≥ 1).
        rank: L, the inner rank.
        dropout: on the head's input (also the MC-dropout rate).
        summary, top_k: see :func:`surrogate_features`.
        context_channels: channels of a context attended by the output (0: none).

    Example:
        >>> head = RoutedSurrogateHead(in_features=5, out_features=3, routes=2, rank=2)
        >>> out = head(torch.rand(4, 1, 3, 3), torch.tensor([0, 1, 1, 0]))
        >>> out.shape, bool((out == 0).all())
        (torch.Size([4, 3]), True)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        routes: int = 1,
        rank: int = 8,
        dropout: float = 0.1,
        summary: str = "auto",
        top_k: int = 4,
        context_channels: int = 0,
    ):
        super().__init__()
        if min(in_features, out_features, routes, rank) < 1:
            raise TrainingError(
                f"RoutedSurrogateHead: sizes must be >= 1, got in={in_features}, "
                f"out={out_features}, routes={routes}, rank={rank}"
            )
        self.summary, self.top_k, self.context_channels = summary, top_k, context_channels
        self.drop = nn.Dropout(dropout)
        self.a = nn.Linear(in_features + context_channels, rank, bias=False)
        self.b = nn.Parameter(torch.zeros(routes, out_features, rank))
        self.c = nn.Parameter(torch.zeros(routes, out_features))

    def features(self, value: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        x = surrogate_features(value, self.summary, self.top_k)
        return _with_context("RoutedSurrogateHead", x, value, context, self.context_channels)

    def forward(
        self, value: torch.Tensor, route: torch.Tensor, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        h = self.a(self.drop(self.features(value, context)))
        route = route.reshape(-1).long()
        return torch.einsum("bor,br->bo", self.b[route], h) + self.c[route]


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
            raise TrainingError(
                f"SurrogateSpec: rank {self.rank} is not low for sizes "
                f"{self.in_features}->{self.out_features}; choose L << min(N, M)"
            )
        if self.ensemble < 1:
            raise TrainingError(f"SurrogateSpec: ensemble must be >= 1, got {self.ensemble}")

    def build(self) -> nn.Module:
        """One head, or an :class:`EnsembleHead` when ``ensemble > 1``."""
        heads = [
            SurrogateHead(
                self.in_features, self.out_features, self.rank, self.dropout, self.context_channels
            )
            for _ in range(self.ensemble)
        ]
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


def mc_dropout_variance(
    head: nn.Module, output: torch.Tensor, context: torch.Tensor | None = None, samples: int = 16
) -> float:
    """Mean predictive variance of the head's softmax under MC dropout."""
    was = head.training
    head.train()
    with torch.no_grad():
        draws = torch.stack([_probs(head(output, context)) for _ in range(samples)])
    head.train(was)
    return float(draws.var(0).sum(-1).mean())


def ensemble_variance(
    head: EnsembleHead, output: torch.Tensor, context: torch.Tensor | None = None
) -> float:
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
        dominated = any(
            (c <= a and d <= b) and (c < a or d < b) for j, (c, d) in enumerate(points) if j != i
        )
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


__all__ = [
    "EnsembleHead",
    "RelativeImprovement",
    "RoutedSurrogateHead",
    "SurrogateHead",
    "SurrogateSpec",
    "ensemble_variance",
    "mc_dropout_variance",
    "pareto_front",
    "pearson",
    "surrogate_features",
]
