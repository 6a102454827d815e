"""The time-budgeted training loop of a whole model, and the end-to-end NMN and FiLM baselines it
trains.

Loops record a validation-accuracy curve against training seconds (for the cost report).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from brickwork.studies.clevr.nmn.data import StudyData, data_device
from brickwork.studies.clevr.nmn.evaluate import _forward, accuracy
from brickwork.studies.clevr.nmn.film import FiLM
from brickwork.studies.clevr.nmn.layouts import NMN
from brickwork.studies.clevr.nmn.recorded import RecordedFinds
from brickwork.training import Callback, FitConfig, FitState, Samples, fit

log = logging.getLogger(__name__)


LR = 3e-3


BATCH = 64


class _Curve(Callback):
    """Validation accuracy every ``every`` training seconds (and at the end of the budget),
    stamped with the fit's training time: evaluation does not count against the budget."""

    def __init__(
        self,
        model: nn.Module,
        data: StudyData,
        prior: torch.Tensor | None,
        *,
        seconds: float,
        every: float,
        offset: float,
    ):
        self.model, self.data, self.prior = model, data, prior
        self.seconds, self.every, self.offset = seconds, every, offset
        self.next = every
        self.points: list[tuple[float, float]] = []

    def on_step(self, state: FitState) -> None:
        t = state.train_time
        if t >= self.next or t >= self.seconds:
            acc = accuracy(self.model, self.data, "val", self.prior)  # back in train mode after
            self.points.append((self.offset + t, acc))
            self.next += self.every
            log.info("%s: %.0fs val acc %.3f", type(self.model).__name__, t, acc)


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
    """Train for ``seconds`` on a question set through the library's :func:`fit`; returns the
    val-accuracy curve and counts.

    Seconds are this process's CPU seconds spent in training steps
    (``FitConfig(max_train_time=seconds, train_clock="process")``; validation not
    counted): with one torch thread per process they match wall seconds on a quiet
    machine, and a busy one does not shrink the budget or stretch the curve's time axis,
    so the cost report compares like with like (:mod:`~brickwork.studies.clevr.nmn.cost`).
    The batches are index sets into the question set (``Samples({"idx": ...})``); Adam,
    gradients clipped at norm 5.

    With ``recorded`` (and cached ``priors``), training batches read the frozen find/scene
    outputs from their intermediate dataset instead of running those modules; the
    validation curve still runs the whole model."""
    qs, feats = data.sets[train_set], data.set_features(train_set)
    params = (
        list(params) if params is not None else [p for p in model.parameters() if p.requires_grad]
    )
    tr_prior = priors.get(train_set) if priors else None
    val_prior = priors.get("val") if priors else None
    seen = [0]

    def loss(m: nn.Module, batch: Samples) -> torch.Tensor:
        idx = batch["idx"]
        if recorded is not None and tr_prior is not None:
            logp = recorded.forward(
                qs.split,
                [qs.questions[i].program for i in idx.tolist()],
                qs.image[idx],
                feats[qs.image[idx]],
                tr_prior[idx],
            )
        else:
            logp = _forward(m, qs, feats, idx, tr_prior)
        seen[0] += len(idx)
        return nn.functional.nll_loss(logp, qs.answer[idx])

    curve = _Curve(model, data, val_prior, seconds=seconds, every=eval_every, offset=time_offset)
    config = FitConfig(
        epochs=10**6,  # the budget ends it
        batch_size=BATCH,
        lr=lr,
        seed=seed,
        grad_clip=5.0,
        max_train_time=seconds,
        train_clock="process",
    )
    index = Samples({"idx": torch.arange(len(qs), device=qs.answer.device)})
    res = fit(model, loss, index, config=config, parameters=params, callbacks=[curve])
    model.train()  # fit leaves the model in eval mode; callers go on training it
    return {
        "curve": curve.points,
        "seconds": res.train_time,
        "samples": seen[0],
        "steps": res.steps,
        "samples_per_second": seen[0] / max(res.train_time, 1e-9),
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
