"""Callbacks of the fit loop: early stopping, checkpoints, logging, TensorBoard, progress.

A callback sees the :class:`~brickwork.training.fit.FitState` at the start, after each
optimizer step, after each epoch and at the end. Callbacks with state (early stopping)
expose ``state_dict`` / ``load_state_dict`` (JSON values) and, for tensors (best
weights), ``tensor_state`` / ``load_tensor_state``, so a resumed run continues exactly.

Logging: :class:`LogMetrics` and the fit loop log to the ``brickwork.training`` logger.
When the program has configured no logging at all (no handler on the way to the root
logger, and no level set on a ``brickwork`` logger), these INFO messages go to stderr
through a fallback handler, the way :data:`logging.lastResort` does for warnings (and
through ``tqdm.write`` so they do not break a progress bar). As soon as any handler is
configured (``logging.basicConfig(...)``), the normal logging rules apply and the
fallback stays silent.

Example:
    >>> stop = EarlyStopping(monitor="val_loss", patience=2)
    >>> [stop.update(v) for v in (1.0, 0.5, 0.6, 0.7)]
    [False, False, False, True]
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from brickwork.errors import TrainingError

if TYPE_CHECKING:
    from tqdm import tqdm as Tqdm

    from brickwork.training.fit import FitState

log = logging.getLogger("brickwork.training")


class _FallbackHandler(logging.Handler):
    """stderr at the time of the call, through ``tqdm.write`` (keeps progress bars intact)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
            try:
                from tqdm import tqdm

                tqdm.write(msg, file=sys.stderr)
            except ImportError:  # pragma: no cover - tqdm is a dependency
                sys.stderr.write(msg + "\n")
        except Exception:  # pragma: no cover - like logging.Handler.handleError
            self.handleError(record)


_FALLBACK = _FallbackHandler(logging.INFO)
_FALLBACK.setFormatter(logging.Formatter("%(message)s"))


def _nothing_configured(logger: logging.Logger) -> bool:
    """No handler anywhere up to the root and no level set on a brickwork logger."""
    if logger.hasHandlers():
        return False
    node: logging.Logger | None = logger
    while node is not None and node.name.startswith("brickwork"):
        if node.level != logging.NOTSET:
            return False
        node = node.parent
    return True


def log_info(logger: logging.Logger, msg: str, *args: Any) -> None:
    """``logger.info(msg, *args)`` that is seen even when logging is not configured.

    Library code logs, never prints: with a configured logging system this is exactly
    ``logger.info``; with none, the record goes to stderr through a fallback handler
    (like :data:`logging.lastResort`, but for INFO). Silence it with
    ``logging.getLogger("brickwork").setLevel(logging.WARNING)`` or by configuring logging.

    Example:
        >>> log_info(logging.getLogger("brickwork.doc"), "%d epochs", 3)
    """
    if _nothing_configured(logger):
        _FALLBACK.handle(
            logger.makeRecord(logger.name, logging.INFO, "(brickwork)", 0, msg, args, None)
        )
    else:
        logger.info(msg, *args)


class Callback:
    """Abstract base: override any of the hooks."""

    def on_fit_start(self, state: FitState) -> None:
        """Called once before the first epoch (also after a resume)."""

    def on_step(self, state: FitState) -> None:
        """Called after every optimizer step (``state.step``, ``state.loss``, ``state.lr``,
        ``state.train_time``); setting ``state.stop`` ends the fit after this step."""

    def on_epoch_end(self, state: FitState) -> None:
        """Called after every epoch with ``state.history[-1]`` holding its metrics."""

    def on_fit_end(self, state: FitState) -> None:
        """Called once after the last epoch."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def tensor_state(self) -> dict[str, torch.Tensor]:
        """Tensors to keep in checkpoints (e.g. best weights); empty by default."""
        return {}

    def load_tensor_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`tensor_state` returned."""


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs.

    Args:
        monitor: metric name in the epoch's record.
        patience: epochs without improvement before stopping.
        mode: ``"min"`` or ``"max"``.
        min_delta: smallest change that counts as an improvement.
        restore_best: at the end of the fit, put back the weights of the best epoch
            (kept in memory and in checkpoints, so a resumed run restores them too).

    Example:
        >>> import torch
        >>> from brickwork.training.samples import Samples
        >>> from brickwork.training.fit import FitConfig, fit
        >>> x = torch.randn(32, 2); data = Samples({"x": x, "y": x.sum(1, keepdim=True)})
        >>> stop = EarlyStopping("val_loss", patience=3, restore_best=True)
        >>> model = torch.nn.Linear(2, 1)
        >>> loss = lambda m, b: torch.nn.functional.mse_loss(m(b["x"]), b["y"])
        >>> _ = fit(model, loss, data, val=data, config=FitConfig(epochs=5), callbacks=[stop])
        >>> stop.best_epoch is not None
        True
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        mode: str = "min",
        min_delta: float = 0.0,
        *,
        restore_best: bool = False,
    ):
        if mode not in ("min", "max"):
            raise TrainingError(f"EarlyStopping: mode must be 'min' or 'max', got {mode!r}")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise TrainingError(f"EarlyStopping: patience must be an int >= 1, got {patience!r}")
        self.monitor, self.patience, self.mode, self.min_delta = monitor, patience, mode, min_delta
        self.restore_best = bool(restore_best)
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self._best_weights: dict[str, torch.Tensor] | None = None

    def update(self, value: float) -> bool:
        """Record ``value``; True when training should stop."""
        better = self._better(value)
        if better:
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def _better(self, value: float) -> bool:
        return self.best is None or (
            value < self.best - self.min_delta
            if self.mode == "min"
            else value > self.best + self.min_delta
        )

    def on_epoch_end(self, state: FitState) -> None:
        value = state.history[-1].get(self.monitor)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return
        improved = self._better(float(value))
        if self.update(float(value)):
            state.stop = True
            log_info(
                log,
                "early stopping at epoch %d (%s best %.4g at epoch %s)",
                state.epoch,
                self.monitor,
                self.best,
                self.best_epoch,
            )
        if improved:
            self.best_epoch = state.epoch
            if self.restore_best:
                self._best_weights = {
                    k: v.detach().clone() for k, v in state.model.state_dict().items()
                }

    def on_fit_end(self, state: FitState) -> None:
        if self.restore_best and self._best_weights is not None:
            state.model.load_state_dict(self._best_weights)
            log_info(
                log,
                "restored the weights of epoch %s (%s %.4g)",
                self.best_epoch,
                self.monitor,
                self.best,
            )

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad_epochs": self.bad_epochs, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.bad_epochs = state.get("best"), int(state.get("bad_epochs", 0))
        self.best_epoch = state.get("best_epoch")

    def tensor_state(self) -> dict[str, torch.Tensor]:
        return dict(self._best_weights or {})

    def load_tensor_state(self, tensors: dict[str, torch.Tensor]) -> None:
        self._best_weights = dict(tensors) if tensors else None


class Checkpointer(Callback):
    """Write a resumable checkpoint every ``every`` epochs into ``folder``."""

    def __init__(self, folder: str | os.PathLike[str], every: int = 1):
        self.folder = Path(folder)
        self.every = max(1, int(every))

    def on_epoch_end(self, state: FitState) -> None:
        if state.epoch % self.every == 0 or state.stop:
            state.save_checkpoint(self.folder)


class LogMetrics(Callback):
    """Log every epoch's metrics at INFO level (``brickwork.training`` logger).

    Seen even when the program configured no logging (see the module docstring).

    Args:
        name: a label in front of each line (the module's name).
        every_steps: also log the running loss every that many optimizer steps
            (0: only per epoch).

    Example:
        >>> LogMetrics("find[red]").name
        'find[red]'
    """

    def __init__(self, name: str = "", every_steps: int = 0):
        self.name = name
        self.every_steps = max(0, int(every_steps))

    def on_step(self, state: FitState) -> None:
        if self.every_steps and state.step % self.every_steps == 0:
            log_info(
                log, "%s step=%d loss=%.4g lr=%.3g", self.name, state.step, state.loss, state.lr
            )

    def on_epoch_end(self, state: FitState) -> None:
        rec = state.history[-1]
        text = " ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.items()
        )
        log_info(log, "%s %s", self.name, text)

    def on_fit_end(self, state: FitState) -> None:
        if state.stop_reason in ("max_time", "max_steps"):
            log_info(
                log,
                "%s stopped by %s after %d steps (epoch %d)",
                self.name,
                state.stop_reason,
                state.step,
                state.epoch,
            )


class TensorBoard(Callback):
    """Write epoch metrics as TensorBoard scalars (needs the ``tensorboard`` extra)."""

    def __init__(self, logdir: str | os.PathLike[str]):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise TrainingError(
                "TensorBoard logging needs the optional 'tensorboard' package; "
                "install it with `pip install brickwork[tensorboard]` or drop "
                "--tensorboard"
            ) from None
        self.writer = SummaryWriter(str(logdir))

    def on_epoch_end(self, state: FitState) -> None:
        for k, v in state.history[-1].items():
            if isinstance(v, (int, float)) and k != "epoch":
                self.writer.add_scalar(k, v, state.epoch)

    def on_fit_end(self, state: FitState) -> None:
        self.writer.flush()
        self.writer.close()


class ProgressBar(Callback):
    """A tqdm bar over optimizer steps (to stderr).

    The total is ``min(epochs * steps_per_epoch, max_steps)`` (unknown for a
    ``DataLoader`` without a length); with ``max_time`` the bar shows the elapsed time
    against the limit. When a budget or a callback ends the fit early, the bar's total
    is set to the steps done, so it ends full instead of at "3/100".

    Args:
        desc: the bar's label.
        position: tqdm ``position`` (for several bars at once).

    Example:
        >>> ProgressBar("find[red]").desc
        'find[red]'
    """

    def __init__(self, desc: str = "steps", position: int | None = None):
        self.desc, self.position = desc, position
        self.bar: Tqdm[Any] | None = None
        self._last_post = 0.0

    def on_fit_start(self, state: FitState) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=state.total_steps,
            initial=state.step,
            desc=self.desc,
            position=self.position,
            leave=False,
            unit="step",
        )
        self._postfix(state, {})

    def _postfix(self, state: FitState, extra: dict[str, str]) -> None:
        if self.bar is None:
            return
        post = {"epoch": f"{state.epoch}/{state.config.epochs}"}
        if state.config.max_time is not None:
            post["time"] = f"{state.elapsed():.0f}/{state.config.max_time:g}s"
        post.update(extra)
        self.bar.set_postfix(post, refresh=False)
        self._last_post = time.perf_counter()

    def on_step(self, state: FitState) -> None:
        if self.bar is not None:
            self.bar.update(1)
            if state.config.max_time is not None and time.perf_counter() - self._last_post > 1.0:
                self._postfix(state, {})

    def on_epoch_end(self, state: FitState) -> None:
        if self.bar is not None:
            rec = state.history[-1]
            self._postfix(
                state,
                {
                    k: f"{v:.3g}"
                    for k, v in rec.items()
                    if isinstance(v, float) and k not in ("time", "lr")
                },
            )

    def on_fit_end(self, state: FitState) -> None:
        if self.bar is not None:
            if self.bar.total is None or self.bar.n < self.bar.total:
                self.bar.total = self.bar.n
            self.bar.refresh()
            self.bar.close()
