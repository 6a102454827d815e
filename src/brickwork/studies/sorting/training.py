"""Modular training (§3.2.2): every operator and controller trained on its own, from
teacher traces, with input noise (the types' ``noise``: eq. 3.1/3.2), cross-entropy,
Adam, until error ≤ 1 % and saturation ≤ 1 % (or the loss stalls or falls under 1e-6);
then, for generalization runs, further training towards a stricter error.

Every unit trains through the library's :func:`~brickwork.training.fit`: the batches are
drawn on the fly (one per step, from the curriculum's current length), and the
curriculum, validation, stop rules and history are a callback (:class:`StepRules`). The
study runs units in parallel on a :class:`~brickwork.training.LocalExecutor`.

Example:
    >>> cfg = TrainConfig(max_length=3, train_lists=60, val_lists=20, max_seconds=5)
    >>> result = train_unit("addr.mova", seed=0, cfg=cfg)
    >>> result["stop_reason"] in ("criteria", "loss_floor", "stalled", "time_cap")
    True
"""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, final

import numpy as np
import torch
from safetensors.torch import load as st_load

from brickwork.agent import Controller, ModuleOperator
from brickwork.errors import TrainingError
from brickwork.modules import Module, state_bytes
from brickwork.studies.sorting.data import (
    Transitions,
    add_noise,
    batch_representation,
    build_transitions,
    training_lists,
)
from brickwork.studies.sorting.variants import (
    OPERATORS,
    addressed_controller,
    addressed_operators,
    new_modules,
    thesis_controller,
    thesis_operators,
)
from brickwork.training import Callback, FitConfig, FitState, Samples, fit
from brickwork.types import NeuralType

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Everything modular training depends on (recorded with the results).

    Attributes:
        max_length: longest training list (curriculum from 2 up to it).
        batch: decisions per batch for operators.
        controller_batch: episodes per batch for controllers.
        lr: Adam learning rate.
        error, saturation: the stopping criteria (§3.2.2).
        extra_error: error aimed at by the extra (generalization) training.
        extra_factor: extra iterations, at least this × the iterations to criterion.
        extra_max_seconds: wall cap of the extra training per unit.
        max_seconds: wall cap per unit to reach the criteria.
        hidden: hidden units of the thesis LSTMs.
        train_lists, val_lists: lists the traces come from (training / validation).
        eval_every: iterations between validations.
        stall_evals: validations without a 1 % better validation loss -> stalled.
        stage_evals: a curriculum stage also ends after this many validations (short
            lists hold few examples; a module may need the longer ones to generalize).
        curriculum: grow the list length from 2 as the error criterion is met.
    """

    max_length: int = 7
    batch: int = 64
    controller_batch: int = 16
    lr: float = 1e-3
    error: float = 0.01
    saturation: float = 0.01
    extra_error: float = 0.001
    extra_factor: float = 1.0
    extra_max_seconds: float = 120.0
    max_seconds: float = 600.0
    hidden: int = 100
    train_lists: int = 3000
    val_lists: int = 300
    eval_every: int = 50
    stall_evals: int = 60
    stage_evals: int = 10
    curriculum: bool = True

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# ----- data --------------------------------------------------------------------------------
@dataclass
class _Data:
    train: Transitions
    val: Transitions
    digest: str


_DATA_CACHE: dict[tuple, _Data] = {}


def unit_data(unit: str, seed: int, cfg: TrainConfig) -> _Data:
    """Teacher transitions for a unit (recursive traces for ``rec.*``), cached per process."""
    recursive = unit.startswith("rec.")
    key = (recursive, seed, cfg.max_length, cfg.train_lists, cfg.val_lists)
    if key not in _DATA_CACHE:
        train = build_transitions(
            training_lists(cfg.train_lists, cfg.max_length, seed),
            recursive=recursive,
            pad_to=cfg.max_length,
        )
        val = build_transitions(
            training_lists(cfg.val_lists, cfg.max_length, seed + 100_003),
            recursive=recursive,
            pad_to=cfg.max_length,
        )
        _DATA_CACHE[key] = _Data(train, val, train.digest())
    return _DATA_CACHE[key]


# ----- losses and measures ------------------------------------------------------------------
def port_loss(t: NeuralType, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for a port: categorical for distributions, binary for masks."""
    if t.is_distribution:
        return -(target * torch.log(out.clamp(min=1e-8))).sum(-1).mean()
    return torch.nn.functional.binary_cross_entropy(out.clamp(1e-6, 1 - 1e-6), target)


def port_errors(t: NeuralType, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per sample: whether any code of the output is wrong (argmax, or > 0.5 for masks)."""
    if t.is_distribution:
        wrong = out.argmax(-1) != target.argmax(-1)
    else:
        wrong = (out > 0.5) != (target > 0.5)
    return wrong.reshape(wrong.shape[0], -1).any(-1)


def mean_abs_grad(params: Iterable[torch.nn.Parameter]) -> float:
    """Mean absolute gradient per parameter (Fig. 3.8)."""
    total, count = 0.0, 0
    for p in params:
        if p.grad is not None:
            total += float(p.grad.abs().sum())
            count += p.grad.numel()
    return total / max(count, 1)


# ----- one unit ---------------------------------------------------------------------------------
class _Task(abc.ABC):
    """A unit's training task: a step's batch of lists up to a length, and validation.

    ``pools[L]`` / ``val_pools[L]`` index what a batch of length ≤ L draws from
    (transitions for an operator, episodes for a controller); ``size`` draws per batch.
    """

    params: list[torch.nn.Parameter]
    pools: dict[int, np.ndarray]
    val_pools: dict[int, np.ndarray]
    size: int

    @abc.abstractmethod
    def _run(
        self, split: str, rows: np.ndarray, gen: torch.Generator, *, measure: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Loss, per-sample error and saturation (when ``measure``) of ``rows`` of a split."""

    def first_length(self) -> int:
        return min(L for L, r in self.pools.items() if len(r) and len(self.val_pools[L]))

    def step_loss(
        self, length: int, rng: np.random.Generator, gen: torch.Generator
    ) -> torch.Tensor:
        pool = self.pools[length]
        return self._run("train", pool[rng.integers(0, len(pool), size=self.size)], gen)[0]

    def validate(self, length: int) -> tuple[float, float, float]:
        gen = torch.Generator().manual_seed(1234)
        with torch.no_grad():
            loss, wrong, sat = self._run("val", self.val_pools[length], gen, measure=True)
        return float(loss), float(wrong.mean()), sat


@final
class _OperatorTask(_Task):
    def __init__(
        self, op: ModuleOperator, data: _Data, cfg: TrainConfig, device: torch.device | str = "cpu"
    ):
        self.op, self.size, self.device = op, cfg.batch, torch.device(device)
        k = data.train.ops.index(op.name)
        self.data = {"train": data.train, "val": data.val}
        lengths = range(2, cfg.max_length + 1)
        self.pools = {
            L: np.nonzero((data.train.op == k) & (data.train.length <= L))[0] for L in lengths
        }
        self.val_pools = {
            L: np.nonzero((data.val.op == k) & (data.val.length <= L))[0][:1024] for L in lengths
        }
        self.params = list(op.functional.parameters())

    def _run(
        self, split: str, rows: np.ndarray, gen: torch.Generator, *, measure: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, float]:
        # built and noised on the CPU (the generator's device), then moved: a seed gives
        # the same batches on every device
        tr = self.data[split]
        before = batch_representation(tr, rows)
        after = batch_representation(tr, rows, after=True)
        noisy = add_noise(before, gen).to(self.device)
        before, after = before.to(self.device), after.to(self.device)
        out = self.op.functional.call_ports(**self.op.gather(noisy))
        targets = self.op.targets(before, after)
        outs = self.op.functional.outputs
        losses = (port_loss(outs[p], out[p], targets[p]) for p in outs)
        loss = sum(losses, torch.zeros((), device=self.device))
        wrong = torch.stack([port_errors(outs[p], out[p], targets[p]) for p in outs]).any(0)
        sat = float(np.mean([outs[p].saturation(out[p]) for p in outs])) if measure else 0.0
        return loss, wrong.float(), sat


@final
class _ControllerTask(_Task):
    def __init__(
        self, ctl: Controller, data: _Data, cfg: TrainConfig, device: torch.device | str = "cpu"
    ):
        self.ctl, self.size, self.device = ctl, cfg.controller_batch, torch.device(device)
        self.data = {"train": data.train, "val": data.val}
        self.params = list(ctl.parameters())
        self.ep = {name: self._episodes(tr) for name, tr in self.data.items()}
        lengths = range(2, cfg.max_length + 1)
        self.pools = {L: np.nonzero(self.ep["train"][2] <= L)[0] for L in lengths}
        self.val_pools = {L: np.nonzero(self.ep["val"][2] <= L)[0][:96] for L in lengths}

    @staticmethod
    def _episodes(tr: Transitions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        starts = np.nonzero(tr.t == 0)[0]
        ends = np.append(starts[1:], len(tr.t))
        return starts, ends - starts, tr.length[starts]

    def _run(
        self, split: str, rows: np.ndarray, gen: torch.Generator, *, measure: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, float]:
        # ``rows`` are episodes here; their transitions make the batch
        dev, tr, eps = self.device, self.data[split], rows
        starts, lens, _ = self.ep[split]
        rows = np.concatenate([np.arange(starts[e], starts[e] + lens[e]) for e in eps])
        # noise drawn on the CPU (the generator's device), then moved
        rep = add_noise(batch_representation(tr, rows), gen).to(dev)
        emb = self.ctl.embed(rep)
        prev_t = torch.from_numpy(tr.prev[rows]).to(dev)
        previous = self.ctl.force_previous(prev_t)
        jitter = 0.4 * torch.rand(previous.shape, generator=gen).to(dev)
        previous = torch.softmax(100.0 * (previous - jitter).abs(), -1)
        target = torch.from_numpy(tr.op[rows]).to(dev)
        if not self.ctl.state_ports:
            sel, _ = self.ctl.policy_step(emb, {"previous": previous})
        else:
            e_lens = torch.from_numpy(lens[eps]).to(dev)
            tmax = int(lens[eps].max())
            ne = len(eps)
            offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(lens[eps])[:-1]])).to(dev)
            state = self.ctl.initial_state(ne, device=dev)
            outs = []
            for t in range(tmax):
                live = (e_lens > t).nonzero().flatten()
                idx = offsets[live] + t
                step_state = {k: v.index_select(0, live) for k, v in state.items()}
                if "previous" in step_state:
                    step_state["previous"] = previous.index_select(0, idx)
                s, new = self.ctl.policy_step(emb.index_select(0, idx), step_state)
                state = {k: state[k].index_copy(0, live, new[k]) for k in state}
                outs.append((idx, s))
            sel = torch.zeros(len(rows), len(self.ctl.choices), device=dev)
            for idx, s in outs:
                sel = sel.index_copy(0, idx, s)
        loss = torch.nn.functional.nll_loss(torch.log(sel.clamp(min=1e-8)), target)
        wrong = (sel.argmax(-1) != target).float()
        sat = self.ctl.policy.outputs["selection"].saturation(sel) if measure else 0.0
        return loss, wrong, sat


def _task(
    unit: str,
    modules: Mapping[str, Module],
    data: _Data,
    cfg: TrainConfig,
    device: torch.device | str = "cpu",
) -> _OperatorTask | _ControllerTask:
    family, role = unit.split(".")
    if role == "controller":
        ctl = (
            thesis_controller(modules)
            if family == "thesis"
            else addressed_controller(modules, recursive=family == "rec")
        )
        return _ControllerTask(ctl, data, cfg, device)
    full = dict(modules)
    ops = thesis_operators if family == "thesis" else addressed_operators
    # the other roles are irrelevant to this operator; fill them with fresh modules
    for other in OPERATORS:
        full.setdefault(other, next(iter(new_modules(f"{family}.{other}", cfg.hidden).values())))
    op = {o.name: o for o in ops(full)}[role]
    return _OperatorTask(op, data, cfg, device)  # type: ignore[arg-type]


def states_to_bytes(modules: Mapping[str, Module]) -> dict[str, bytes]:
    """Module weights as safetensors bytes, by role (no pickle)."""
    return {role: state_bytes(m) for role, m in modules.items()}


def modules_from_bytes(unit: str, states: Mapping[str, bytes], hidden: int) -> dict[str, Module]:
    """Rebuild a unit's modules from :func:`states_to_bytes` output."""
    modules = new_modules(unit, hidden)
    for role, m in modules.items():
        m.load_state_dict(st_load(states[role]))
    return modules


class StepRules(Callback, abc.ABC):
    """The bookkeeping of a sorting training run inside :func:`brickwork.training.fit`.

    ``batches()`` is the run's training data: one placeholder batch per step (the loss
    function draws the real one) until a rule calls :meth:`stop`. The history gets the
    loss and mean absolute gradient at step 1 and every ``log_every`` steps, and
    :meth:`check` runs every ``eval_every`` steps (validation, curriculum, stop rules);
    :meth:`after_step` runs after every step before it.

    Attributes:
        history: ``it, seconds, loss, grad`` and the validation keys, lists by step.
        length: the curriculum's current list length.
        reason: why the run ended (``"time_cap"`` until a rule says otherwise).
        seconds, cpu_seconds: wall and process CPU time of the run (after it).
    """

    def __init__(
        self,
        params: Sequence[torch.nn.Parameter],
        *,
        length: int,
        log_every: int,
        eval_every: int,
        val_keys: Sequence[str],
    ):
        self.params, self.length = list(params), length
        self.log_every, self.eval_every = log_every, eval_every
        keys = ("it", "seconds", "loss", "grad", "val_it", "val_seconds", *val_keys)
        self.history: dict[str, list[Any]] = {k: [] for k in keys}
        self.reason, self.done = "time_cap", False
        self.seconds, self.cpu_seconds, self._c0 = 0.0, 0.0, 0.0

    def batches(self, device: str | torch.device = "cpu") -> Iterator[Samples]:
        """One placeholder batch per step until :meth:`stop` (fit's epoch ends then); the
        same one each time, made on ``device`` once (a new one costs more than a step)."""
        placeholder = Samples({"step": torch.zeros(1, device=device)})
        while not self.done:
            yield placeholder

    def stop(self, reason: str) -> None:
        self.reason, self.done = reason, True

    def after_step(self, state: FitState) -> None:  # noqa: B027 (optional rule)
        """A rule checked after every step (e.g. a loss floor)."""

    @abc.abstractmethod
    def check(self, state: FitState) -> None:
        """Validate and apply the curriculum and stop rules (every ``eval_every`` steps);
        record with :meth:`record`."""

    def record(self, state: FitState, **values: float) -> None:
        """Append a validation: its step, its time and ``values`` (the val keys)."""
        self.history["val_it"].append(state.step)
        self.history["val_seconds"].append(state.elapsed())
        for k, v in values.items():
            self.history[k].append(v)

    def on_fit_start(self, state: FitState) -> None:
        self._c0 = time.process_time()

    def on_step(self, state: FitState) -> None:
        it = state.step
        if it % self.log_every == 0 or it == 1:
            self.history["it"].append(it)
            self.history["seconds"].append(state.elapsed())
            self.history["loss"].append(state.loss)
            self.history["grad"].append(mean_abs_grad(self.params))
        self.after_step(state)
        if not self.done and it % self.eval_every == 0:
            self.check(state)
        if self.done:
            state.stop, state.stop_reason = True, self.reason

    def on_fit_end(self, state: FitState) -> None:
        self.seconds = state.elapsed()
        self.cpu_seconds = time.process_time() - self._c0

    def run(
        self,
        modules: Mapping[str, Module],
        step_loss: Callable[[], torch.Tensor],
        *,
        lr: float,
        seed: int,
        device: str | torch.device,
    ) -> int:
        """Adam on ``params`` over ``step_loss()`` until a rule stops; the steps taken.

        ``seed`` is fit's (it reseeds the global RNGs; the batches use their own).
        """
        result = fit(
            torch.nn.ModuleDict(dict(modules)),
            lambda model, batch: step_loss(),
            self.batches(device),
            config=FitConfig(epochs=1, lr=lr, seed=seed),
            callbacks=[self],
            parameters=self.params,
            device=device,
        )
        return result.steps


@final
class _UnitRules(StepRules):
    """§3.2.2's rules for one unit: curriculum from the first length; at the full length
    the error and saturation criteria (``criterion``) or the stricter error after at least
    ``min_its`` steps (``extra``), a stalled validation loss, a loss floor, a wall cap."""

    def __init__(self, task: _Task, cfg: TrainConfig, phase: str, min_its: int):
        curriculum = cfg.curriculum and phase == "criterion"
        super().__init__(
            task.params,
            length=task.first_length() if curriculum else cfg.max_length,
            log_every=10,
            eval_every=cfg.eval_every,
            val_keys=("val_error", "val_saturation", "val_length"),
        )
        self.task, self.cfg, self.phase, self.min_its = task, cfg, phase, min_its
        self.cap = cfg.max_seconds if phase == "criterion" else cfg.extra_max_seconds
        self.best, self.since_best, self.stage = float("inf"), 0, 0
        self.err, self.sat = 1.0, 1.0

    def after_step(self, state: FitState) -> None:
        if state.loss < 1e-6 and self.length == self.cfg.max_length and state.step >= self.min_its:
            self.stop("loss_floor")

    def check(self, state: FitState) -> None:
        cfg, it = self.cfg, state.step
        vloss, self.err, self.sat = self.task.validate(self.length)
        self.record(state, val_error=self.err, val_saturation=self.sat, val_length=self.length)
        elapsed = self.history["val_seconds"][-1]
        if self.length < cfg.max_length:
            self.stage += 1
            if self.err <= cfg.error or self.stage >= cfg.stage_evals:
                self.length += 1
                self.best, self.since_best, self.stage = float("inf"), 0, 0
        elif self.phase == "criterion" and self.err <= cfg.error and self.sat <= cfg.saturation:
            self.stop("criteria")
        elif self.phase == "extra" and self.err <= cfg.extra_error and it >= self.min_its:
            self.stop("criteria")
        else:
            if vloss < self.best * 0.99:
                self.best, self.since_best = vloss, 0
            else:
                self.since_best += 1
            if self.since_best >= cfg.stall_evals and it >= self.min_its:
                self.stop("stalled")
        if not self.done and elapsed > self.cap:
            self.stop("time_cap")


def train_unit(
    unit: str,
    seed: int,
    cfg: TrainConfig,
    *,
    phase: str = "criterion",
    init_states: Mapping[str, bytes] | None = None,
    prior_iterations: int = 0,
    device: str = "cpu",
) -> dict[str, Any]:
    """Train one unit; returns metrics, history and the weights (safetensors bytes).

    The modules are built on the CPU (the same initial weights on every device) and
    trained on ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"`` …) through
    :func:`brickwork.training.fit`; the batches are drawn on the CPU with the seeded
    generators and moved there.

    ``phase='criterion'`` trains until the §3.2.2 criteria (error and saturation ≤ the
    configured thresholds at the full length), a stalled loss, a loss under 1e-6, or the
    wall cap. ``phase='extra'`` continues from ``init_states`` for at least
    ``extra_factor × prior_iterations`` iterations and until the error ≤ ``extra_error``
    (or ``extra_max_seconds``).
    """
    if phase not in ("criterion", "extra"):
        raise TrainingError(f"train_unit: phase {phase!r}; use 'criterion' or 'extra'")
    init_seed = seed * 7919 + sum(map(ord, unit))
    torch.manual_seed(init_seed)
    modules = (
        modules_from_bytes(unit, init_states, cfg.hidden)
        if init_states is not None
        else new_modules(unit, cfg.hidden)
    )
    for m in modules.values():
        m.to(device)
    data = unit_data(unit, seed, cfg)
    task = _task(unit, modules, data, cfg, device)
    rng = np.random.default_rng(seed * 31 + len(unit) + (7 if phase == "extra" else 0))
    gen = torch.Generator().manual_seed(seed * 101 + len(unit))
    min_its = int(cfg.extra_factor * prior_iterations) if phase == "extra" else 0
    rules = _UnitRules(task, cfg, phase, min_its)
    it = rules.run(
        modules,
        lambda: task.step_loss(rules.length, rng, gen),
        lr=cfg.lr,
        seed=init_seed,
        device=device,
    )
    log.info(
        "%s seed %d %s: %s after %d it, %.1f s (error %.4f, saturation %.4f)",
        unit,
        seed,
        phase,
        rules.reason,
        it,
        rules.seconds,
        rules.err,
        rules.sat,
    )
    return {
        "unit": unit,
        "seed": seed,
        "phase": phase,
        "stop_reason": rules.reason,
        "iterations": it,
        "seconds": rules.seconds,
        "cpu_seconds": rules.cpu_seconds,
        "val_error": rules.err,
        "val_saturation": rules.sat,
        "data_digest": data.digest,
        "history": rules.history,
        "device": str(device),
        "states": states_to_bytes(modules),
        "met_criteria": rules.reason in ("criteria", "loss_floor"),
    }


__all__ = [
    "StepRules",
    "TrainConfig",
    "mean_abs_grad",
    "modules_from_bytes",
    "port_errors",
    "port_loss",
    "states_to_bytes",
    "train_unit",
    "unit_data",
]
