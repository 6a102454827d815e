"""The time-budgeted training loop of a whole model, and the end-to-end NMN and FiLM baselines it
trains.

Loops record a validation-accuracy curve against training seconds (for the cost report).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from brickwork.studies.clevr.nmn.data import StudyData, data_device
from brickwork.studies.clevr.nmn.evaluate import _batches, _forward, accuracy
from brickwork.studies.clevr.nmn.film import FiLM
from brickwork.studies.clevr.nmn.layouts import NMN
from brickwork.studies.clevr.nmn.recorded import RecordedFinds

log = logging.getLogger(__name__)


LR = 3e-3


BATCH = 64


def train_loop(
    model: nn.Module,
    data: StudyData,
    train_set: str,
    seconds: float,
    *,
    seed: int,
    params: Sequence[nn.Parameter] | None = None,
    priors: dict[str, torch.Tensor] | None = None,
    eval_every: float = 10.0,
    lr: float = LR,
    time_offset: float = 0.0,
    recorded: RecordedFinds | None = None,
) -> dict[str, Any]:
    """Train for ``seconds`` on a question set; returns the val-accuracy curve and counts.

    Seconds are this process's CPU seconds spent in training steps (validation not
    counted): with one torch thread per process they match wall seconds on a quiet
    machine, and a busy one does not shrink the budget or stretch the curve's time axis,
    so the cost report compares like with like (:mod:`~brickwork.studies.clevr.nmn.cost`).

    With ``recorded`` (and cached ``priors``), training batches read the frozen find/scene
    outputs from their intermediate dataset instead of running those modules; the
    validation curve still runs the whole model."""
    torch.manual_seed(seed)
    qs, feats = data.sets[train_set], data.set_features(train_set)
    params = (
        list(params) if params is not None else [p for p in model.parameters() if p.requires_grad]
    )
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    tr_prior = priors.get(train_set) if priors else None
    val_prior = priors.get("val") if priors else None
    curve: list[tuple[float, float]] = []
    trained, t_train, next_eval, steps = 0, 0.0, eval_every, 0
    for idx in _batches(len(qs), BATCH, gen):
        t0 = time.process_time()
        if recorded is not None and tr_prior is not None:
            logp = recorded.forward(
                qs.split,
                [qs.questions[i].program for i in idx.tolist()],
                qs.image[idx],
                feats[qs.image[idx]],
                tr_prior[idx],
            )
        else:
            logp = _forward(model, qs, feats, idx, tr_prior)
        loss = nn.functional.nll_loss(logp, qs.answer[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        t_train += time.process_time() - t0
        trained += len(idx)
        steps += 1
        if t_train >= next_eval or t_train >= seconds:
            curve.append((time_offset + t_train, accuracy(model, data, "val", val_prior)))
            next_eval += eval_every
            log.info("%s: %.0fs val acc %.3f", type(model).__name__, t_train, curve[-1][1])
        if t_train >= seconds:
            break
    return {
        "curve": curve,
        "seconds": t_train,
        "samples": trained,
        "steps": steps,
        "samples_per_second": trained / max(t_train, 1e-9),
    }


def train_e2e(
    interface: str,
    data: StudyData,
    *,
    seconds: float,
    seed: int,
    train_set: str = "train",
    channels: int = 32,
    lr: float = LR,
) -> tuple[NMN, dict[str, Any]]:
    """End-to-end: every module and the question encoder jointly, through the runner
    (on the device of ``data``: see :func:`~brickwork.studies.clevr.nmn.data.data_on`)."""
    torch.manual_seed(seed)
    model = NMN(interface, len(data.tokenizer), channels)
    _instantiate(model, data)
    model.to(data_device(data))  # built on the CPU: the same initial weights everywhere
    return model, train_loop(model, data, train_set, seconds, seed=seed, lr=lr)


def train_film(
    data: StudyData, *, seconds: float, seed: int, channels: int = 32, lr: float = LR
) -> tuple[FiLM, dict[str, Any]]:
    torch.manual_seed(seed)
    model = FiLM(len(data.tokenizer), channels).to(data_device(data))
    return model, train_loop(model, data, "train", seconds, seed=seed, lr=lr)


def _instantiate(model: NMN, data: StudyData) -> None:
    """Build every module the training programs name (so optimizers see them all)."""
    for name in ("train", "val"):
        for q in data.sets[name].questions:
            model.layouts(q.program)
