"""The one fit loop every training mode uses: mini-batches, Adam, callbacks, resume.

Determinism: batches are shuffled with a generator seeded per epoch from the config's
seed, and the torch RNG state (dropout, noise) is saved in every checkpoint, so a run
resumed from a checkpoint ends with exactly the weights of an uninterrupted one (CPU).

Example:
    >>> import torch
    >>> from brickwork.training import Samples
    >>> x = torch.randn(64, 3); data = Samples({"x": x, "y": x.sum(1, keepdim=True)})
    >>> model = torch.nn.Linear(3, 1)
    >>> loss = lambda m, b: torch.nn.functional.mse_loss(m(b["x"]), b["y"])
    >>> result = fit(model, loss, data, config=FitConfig(epochs=30, lr=0.05, batch_size=16))
    >>> result.history[-1]["train_loss"] < 0.05, result.steps
    (True, 120)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, final

import torch

from brickwork.errors import TrainingError
from brickwork.training.callbacks import Callback, Checkpointer
from brickwork.training.checkpoint import load_checkpoint, read_meta, save_checkpoint
from brickwork.training.samples import Samples
from brickwork.training.seeding import derive_seed, seed_everything

LossFn = Callable[[torch.nn.Module, Samples], torch.Tensor]
EvalFn = Callable[[torch.nn.Module, Samples], Mapping[str, float]]


@final
@dataclass(frozen=True)
class FitConfig:
    """Hyperparameters of one fit.

    Attributes:
        epochs: maximum number of epochs.
        batch_size: samples per step.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        seed: seeds initial RNG state and every epoch's shuffling.
        max_steps: optional cap on optimizer steps.
        grad_clip: optional gradient-norm clip.
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    max_steps: int | None = None
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise TrainingError(f"FitConfig: epochs and batch_size must be >= 1 and lr > 0, got "
                                f"{self.epochs}, {self.batch_size}, {self.lr}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FitState:
    """What callbacks see: the model, optimizer, counters and per-epoch history."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    config: FitConfig
    callbacks: Sequence[Callback]
    epoch: int = 0
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    stop: bool = False
    wall_time: float = 0.0
    _t0: float = 0.0

    def save_checkpoint(self, folder: str | Path) -> None:
        """Checkpoint everything needed to continue exactly from here."""
        save_checkpoint(folder, self.model, self.optimizer, {
            "epoch": self.epoch, "step": self.step, "history": self.history,
            "stop": self.stop, "wall_time": self.wall_time + (time.perf_counter() - self._t0),
            "config": self.config.to_json(),
            "callbacks": [cb.state_dict() for cb in self.callbacks]})


@final
@dataclass(frozen=True)
class FitResult:
    """What a fit returns.

    Attributes:
        epochs: epochs run in total (including before a resume).
        steps: optimizer steps in total.
        wall_time: seconds of training in total (including before a resume).
        history: one record of metrics per epoch.
        stopped_early: whether a callback stopped the run.
        resumed_from: the epoch a resume started from (0 for a fresh run).
    """

    epochs: int
    steps: int
    wall_time: float
    history: list[dict[str, Any]]
    stopped_early: bool
    resumed_from: int = 0

    @property
    def final(self) -> dict[str, Any]:
        """The last epoch's metrics."""
        return dict(self.history[-1]) if self.history else {}


def _mean_loss(model: torch.nn.Module, loss_fn: LossFn, data: Samples, batch_size: int) -> float:
    total, n = 0.0, 0
    with torch.no_grad():
        for batch in data.batches(batch_size, shuffle=False):
            total += float(loss_fn(model, batch)) * len(batch)
            n += len(batch)
    return total / max(n, 1)


def fit(model: torch.nn.Module, loss_fn: LossFn, train: Samples, *,
        val: Samples | None = None, evaluate: EvalFn | None = None,
        config: FitConfig = FitConfig(), callbacks: Iterable[Callback] = (),
        checkpoint_dir: str | Path | None = None, resume: bool = False,
        parameters: Iterable[torch.nn.Parameter] | None = None,
        on_step: Callable[[int, float], None] | None = None) -> FitResult:
    """Train ``model`` by minimising ``loss_fn(model, batch)`` over ``train``.

    Args:
        model: holds every trained parameter (module plus any surrogate head).
        loss_fn: scalar loss of a batch.
        train: training samples.
        val: validation samples; each epoch records ``val_loss`` and ``evaluate``'s metrics.
        evaluate: extra validation metrics ``{name: value}`` (model in eval mode).
        config: hyperparameters and seed.
        callbacks: early stopping, logging, progress, ...
        checkpoint_dir: checkpoint every epoch here (adds a :class:`Checkpointer`).
        resume: continue from the checkpoint in ``checkpoint_dir`` when there is one.
        parameters: the parameters to optimise (default: all of ``model``'s).
        on_step: called after each epoch with ``(epoch, val metric)``; may raise to
            abort (HPO pruning).

    Raises:
        TrainingError: the loss became NaN, or a resume does not match the config.
    """
    callbacks = list(callbacks)
    if checkpoint_dir is not None and not any(isinstance(c, Checkpointer) for c in callbacks):
        callbacks.append(Checkpointer(checkpoint_dir))
    seed_everything(config.seed)
    params = list(parameters) if parameters is not None else list(model.parameters())
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    state = FitState(model, optimizer, config, callbacks)
    resumed_from = 0
    if resume and checkpoint_dir is not None and read_meta(checkpoint_dir) is not None:
        meta = load_checkpoint(checkpoint_dir, model, optimizer)
        if meta.get("config") != config.to_json():
            raise TrainingError(f"{checkpoint_dir}: the checkpoint was written with config "
                                f"{meta.get('config')}, this run uses {config.to_json()}; "
                                "resume with the same config or delete the checkpoint")
        state.epoch, state.step = int(meta["epoch"]), int(meta["step"])
        state.history, state.stop = list(meta["history"]), bool(meta.get("stop"))
        state.wall_time = float(meta.get("wall_time", 0.0))
        for cb, cb_state in zip(callbacks, meta.get("callbacks", [])):
            cb.load_state_dict(cb_state)
        resumed_from = state.epoch
    state._t0 = time.perf_counter()
    for cb in callbacks:
        cb.on_fit_start(state)
    while not state.stop and state.epoch < config.epochs:
        model.train()
        gen = torch.Generator().manual_seed(derive_seed(config.seed, "epoch", state.epoch))
        total, n = 0.0, 0
        for batch in train.batches(config.batch_size, generator=gen):
            loss = loss_fn(model, batch)
            if not torch.isfinite(loss):
                raise TrainingError(f"loss became {float(loss)} at epoch {state.epoch + 1}, step "
                                    f"{state.step + 1}; lower the learning rate (now {config.lr}) "
                                    "or check the inputs for NaNs")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            state.step += 1
            total += float(loss.detach()) * len(batch)
            n += len(batch)
            if config.max_steps is not None and state.step >= config.max_steps:
                state.stop = True
                break
        state.epoch += 1
        record: dict[str, Any] = {"epoch": state.epoch, "step": state.step,
                                  "train_loss": total / max(n, 1)}
        if val is not None:
            model.eval()
            record["val_loss"] = _mean_loss(model, loss_fn, val, config.batch_size)
            if evaluate is not None:
                with torch.no_grad():
                    record.update({k: float(v) for k, v in evaluate(model, val).items()})
        state.history.append(record)
        if on_step is not None:
            on_step(state.epoch, record)
        for cb in callbacks:
            cb.on_epoch_end(state)
    for cb in callbacks:
        cb.on_fit_end(state)
    model.eval()
    wall = state.wall_time + (time.perf_counter() - state._t0)
    if math.isnan(wall):  # pragma: no cover
        wall = 0.0
    return FitResult(state.epoch, state.step, wall, state.history,
                     stopped_early=state.stop and state.epoch < config.epochs,
                     resumed_from=resumed_from)
