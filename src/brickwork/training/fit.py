"""The one fit loop every training mode uses: mini-batches, optimizers, schedules, budgets,
keep-best weights, callbacks, per-epoch metrics files and resume.

Determinism: batches are shuffled with a generator seeded per epoch from the config's
seed, and the torch RNG state (dropout, noise) is saved in every checkpoint, so a run
resumed from a checkpoint ends with exactly the weights of an uninterrupted one (CPU).
A ``DataLoader`` keeps its own order (a shuffling loader draws from the torch RNG, which
is seeded and checkpointed too).

Budgets: ``max_steps`` counts optimizer steps, ``max_time`` wall-clock seconds (including
the time before a resume), ``max_train_time`` the seconds spent in training steps only
(forward, backward, optimizer; not validation, callbacks or ``on_step``), on the clock
``train_clock`` names: ``"wall"``, or ``"process"`` (this process's CPU seconds, so that
a busy machine neither shrinks the budget nor stretches a learning curve's time axis).
Each is checked after every step; the epoch in progress then ends at once and is still
recorded (training loss, validation, callbacks), so a result always has the metrics of
the weights it returns.

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

import csv
import io
import json
import math
import numbers
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import IO, Any, TypeVar, final

import torch

from brickwork.errors import BrickworkError, TrainingError
from brickwork.modules import atomic_write_bytes, module_device
from brickwork.training.callbacks import Callback, Checkpointer
from brickwork.training.checkpoint import load_checkpoint, read_meta, save_checkpoint
from brickwork.training.samples import Samples
from brickwork.training.seeding import derive_seed, seed_everything

#: the type of the trained model, as ``loss_fn`` and ``evaluate`` receive it
ModelT = TypeVar("ModelT", bound=torch.nn.Module)
LossFn = Callable[[ModelT, Samples], torch.Tensor]
EvalFn = Callable[[ModelT, Samples], Mapping[str, float]]
#: what ``train`` / ``val`` may be: samples, or a ``DataLoader`` (any iterable) of batches
Data = Samples | Iterable[Mapping[str, torch.Tensor] | Samples]

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULERS = ("cosine", "step", "plateau", "onecycle")
#: the ``scheduler_kwargs`` each named scheduler accepts
SCHEDULER_KWARGS: dict[str, tuple[str, ...]] = {
    "cosine": ("eta_min",),
    "step": ("step_size", "gamma"),
    "plateau": ("monitor", "mode", "factor", "patience", "threshold", "min_lr", "cooldown"),
    "onecycle": ("max_lr", "pct_start", "div_factor", "final_div_factor", "anneal_strategy"),
}
_KEEP_MODES = ("auto", "min", "max")
_CLOCKS = ("wall", "process")
#: scheduler options whose value is a name; every other option is a finite number
_NAME_OPTIONS = ("monitor", "mode", "anneal_strategy")


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _bad(name: str, value: Any, expected: str) -> TrainingError:
    return TrainingError(f"FitConfig.{name}: got {value!r}, expected {expected}")


@final
@dataclass(frozen=True)
class FitConfig:
    """Hyperparameters of one fit (every field JSON-serialisable, so plan files name them).

    Attributes:
        epochs: maximum number of epochs.
        batch_size: samples per step (ignored for a ``DataLoader``, which has its own).
        lr: learning rate (the peak rate for ``"onecycle"``).
        weight_decay: weight decay of the optimizer.
        seed: seeds initial RNG state and every epoch's shuffling.
        max_steps: optional cap on optimizer steps.
        grad_clip: optional cap on the gradients' global L2 norm (``None``: no clipping).
        optimizer: ``"adam"``, ``"adamw"``, ``"sgd"`` or ``"rmsprop"``.
        momentum: momentum of ``"sgd"`` / ``"rmsprop"`` (must be 0 for Adam/AdamW).
        scheduler: learning-rate schedule: ``None`` (constant), ``"cosine"`` (per step,
            from ``lr`` to ``eta_min`` over the planned steps), ``"onecycle"`` (per step,
            up to ``max_lr`` = ``lr`` then down), ``"step"`` (per epoch, ``lr *= gamma``
            every ``step_size`` epochs; defaults ``gamma=0.1``, ``step_size=epochs//3``)
            or ``"plateau"`` (per epoch, ``lr *= factor`` when ``monitor``, default
            ``val_loss`` with validation data else ``train_loss``, stops improving).
        scheduler_kwargs: options of the schedule (see :data:`SCHEDULER_KWARGS`).
        max_time: optional wall-clock budget in seconds.
        max_train_time: optional budget of seconds spent in training steps only (time in
            validation, callbacks and ``on_step`` does not count), on ``train_clock``.
        train_clock: the clock of ``max_train_time`` and ``FitState.train_time``:
            ``"wall"`` (``time.perf_counter``) or ``"process"`` (``time.process_time``:
            this process's CPU seconds; with one torch thread per process they match
            wall seconds on a quiet machine and are not bent by a busy one).
        keep_best: a metric of the epoch records (``"val_loss"``, ``"val_score"``); at the
            end the weights of the epoch where it was best are restored.
        keep_best_mode: ``"min"``, ``"max"`` or ``"auto"`` (``"min"`` when the name
            contains ``loss`` or ``error``, else ``"max"``).

    Raises:
        TrainingError: a field has a wrong type or value; the message names the field,
            the value found and what is expected.

    Example:
        >>> FitConfig(optimizer="sgd", momentum=0.9, scheduler="cosine").optimizer
        'sgd'
        >>> FitConfig(optimizer="lbfgs")
        Traceback (most recent call last):
        ...
        brickwork.errors.TrainingError: FitConfig.optimizer: got 'lbfgs',
        expected one of 'adam', 'adamw', 'sgd', 'rmsprop'
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    max_steps: int | None = None
    grad_clip: float | None = None
    optimizer: str = "adam"
    momentum: float = 0.0
    scheduler: str | None = None
    scheduler_kwargs: Mapping[str, Any] | None = field(default=None, hash=False)
    max_time: float | None = None
    max_train_time: float | None = None
    train_clock: str = "wall"
    keep_best: str | None = None
    keep_best_mode: str = "auto"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if not _is_int(v) or v < 1:
                raise _bad(name, v, "an integer >= 1")
        if not _is_number(self.lr) or not self.lr > 0:
            raise _bad("lr", self.lr, "a finite number > 0")
        if not _is_number(self.weight_decay) or self.weight_decay < 0:
            raise _bad("weight_decay", self.weight_decay, "a finite number >= 0")
        if not _is_int(self.seed):
            raise _bad("seed", self.seed, "an integer")
        if self.max_steps is not None and (not _is_int(self.max_steps) or self.max_steps < 1):
            raise _bad("max_steps", self.max_steps, "None or an integer >= 1")
        if self.grad_clip is not None and (
            not _is_number(self.grad_clip) or not self.grad_clip > 0
        ):
            raise _bad("grad_clip", self.grad_clip, "None or a finite number > 0")
        if self.optimizer not in OPTIMIZERS:
            raise _bad("optimizer", self.optimizer, "one of " + ", ".join(map(repr, OPTIMIZERS)))
        if not _is_number(self.momentum) or not 0 <= self.momentum < 1:
            raise _bad("momentum", self.momentum, "a number in [0, 1)")
        if self.momentum and self.optimizer in ("adam", "adamw"):
            raise _bad(
                "momentum",
                self.momentum,
                f"0 with optimizer {self.optimizer!r} (Adam "
                "has its own betas); use optimizer 'sgd' or 'rmsprop' for momentum",
            )
        if self.scheduler is not None and self.scheduler not in SCHEDULERS:
            raise _bad(
                "scheduler", self.scheduler, "None or one of " + ", ".join(map(repr, SCHEDULERS))
            )
        if self.scheduler_kwargs is not None:
            self._check_scheduler_kwargs()
        if self.max_time is not None and (not _is_number(self.max_time) or not self.max_time > 0):
            raise _bad("max_time", self.max_time, "None or a finite number of seconds > 0")
        if self.max_train_time is not None and (
            not _is_number(self.max_train_time) or not self.max_train_time > 0
        ):
            raise _bad(
                "max_train_time", self.max_train_time, "None or a finite number of seconds > 0"
            )
        if self.train_clock not in _CLOCKS:
            raise _bad("train_clock", self.train_clock, "'wall' or 'process'")
        if self.keep_best is not None and (
            not isinstance(self.keep_best, str) or not self.keep_best
        ):
            raise _bad("keep_best", self.keep_best, "None or a metric name such as 'val_loss'")
        if self.keep_best_mode not in _KEEP_MODES:
            raise _bad("keep_best_mode", self.keep_best_mode, "'min', 'max' or 'auto'")
        # numpy / optuna numbers become plain Python numbers (JSON, checkpoints)
        for f in fields(self):
            v = getattr(self, f.name)
            if _is_int(v) and type(v) is not int:
                object.__setattr__(self, f.name, int(v))
            elif isinstance(v, numbers.Real) and not isinstance(v, (bool, int, float)):
                object.__setattr__(self, f.name, float(v))

    def _check_scheduler_kwargs(self) -> None:
        kw = self.scheduler_kwargs
        if not isinstance(kw, Mapping):
            raise _bad("scheduler_kwargs", kw, "None or a mapping of option names to values")
        if self.scheduler is None:
            raise _bad(
                "scheduler_kwargs",
                dict(kw),
                "None when scheduler is None (name a scheduler or drop the options)",
            )
        allowed = SCHEDULER_KWARGS[self.scheduler]
        for k, v in kw.items():
            if k not in allowed:
                raise _bad(
                    "scheduler_kwargs",
                    dict(kw),
                    f"options of {self.scheduler!r} among "
                    f"{', '.join(map(repr, allowed))} (unknown option {k!r})",
                )
            if isinstance(v, str):
                ok = k in _NAME_OPTIONS
            else:
                ok = _is_number(v) and k not in _NAME_OPTIONS
            if not ok:
                raise _bad(
                    "scheduler_kwargs",
                    dict(kw),
                    f"a {'name' if k in _NAME_OPTIONS else 'finite number'} for option {k!r}",
                )
        object.__setattr__(self, "scheduler_kwargs", dict(kw))

    @property
    def best_mode(self) -> str:
        """``keep_best_mode`` with ``"auto"`` resolved from the metric's name."""
        if self.keep_best_mode != "auto":
            return self.keep_best_mode
        name = (self.keep_best or "").lower()
        return "min" if ("loss" in name or "error" in name) else "max"

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if out["scheduler_kwargs"] is not None:
            out["scheduler_kwargs"] = dict(out["scheduler_kwargs"])
        return out


def _same_config(saved: Mapping[str, Any] | None, config: FitConfig) -> bool:
    """Equal configs; a field missing from an older checkpoint counts as its default."""
    if not isinstance(saved, Mapping):
        return False
    now = json.loads(json.dumps(config.to_json()))
    defaults = {f.name: f.default for f in fields(FitConfig)}
    if set(saved) - set(now):
        return False
    return all(saved.get(k, defaults.get(k)) == v for k, v in now.items())


@dataclass
class FitState:
    """What callbacks see: the model, optimizer, counters and per-epoch history.

    Attributes:
        model: the model being trained.
        optimizer: its optimizer.
        config: the fit's config.
        callbacks: every callback of the fit.
        epoch: epochs finished.
        step: optimizer steps done.
        history: one record of metrics per finished epoch.
        stop: set it to end the fit: after this epoch from ``on_epoch_end``, after this
            step from ``on_step`` (the epoch in progress is still recorded).
        wall_time: seconds of training before this run (a resume).
        scheduler: the learning-rate scheduler (or None).
        device: where the model and the batches are.
        steps_per_epoch: batches per epoch (None for a loader without a length).
        total_steps: ``min(epochs * steps_per_epoch, max_steps)`` (None when unknown).
        stop_reason: ``"max_steps"``, ``"max_time"``, ``"max_train_time"``, ``"callback"``
            or None.
        best: best value of ``config.keep_best`` so far, ``best_epoch`` its epoch.
        train_time: seconds spent in training steps so far (including before a resume),
            on ``config.train_clock``; what ``max_train_time`` counts. A callback's
            ``on_step`` reads it to stamp a learning curve.
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    config: FitConfig
    callbacks: Sequence[Callback]
    epoch: int = 0
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    stop: bool = False
    wall_time: float = 0.0
    scheduler: Any = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    steps_per_epoch: int | None = None
    total_steps: int | None = None
    stop_reason: str | None = None
    best: float | None = None
    best_epoch: int | None = None
    train_time: float = 0.0
    _t0: float = 0.0
    _loss: float = math.nan
    _lr: float | None = None
    _best_weights: dict[str, torch.Tensor] | None = None

    @property
    def loss(self) -> float:
        """The loss of the last optimizer step."""
        return self._loss

    @property
    def lr(self) -> float:
        """The learning rate of the last optimizer step (first parameter group); before
        the first step, the one the first step will use."""
        if self._lr is not None:
            return self._lr
        return float(self.optimizer.param_groups[0]["lr"])

    def elapsed(self) -> float:
        """Seconds of training so far, including the time before a resume."""
        return self.wall_time + (time.perf_counter() - self._t0)

    def save_checkpoint(self, folder: str | Path) -> None:
        """Checkpoint everything needed to continue exactly from here."""
        extra = {f"best.{k}": v for k, v in (self._best_weights or {}).items()}
        for i, cb in enumerate(self.callbacks):
            extra.update({f"cb{i}.{k}": v for k, v in cb.tensor_state().items()})
        save_checkpoint(
            folder,
            self.model,
            self.optimizer,
            {
                "epoch": self.epoch,
                "step": self.step,
                "history": self.history,
                "stop": self.stop,
                "stop_reason": self.stop_reason,
                "wall_time": self.elapsed(),
                "train_time": self.train_time,
                "config": self.config.to_json(),
                "best": self.best,
                "best_epoch": self.best_epoch,
                "scheduler": _scheduler_state(self.scheduler),
                "callbacks": [cb.state_dict() for cb in self.callbacks],
            },
            extra=extra,
        )


@final
@dataclass(frozen=True)
class FitResult:
    """What a fit returns.

    Attributes:
        epochs: epochs run in total (including before a resume).
        steps: optimizer steps in total.
        wall_time: seconds of training in total (including before a resume).
        history: one record of metrics per epoch: ``epoch``, ``step`` (steps so far),
            ``train_loss``, ``lr`` (of the epoch's last step), ``val_loss`` and
            ``evaluate``'s metrics (with validation data), ``time`` (seconds so far).
        stopped_early: whether the run ended before ``epochs`` (a callback or a budget).
        resumed_from: the epoch a resume started from (0 for a fresh run).
        best_epoch: with ``keep_best``: the epoch whose weights the model holds now.
        best: with ``keep_best``: the metric's value at that epoch.
        stop_reason: ``"max_steps"``, ``"max_time"``, ``"max_train_time"``, ``"callback"`` or
            None (all epochs ran).
        train_time: seconds spent in training steps in total, on ``config.train_clock``.
    """

    epochs: int
    steps: int
    wall_time: float
    history: list[dict[str, Any]]
    stopped_early: bool
    resumed_from: int = 0
    best_epoch: int | None = None
    best: float | None = None
    stop_reason: str | None = None
    train_time: float = 0.0

    @property
    def final(self) -> dict[str, Any]:
        """The last epoch's metrics."""
        return dict(self.history[-1]) if self.history else {}


# --------------------------------------------------------------------------- data


def _as_samples(raw: Any, where: str) -> Samples:
    if isinstance(raw, Samples):
        return raw
    if isinstance(raw, Mapping):
        try:
            return Samples(raw)
        except (BrickworkError, AttributeError, TypeError) as exc:
            raise TrainingError(
                f"{where}: a batch must be a dict of tensors with one first "
                f"dimension, got keys {sorted(map(str, raw))} ({exc})"
            ) from None
    raise TrainingError(
        f"{where}: a DataLoader must yield dict[str, Tensor] or Samples, got "
        f"{type(raw).__name__}; return a dict from the dataset's __getitem__"
    )


def _check_data(data: Any, name: str, device: torch.device) -> Samples | Iterable[Any]:
    if isinstance(data, Samples):
        return data.to(device)
    if isinstance(data, Mapping):
        return _as_samples(data, f"fit({name}=...)").to(device)
    if isinstance(data, Iterable) and not isinstance(data, (str, bytes, torch.Tensor)):
        return data
    raise TrainingError(
        f"fit({name}=...): expected Samples or a DataLoader yielding dicts of "
        f"tensors, got {type(data).__name__}"
    )


def _steps_per_epoch(data: Samples | Iterable[Any], batch_size: int) -> int | None:
    if isinstance(data, Samples):
        return max(1, math.ceil(len(data) / batch_size))
    try:
        return max(1, len(data))  # type: ignore[arg-type]
    except TypeError:
        return None


def _batches(
    data: Samples | Iterable[Any],
    batch_size: int,
    device: torch.device,
    *,
    generator: torch.Generator | None,
    where: str,
) -> Iterable[Samples]:
    if isinstance(data, Samples):
        yield from data.batches(batch_size, shuffle=generator is not None, generator=generator)
        return
    for i, raw in enumerate(data):
        yield _as_samples(raw, f"{where}, batch {i}").to(device)


def _mean_loss(
    model: ModelT,
    loss_fn: LossFn[ModelT],
    data: Samples | Iterable[Any],
    batch_size: int,
    device: torch.device,
) -> float:
    total, n = 0.0, 0
    with torch.no_grad():
        for batch in _batches(data, batch_size, device, generator=None, where="val"):
            total += float(loss_fn(model, batch)) * len(batch)
            n += len(batch)
    return total / max(n, 1)


# --------------------------------------------------------------------------- optimizers


def _build_optimizer(config: FitConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    name, lr, wd = config.optimizer, config.lr, config.weight_decay
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=wd)
    return torch.optim.RMSprop(params, lr=lr, momentum=config.momentum, weight_decay=wd)


@dataclass
class _Schedule:
    scheduler: Any
    interval: str  # "step" or "epoch"
    monitor: str | None = None
    last_step: int | None = None  # do not step past this many optimizer steps (onecycle)


def _build_scheduler(
    config: FitConfig,
    optimizer: torch.optim.Optimizer,
    given: Any,
    total_steps: int | None,
    has_val: bool,
) -> _Schedule | None:
    sched = torch.optim.lr_scheduler
    default_monitor = "val_loss" if has_val else "train_loss"
    if given is not None:
        if isinstance(given, sched.ReduceLROnPlateau):
            return _Schedule(given, "epoch", default_monitor)
        if not hasattr(given, "step"):
            raise TrainingError(
                f"fit(scheduler=...): expected a torch LR scheduler, got {type(given).__name__}"
            )
        return _Schedule(given, "step")
    if config.scheduler is None:
        return None
    kw = dict(config.scheduler_kwargs or {})
    name = config.scheduler
    if name in ("cosine", "onecycle") and total_steps is None:
        raise TrainingError(
            f"FitConfig.scheduler: {name!r} needs the number of steps, which a "
            "DataLoader without a length does not give; set max_steps or use "
            "a loader with __len__"
        )
    if name == "cosine":
        return _Schedule(
            sched.CosineAnnealingLR(
                optimizer, T_max=max(1, total_steps or 1), eta_min=float(kw.get("eta_min", 0.0))
            ),
            "step",
        )
    if name == "onecycle":
        kw.setdefault("max_lr", config.lr)
        return _Schedule(
            sched.OneCycleLR(optimizer, total_steps=total_steps, **kw),
            "step",
            last_step=total_steps,
        )
    if name == "step":
        return _Schedule(
            sched.StepLR(
                optimizer,
                step_size=int(kw.get("step_size", max(1, config.epochs // 3))),
                gamma=float(kw.get("gamma", 0.1)),
            ),
            "epoch",
        )
    monitor = str(kw.pop("monitor", default_monitor))
    if monitor.startswith("val_") and not has_val:
        raise TrainingError(
            f"FitConfig.scheduler_kwargs: 'plateau' monitors {monitor!r} but "
            "fit got no val data; pass val=... or monitor 'train_loss'"
        )
    return _Schedule(sched.ReduceLROnPlateau(optimizer, **kw), "epoch", monitor)


def _scheduler_state(scheduler: Any) -> dict[str, Any] | None:
    if scheduler is None or not hasattr(scheduler, "state_dict"):
        return None
    out = {}
    for k, v in scheduler.state_dict().items():
        try:
            json.dumps(v)
        except (TypeError, ValueError):
            continue
        out[k] = v
    return out


# --------------------------------------------------------------------------- metrics files


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, torch.Tensor) and v.numel() == 1:
        return _json_value(v.item())
    return v


def _metrics_line(record: Mapping[str, Any]) -> str:
    return (
        json.dumps({k: _json_value(v) for k, v in record.items()}, allow_nan=False, default=str)
        + "\n"
    )


def read_metrics_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a metrics file written by ``fit(metrics_path=...)``.

    A last line cut short by a crash is skipped.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "metrics.jsonl"
        >>> _ = p.write_text('{"epoch": 1, "train_loss": 0.5}\\n{"epoch": 2, "tr')
        >>> read_metrics_jsonl(p)
        [{'epoch': 1, 'train_loss': 0.5}]
    """
    out = []
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


_FIRST_COLUMNS = ("epoch", "step", "train_loss", "lr", "val_loss")


def write_metrics_csv(
    history: Sequence[Mapping[str, Any]] | str | os.PathLike[str], path: str | os.PathLike[str]
) -> Path:
    """Write per-epoch metrics as CSV (atomically); returns ``path``.

    Args:
        history: a list of epoch records (``FitResult.history``) or the path of a
            metrics ``.jsonl`` file.
        path: the CSV file to write. Columns: ``epoch, step, train_loss, lr, val_loss``
            (those present), then every other key in first-seen order, ``time`` last; a
            missing or non-finite value is an empty cell.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "m.csv"
        >>> print(write_metrics_csv([{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25,
        ...                          "val": 0.1}], out).read_text(), end="")
        epoch,loss,val
        1,0.5,
        2,0.25,0.1
    """
    records = (
        read_metrics_jsonl(history) if isinstance(history, (str, os.PathLike)) else list(history)
    )
    columns: dict[str, None] = dict.fromkeys(
        k for k in _FIRST_COLUMNS if any(k in rec for rec in records)
    )
    for rec in records:
        columns.update(dict.fromkeys(k for k in rec if k != "time"))
    if any("time" in rec for rec in records):
        columns["time"] = None
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(columns))
    for rec in records:
        row = []
        for c in columns:
            v = _json_value(rec.get(c))
            row.append("" if v is None else v)
        writer.writerow(row)
    atomic_write_bytes(path, buf.getvalue().encode())
    return Path(path)


# --------------------------------------------------------------------------- fit


def fit(
    model: ModelT,
    loss_fn: LossFn[ModelT],
    train: Data,
    *,
    val: Data | None = None,
    evaluate: EvalFn[ModelT] | None = None,
    config: FitConfig = FitConfig(),
    callbacks: Iterable[Callback] = (),
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    parameters: Iterable[torch.nn.Parameter] | None = None,
    on_step: Callable[[int, float], None] | None = None,
    on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
    device: str | torch.device | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    metrics_path: str | Path | None = None,
) -> FitResult:
    """Train ``model`` by minimising ``loss_fn(model, batch)`` over ``train``.

    Args:
        model: holds every trained parameter (module plus any surrogate head).
        loss_fn: scalar loss of a batch (a :class:`Samples` on ``device``).
        train: training samples, or a ``torch.utils.data.DataLoader`` (any iterable)
            yielding ``dict[str, Tensor]`` or :class:`Samples` batches.
        val: validation data (same forms); each epoch records ``val_loss`` and
            ``evaluate``'s metrics.
        evaluate: extra validation metrics ``{name: value}`` (model in eval mode); gets
            the validation :class:`Samples` (a loader's batches concatenated).
        config: hyperparameters, seed, budgets, optimizer and schedule names.
        callbacks: early stopping, logging, progress, ...
        checkpoint_dir: checkpoint every epoch here (adds a :class:`Checkpointer`).
        resume: continue from the checkpoint in ``checkpoint_dir`` when there is one.
        parameters: the parameters to optimise (default: all of ``model``'s).
        on_step: called after every optimizer step with ``(step, loss)``.
        on_epoch: called after each epoch with ``(epoch, record)``; may raise to abort
            (HPO pruning).
        device: move the model and every batch there (default: where the model is).
            :class:`Samples` move there whole, once; a loader's batches one by one.
        optimizer: an optimizer object; overrides ``config.optimizer`` (and
            ``parameters``); build it after the model is on ``device``, or keep the
            model where it is.
        scheduler: an LR scheduler object; overrides ``config.scheduler``. It is stepped
            after every optimizer step, a ``ReduceLROnPlateau`` after every epoch with
            ``val_loss`` (``train_loss`` without validation data).
        metrics_path: a ``.jsonl`` file that gets one JSON object per epoch (rewritten
            from the history at the start, so it matches a resumed run).

    Raises:
        TrainingError: the loss became NaN, a resume does not match the config, the data
            or a ``keep_best`` metric is missing or malformed.
    """
    if not isinstance(config, FitConfig):
        raise TrainingError(f"fit(config=...): expected a FitConfig, got {type(config).__name__}")
    callbacks = list(callbacks)
    if checkpoint_dir is not None and not any(isinstance(c, Checkpointer) for c in callbacks):
        callbacks.append(Checkpointer(checkpoint_dir))
    dev = torch.device(device) if device is not None else module_device(model)
    if device is not None:
        model.to(dev)
    train = _check_data(train, "train", dev)
    if val is not None:
        val = _check_data(val, "val", dev)
    seed_everything(config.seed)
    if optimizer is None:
        params = list(parameters) if parameters is not None else list(model.parameters())
        optimizer = _build_optimizer(config, params)
    else:
        params = [p for group in optimizer.param_groups for p in group["params"]]
    steps_per_epoch = _steps_per_epoch(train, config.batch_size)
    total = steps_per_epoch * config.epochs if steps_per_epoch is not None else None
    if config.max_steps is not None:
        total = config.max_steps if total is None else min(total, config.max_steps)
    schedule = _build_scheduler(config, optimizer, scheduler, total, val is not None)
    state = FitState(
        model,
        optimizer,
        config,
        callbacks,
        device=dev,
        scheduler=schedule.scheduler if schedule else None,
        steps_per_epoch=steps_per_epoch,
        total_steps=total,
    )
    resumed_from = 0
    if resume and checkpoint_dir is not None and read_meta(checkpoint_dir) is not None:
        extra: dict[str, torch.Tensor] = {}
        meta = load_checkpoint(checkpoint_dir, model, optimizer, extra=extra)
        if not _same_config(meta.get("config"), config):
            raise TrainingError(
                f"{checkpoint_dir}: the checkpoint was written with config "
                f"{meta.get('config')}, this run uses {config.to_json()}; "
                "resume with the same config or delete the checkpoint"
            )
        state.epoch, state.step = int(meta["epoch"]), int(meta["step"])
        state.history, state.stop = list(meta["history"]), bool(meta.get("stop"))
        state.stop_reason = meta.get("stop_reason")
        state.wall_time = float(meta.get("wall_time", 0.0))
        state.train_time = float(meta.get("train_time", 0.0))
        state.best, state.best_epoch = meta.get("best"), meta.get("best_epoch")
        best = {k[5:]: v for k, v in extra.items() if k.startswith("best.")}
        state._best_weights = best or None
        if schedule is not None and meta.get("scheduler"):
            schedule.scheduler.load_state_dict(
                {**schedule.scheduler.state_dict(), **meta["scheduler"]}
            )
        for i, (cb, cb_state) in enumerate(zip(callbacks, meta.get("callbacks", []))):
            cb.load_state_dict(cb_state)
            prefix = f"cb{i}."
            cb.load_tensor_state(
                {k[len(prefix) :]: v for k, v in extra.items() if k.startswith(prefix)}
            )
        resumed_from = state.epoch
    metrics_file: IO[str] | None = None
    if metrics_path is not None:
        metrics_path = Path(metrics_path)
        atomic_write_bytes(metrics_path, "".join(map(_metrics_line, state.history)).encode())
        metrics_file = open(metrics_path, "a", encoding="utf-8")  # noqa: SIM115
    try:
        _loop(
            state,
            model,
            loss_fn,
            train,
            val,
            evaluate,
            schedule,
            params,
            on_step,
            on_epoch,
            metrics_file,
        )
    finally:
        if metrics_file is not None:
            metrics_file.close()
    if state.stop and state.stop_reason is None and state.epoch < config.epochs:
        state.stop_reason = "callback"
    if config.keep_best is not None and state._best_weights is not None:
        model.load_state_dict(state._best_weights)
    for cb in callbacks:
        cb.on_fit_end(state)
    model.eval()
    return FitResult(
        state.epoch,
        state.step,
        state.elapsed(),
        state.history,
        stopped_early=state.stop and state.epoch < config.epochs,
        resumed_from=resumed_from,
        best_epoch=state.best_epoch,
        best=state.best,
        stop_reason=state.stop_reason,
        train_time=state.train_time,
    )


def _loop(
    state: FitState,
    model: ModelT,
    loss_fn: LossFn[ModelT],
    train: Any,
    val: Any,
    evaluate: EvalFn[ModelT] | None,
    schedule: _Schedule | None,
    params: list[torch.nn.Parameter],
    on_step: Callable[[int, float], None] | None,
    on_epoch: Callable[[int, dict[str, Any]], None] | None,
    metrics_file: IO[str] | None,
) -> None:
    config, optimizer, dev = state.config, state.optimizer, state.device
    state._t0 = time.perf_counter()
    for cb in state.callbacks:
        cb.on_fit_start(state)
    step_hooks = [cb for cb in state.callbacks if type(cb).on_step is not Callback.on_step]
    clock = time.process_time if config.train_clock == "process" else time.perf_counter
    while not state.stop and state.epoch < config.epochs:
        if _budget_spent(state, steps=False):
            break
        model.train()
        gen = torch.Generator().manual_seed(derive_seed(config.seed, "epoch", state.epoch))
        total, n = 0.0, 0
        for batch in _batches(train, config.batch_size, dev, generator=gen, where="train"):
            t_step = clock()
            loss = loss_fn(model, batch)
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise TrainingError(
                    f"loss_fn must return a scalar tensor, got "
                    f"{type(loss).__name__}"
                    f"{list(loss.shape) if isinstance(loss, torch.Tensor) else ''}"
                )
            value = float(loss.detach())
            if not math.isfinite(value):
                raise TrainingError(
                    f"loss became {value} at epoch {state.epoch + 1}, step "
                    f"{state.step + 1}; lower the learning rate (now {state.lr}) "
                    "or check the inputs for NaNs"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            state._lr = float(optimizer.param_groups[0]["lr"])
            optimizer.step()
            state.train_time += clock() - t_step
            state.step += 1
            state._loss = value
            if (
                schedule is not None
                and schedule.interval == "step"
                and (schedule.last_step is None or state.step < schedule.last_step)
            ):
                schedule.scheduler.step()
            total += value * len(batch)
            n += len(batch)
            if on_step is not None:
                on_step(state.step, value)
            for cb in step_hooks:
                cb.on_step(state)
            if state.stop or _budget_spent(state, steps=True):
                break  # a step hook that stops the fit ends the epoch at once
        if n == 0:
            raise TrainingError(
                "fit: the training data gave no batch in epoch "
                f"{state.epoch + 1}; check that train is not empty"
            )
        state.epoch += 1
        record: dict[str, Any] = {
            "epoch": state.epoch,
            "step": state.step,
            "train_loss": total / n,
            "lr": state.lr,
        }
        if val is not None:
            model.eval()
            record["val_loss"] = _mean_loss(model, loss_fn, val, config.batch_size, dev)
            if evaluate is not None:
                data = (
                    val
                    if isinstance(val, Samples)
                    else Samples.concat(
                        list(_batches(val, config.batch_size, dev, generator=None, where="val"))
                    )
                )
                with torch.no_grad():
                    record.update({k: float(v) for k, v in evaluate(model, data).items()})
        record["time"] = state.elapsed()
        if config.max_train_time is not None or config.train_clock != "wall":
            record["train_time"] = state.train_time
        if schedule is not None and schedule.interval == "epoch":
            if schedule.monitor is not None:
                if schedule.monitor not in record:
                    raise TrainingError(
                        f"scheduler 'plateau' monitors {schedule.monitor!r}, "
                        f"which the epoch records lack; they have "
                        f"{sorted(record)}"
                    )
                schedule.scheduler.step(record[schedule.monitor])
            else:
                schedule.scheduler.step()
        _update_best(state, record)
        state.history.append(record)
        if metrics_file is not None:
            metrics_file.write(_metrics_line(record))
            metrics_file.flush()
        if on_epoch is not None:
            on_epoch(state.epoch, record)
        for cb in state.callbacks:
            cb.on_epoch_end(state)


def _budget_spent(state: FitState, *, steps: bool) -> bool:
    """Whether a budget is spent (``max_steps`` too when ``steps``); if so, the fit stops
    and ``state.stop_reason`` names the budget."""
    cfg = state.config
    spent = (
        ("max_steps", steps and cfg.max_steps is not None and state.step >= cfg.max_steps),
        ("max_time", cfg.max_time is not None and state.elapsed() >= cfg.max_time),
        (
            "max_train_time",
            cfg.max_train_time is not None and state.train_time >= cfg.max_train_time,
        ),
    )
    for reason, done in spent:
        if done:
            state.stop, state.stop_reason = True, reason
            return True
    return False


def _update_best(state: FitState, record: Mapping[str, Any]) -> None:
    name = state.config.keep_best
    if name is None:
        return
    if name not in record:
        raise TrainingError(
            f"FitConfig.keep_best: metric {name!r} is not in the epoch records "
            f"(they have {sorted(record)}); pass val=... for 'val_*' metrics "
            "or name one of these"
        )
    value = float(record[name])
    if math.isnan(value):
        return
    if state.best is None or (
        value < state.best if state.config.best_mode == "min" else value > state.best
    ):
        state.best, state.best_epoch = value, state.epoch
        state._best_weights = {k: v.detach().clone() for k, v in state.model.state_dict().items()}
