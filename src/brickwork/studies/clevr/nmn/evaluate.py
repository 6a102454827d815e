"""Evaluation of a trained NMN or FiLM model: predictions, accuracy and error by program depth.

Every layout model runs through the autobatched runner (:class:`LayoutCache`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from brickwork.studies.clevr.nmn.data import QuestionSet, StudyData
from brickwork.studies.clevr.nmn.film import FiLM

if TYPE_CHECKING:
    from brickwork.studies.clevr.nmn.layouts import NMN


def predict(
    model: nn.Module,
    data: StudyData,
    name: str,
    *,
    priors: torch.Tensor | None = None,
    batch: int = 256,
) -> torch.Tensor:
    """Predicted answer index for every question of a set."""
    qs = data.sets[name]
    feats = data.set_features(name)
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(qs), batch):
            sl = slice(i, i + batch)
            out.append(_forward(model, qs, feats, sl, priors).argmax(-1))
    model.train()
    return torch.cat(out)


def _forward(
    model: nn.Module, qs: QuestionSet, feats: torch.Tensor, idx: Any, priors: torch.Tensor | None
) -> torch.Tensor:
    f = feats[qs.image[idx]]
    if isinstance(model, FiLM):
        return torch.log_softmax(model(f, qs.tokens[idx]), -1)
    ids = range(len(qs))[idx] if isinstance(idx, slice) else idx.tolist()
    nmn = cast("NMN", model)  # not FiLM: the modular model
    lays = [nmn.layouts(qs.questions[i].program) for i in ids]
    if priors is not None:
        return model(lays, f, prior=priors[idx])
    return model(lays, f, tokens=qs.tokens[idx])


def accuracy(
    model: nn.Module, data: StudyData, name: str, priors: torch.Tensor | None = None
) -> float:
    return float(
        (predict(model, data, name, priors=priors) == data.sets[name].answer).float().mean()
    )


def error_by_depth(
    model: nn.Module, data: StudyData, name: str, priors: torch.Tensor | None = None
) -> dict[int, float]:
    """Error (fraction wrong) per program depth on a question set."""
    qs = data.sets[name]
    wrong = (predict(model, data, name, priors=priors) != qs.answer).float()
    return {int(d): float(wrong[qs.depth == d].mean()) for d in qs.depth.unique()}
