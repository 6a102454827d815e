"""Callbacks of the fit loop: early stopping, checkpoints, logging, TensorBoard, progress.

A callback sees the :class:`~brickwork.training.fit.FitState` at the start, after each
epoch and at the end. Callbacks with state (early stopping) expose ``state_dict`` /
``load_state_dict`` (JSON values) so a resumed run continues exactly.

Example:
    >>> stop = EarlyStopping(monitor="val_loss", patience=2)
    >>> [stop.update(v) for v in (1.0, 0.5, 0.6, 0.7)]
    [False, False, False, True]
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from brickwork.errors import TrainingError

if TYPE_CHECKING:
    from brickwork.training.fit import FitState

log = logging.getLogger("brickwork.training")


class Callback:
    """Abstract base: override any of the hooks."""

    def on_fit_start(self, state: FitState) -> None:
        """Called once before the first epoch (also after a resume)."""

    def on_epoch_end(self, state: FitState) -> None:
        """Called after every epoch with ``state.history[-1]`` holding its metrics."""

    def on_fit_end(self, state: FitState) -> None:
        """Called once after the last epoch."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs.

    Args:
        monitor: metric name in the epoch's record.
        patience: epochs without improvement before stopping.
        mode: ``"min"`` or ``"max"``.
        min_delta: smallest change that counts as an improvement.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, mode: str = "min",
                 min_delta: float = 0.0):
        if mode not in ("min", "max"):
            raise TrainingError(f"EarlyStopping: mode must be 'min' or 'max', got {mode!r}")
        self.monitor, self.patience, self.mode, self.min_delta = monitor, patience, mode, min_delta
        self.best: float | None = None
        self.bad_epochs = 0

    def update(self, value: float) -> bool:
        """Record ``value``; True when training should stop."""
        better = (self.best is None or
                  (value < self.best - self.min_delta if self.mode == "min"
                   else value > self.best + self.min_delta))
        if better:
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def on_epoch_end(self, state: FitState) -> None:
        value = state.history[-1].get(self.monitor)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return
        if self.update(float(value)):
            state.stop = True
            log.info("early stopping at epoch %d (%s best %.4g)", state.epoch, self.monitor,
                     self.best)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.bad_epochs = state.get("best"), int(state.get("bad_epochs", 0))


class Checkpointer(Callback):
    """Write a resumable checkpoint every ``every`` epochs into ``folder``."""

    def __init__(self, folder: str | os.PathLike[str], every: int = 1):
        self.folder = Path(folder)
        self.every = max(1, int(every))

    def on_epoch_end(self, state: FitState) -> None:
        if state.epoch % self.every == 0 or state.stop:
            state.save_checkpoint(self.folder)


class LogMetrics(Callback):
    """Log every epoch's metrics at INFO level (``brickwork.training`` logger)."""

    def __init__(self, name: str = ""):
        self.name = name

    def on_epoch_end(self, state: FitState) -> None:
        rec = state.history[-1]
        text = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in rec.items())
        log.info("%s %s", self.name, text)


class TensorBoard(Callback):
    """Write epoch metrics as TensorBoard scalars (needs the ``tensorboard`` extra)."""

    def __init__(self, logdir: str | os.PathLike[str]):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise TrainingError("TensorBoard logging needs the optional 'tensorboard' package; "
                                "install it with `pip install brickwork[tensorboard]` or drop "
                                "--tensorboard") from None
        self.writer = SummaryWriter(str(logdir))

    def on_epoch_end(self, state: FitState) -> None:
        for k, v in state.history[-1].items():
            if isinstance(v, (int, float)) and k != "epoch":
                self.writer.add_scalar(k, v, state.epoch)

    def on_fit_end(self, state: FitState) -> None:
        self.writer.flush()
        self.writer.close()


class ProgressBar(Callback):
    """A tqdm bar over epochs (to stderr)."""

    def __init__(self, desc: str = "epochs", position: int | None = None):
        self.desc, self.position, self.bar = desc, position, None

    def on_fit_start(self, state: FitState) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=state.config.epochs, initial=state.epoch, desc=self.desc,
                        position=self.position, leave=False)

    def on_epoch_end(self, state: FitState) -> None:
        if self.bar is not None:
            self.bar.update(1)
            rec = state.history[-1]
            self.bar.set_postfix({k: f"{v:.3g}" for k, v in rec.items()
                                  if isinstance(v, float)}, refresh=False)

    def on_fit_end(self, state: FitState) -> None:
        if self.bar is not None:
            self.bar.close()
