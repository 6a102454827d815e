"""Surrogate gradient modules (thesis §4.2.3, Fig. 4.2/4.5): a small head that carries a
learning signal from the nearest loss to a module without direct supervision.

This is the generic minimum the training engine needs to run a plan's ``surrogate``
jobs: a low-rank factorised linear map (W = W_A·W_B, rank L ≪ min(N, M)) with dropout,
fed with the module's flattened output and, when a context input is given (e.g. image
features next to a mask), the context attended by the output.

Example:
    >>> import torch
    >>> head = SurrogateHead(in_features=4, out_features=3, rank=2, context_channels=5)
    >>> head(torch.rand(8, 1, 2, 2), context=torch.rand(8, 5, 2, 2)).shape
    torch.Size([8, 3])
"""

from __future__ import annotations

import torch
from torch import nn

from brickwork.errors import TrainingError


def attend(mask: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """Average of ``context`` [b c ...] weighted by ``mask`` [b 1 ...] → [b c]."""
    if mask.dim() != context.dim():
        raise TrainingError(f"surrogate attention: mask has {mask.dim()} dims, context "
                            f"{context.dim()}; they must match (e.g. b 1 h w and b c h w)")
    w = mask.flatten(2)
    return (w * context.flatten(2)).sum(-1) / (w.sum(-1) + 1e-6)


class SurrogateHead(nn.Module):
    """Low-rank linear surrogate head: ``dropout → W_B(W_A x) → out``.

    Args:
        in_features: size of the module's flattened output.
        out_features: size of the supervised target (classes, or values).
        rank: L, the inner rank of the factorisation.
        dropout: dropout on the head's input (also used for MC-dropout variance).
        context_channels: channels of an optional context tensor attended by the output.
    """

    def __init__(self, in_features: int, out_features: int, rank: int = 8,
                 dropout: float = 0.1, context_channels: int = 0):
        super().__init__()
        if rank < 1 or in_features < 1 or out_features < 1:
            raise TrainingError(f"SurrogateHead: sizes must be >= 1, got in={in_features}, "
                                f"out={out_features}, rank={rank}")
        total = in_features + context_channels
        self.context_channels = context_channels
        self.drop = nn.Dropout(dropout)
        self.a = nn.Linear(total, rank, bias=False)
        self.b = nn.Linear(rank, out_features)

    def forward(self, output: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        x = output.flatten(1)
        if self.context_channels:
            if context is None:
                raise TrainingError("SurrogateHead was built with a context input; pass context=")
            x = torch.cat([x, attend(output, context)], dim=1)
        return self.b(self.a(self.drop(x)))
