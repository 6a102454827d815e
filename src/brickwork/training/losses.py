"""Default losses and scores chosen from a port's neural data type.

Example:
    >>> import torch
    >>> from brickwork.types import Probs
    >>> p = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    >>> round(float(type_loss(Probs("b k"), p, torch.tensor([0, 1]))), 3)
    0.164
    >>> type_score(Probs("b k"), p, torch.tensor([0, 1]))
    1.0
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from brickwork.types import NeuralType

_DISTRIBUTIONS = {"Probs", "OneHot", "Pointer"}
_MASKS = {"SoftMask", "Bool"}


def type_loss(t: NeuralType, pred: torch.Tensor, target: torch.Tensor,
              pos_weight: float | None = None) -> torch.Tensor:
    """The natural loss for a prediction of type ``t`` against ``target``.

    Distributions: negative log-likelihood (class indices) or cross-entropy (soft
    targets); logits: cross-entropy; masks/booleans: binary cross-entropy (optional
    ``pos_weight`` for rare positives); everything else: mean squared error.
    """
    kind = t.kind
    if kind in _DISTRIBUTIONS or kind == "Logits":
        logp = (torch.log(pred.clamp_min(1e-8)) if kind in _DISTRIBUTIONS
                else torch.log_softmax(pred, dim=-1))
        if not target.is_floating_point():
            return F.nll_loss(logp.reshape(-1, logp.shape[-1]), target.reshape(-1))
        return -(target * logp).sum(-1).mean()
    if kind in _MASKS:
        p = pred.clamp(1e-6, 1 - 1e-6)
        target = target.to(p.dtype)
        w = None
        if pos_weight is not None:
            w = torch.where(target > 0.5, torch.full_like(p, pos_weight), torch.ones_like(p))
        return F.binary_cross_entropy(p, target, weight=w)
    return F.mse_loss(pred, target.to(pred.dtype))


@torch.no_grad()
def type_score(t: NeuralType, pred: torch.Tensor, target: torch.Tensor) -> float:
    """A higher-is-better score: accuracy for classes and masks, minus MSE otherwise."""
    kind = t.kind
    if kind in _DISTRIBUTIONS or kind == "Logits":
        labels = target if not target.is_floating_point() else target.argmax(-1)
        return float((pred.argmax(-1) == labels).float().mean())
    if kind in _MASKS:
        return float(((pred > 0.5) == (target > 0.5)).float().mean())
    return -float(F.mse_loss(pred, target.to(pred.dtype)))
