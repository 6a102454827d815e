"""Modular training (§3.2.2): every operator and controller trained on its own, from
teacher traces, with input noise (the types' ``noise``: eq. 3.1/3.2), cross-entropy,
Adam, until error ≤ 1 % and saturation ≤ 1 % (or the loss stalls or falls under 1e-6);
then, for generalization runs, further training towards a stricter error.

The study trains units in parallel processes, one torch thread each
(:class:`~brickwork.studies.sorting.pool.Pool`).

Example:
    >>> cfg = TrainConfig(max_length=3, train_lists=60, val_lists=20, max_seconds=5)
    >>> result = train_unit("addr.mova", seed=0, cfg=cfg)
    >>> result["stop_reason"] in ("criteria", "loss_floor", "stalled", "time_cap")
    True
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

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
    addressed_controller,
    addressed_operators,
    new_modules,
    thesis_controller,
    thesis_operators,
)
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


def check_device(device: str, where: str) -> torch.device:
    """``device`` parsed, or a :class:`TrainingError` saying why it cannot be used here.

    Example:
        >>> check_device("cpu", "sorting study")
        device(type='cpu')
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise TrainingError(
            f"{where}: device {device!r} is not a torch device ({exc}); use "
            "'cpu', 'cuda', 'cuda:N' or 'mps'"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(
            f"{where}: device {device!r} asked, but this torch has no CUDA "
            f"device (torch {torch.__version__}); use device='cpu'"
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise TrainingError(
            f"{where}: device {device!r} asked, but only "
            f"{torch.cuda.device_count()} CUDA device(s) exist; use cuda:0…"
            f"cuda:{torch.cuda.device_count() - 1}"
        )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise TrainingError(
            f"{where}: device {device!r} asked, but MPS is not available here; use device='cpu'"
        )
    return dev


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
class _OperatorTask:
    def __init__(
        self, op: ModuleOperator, data: _Data, cfg: TrainConfig, device: torch.device | str = "cpu"
    ):
        self.op, self.cfg, self.device = op, cfg, torch.device(device)
        k = data.train.ops.index(op.name)
        self.train, self.val = data.train, data.val
        self.rows = {
            L: np.nonzero((data.train.op == k) & (data.train.length <= L))[0]
            for L in range(2, cfg.max_length + 1)
        }
        self.val_rows = {
            L: np.nonzero((data.val.op == k) & (data.val.length <= L))[0][:1024]
            for L in range(2, cfg.max_length + 1)
        }
        self.params = list(op.functional.parameters())

    def _run(
        self, tr: Transitions, rows: np.ndarray, gen: torch.Generator, *, measure: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, float]:
        # built and noised on the CPU (the generator's device), then moved: a seed gives
        # the same batches on every device
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

    def first_length(self) -> int:
        return min(L for L, r in self.rows.items() if len(r) and len(self.val_rows[L]))

    def step_loss(
        self, length: int, rng: np.random.Generator, gen: torch.Generator
    ) -> torch.Tensor:
        pool = self.rows[length]
        rows = pool[rng.integers(0, len(pool), size=self.cfg.batch)]
        return self._run(self.train, rows, gen)[0]

    def validate(self, length: int) -> tuple[float, float, float]:
        gen = torch.Generator().manual_seed(1234)
        with torch.no_grad():
            loss, wrong, sat = self._run(self.val, self.val_rows[length], gen, measure=True)
        return float(loss), float(wrong.mean()), sat


class _ControllerTask:
    def __init__(
        self, ctl: Controller, data: _Data, cfg: TrainConfig, device: torch.device | str = "cpu"
    ):
        self.ctl, self.cfg, self.device = ctl, cfg, torch.device(device)
        self.train, self.val = data.train, data.val
        self.params = list(ctl.parameters())
        self.ep = {
            name: self._episodes(tr) for name, tr in (("train", data.train), ("val", data.val))
        }
        self.pools = {
            L: np.nonzero(self.ep["train"][2] <= L)[0] for L in range(2, cfg.max_length + 1)
        }
        self.val_eps = {
            L: np.nonzero(self.ep["val"][2] <= L)[0][:96] for L in range(2, cfg.max_length + 1)
        }

    @staticmethod
    def _episodes(tr: Transitions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        starts = np.nonzero(tr.t == 0)[0]
        ends = np.append(starts[1:], len(tr.t))
        return starts, ends - starts, tr.length[starts]

    def _run(
        self,
        tr: Transitions,
        which: str,
        eps: np.ndarray,
        gen: torch.Generator,
        *,
        measure: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, float]:
        dev = self.device
        starts, lens, _ = self.ep[which]
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

    def first_length(self) -> int:
        return min(L for L, r in self.pools.items() if len(r) and len(self.val_eps[L]))

    def step_loss(
        self, length: int, rng: np.random.Generator, gen: torch.Generator
    ) -> torch.Tensor:
        pool = self.pools[length]
        eps = pool[rng.integers(0, len(pool), size=self.cfg.controller_batch)]
        return self._run(self.train, "train", eps, gen)[0]

    def validate(self, length: int) -> tuple[float, float, float]:
        gen = torch.Generator().manual_seed(1234)
        with torch.no_grad():
            loss, wrong, sat = self._run(self.val, "val", self.val_eps[length], gen, measure=True)
        return float(loss), float(wrong.mean()), sat


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
    for other in ("mova", "movb", "retb", "swap"):
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
    trained on ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"`` …); the batches are drawn
    on the CPU with the seeded generators and moved there.

    ``phase='criterion'`` trains until the §3.2.2 criteria (error and saturation ≤ the
    configured thresholds at the full length), a stalled loss, a loss under 1e-6, or the
    wall cap. ``phase='extra'`` continues from ``init_states`` for at least
    ``extra_factor × prior_iterations`` iterations and until the error ≤ ``extra_error``
    (or ``extra_max_seconds``).
    """
    if phase not in ("criterion", "extra"):
        raise TrainingError(f"train_unit: phase {phase!r}; use 'criterion' or 'extra'")
    torch.manual_seed(seed * 7919 + sum(map(ord, unit)))
    modules = (
        modules_from_bytes(unit, init_states, cfg.hidden)
        if init_states is not None
        else new_modules(unit, cfg.hidden)
    )
    for m in modules.values():
        m.to(device)
    data = unit_data(unit, seed, cfg)
    task = _task(unit, modules, data, cfg, device)
    opt = torch.optim.Adam(task.params, lr=cfg.lr)
    rng = np.random.default_rng(seed * 31 + len(unit) + (7 if phase == "extra" else 0))
    gen = torch.Generator().manual_seed(seed * 101 + len(unit))
    length = task.first_length() if (cfg.curriculum and phase == "criterion") else cfg.max_length
    history: dict[str, list] = {
        "it": [],
        "seconds": [],
        "loss": [],
        "grad": [],
        "val_it": [],
        "val_seconds": [],
        "val_error": [],
        "val_saturation": [],
        "val_length": [],
    }
    best, since_best, it, reason, stage = float("inf"), 0, 0, "time_cap", 0
    cap = cfg.max_seconds if phase == "criterion" else cfg.extra_max_seconds
    min_its = int(cfg.extra_factor * prior_iterations) if phase == "extra" else 0
    err, sat = 1.0, 1.0
    t0 = time.perf_counter()
    c0 = time.process_time()
    while True:
        loss = task.step_loss(length, rng, gen)
        opt.zero_grad()
        loss.backward()
        it += 1
        if it % 10 == 0 or it == 1:
            history["it"].append(it)
            history["seconds"].append(time.perf_counter() - t0)
            history["loss"].append(float(loss.detach()))
            history["grad"].append(mean_abs_grad(task.params))
        opt.step()
        if float(loss.detach()) < 1e-6 and length == cfg.max_length and it >= min_its:
            reason = "loss_floor"
            break
        if it % cfg.eval_every == 0:
            vloss, err, sat = task.validate(length)
            elapsed = time.perf_counter() - t0
            for k, v in (
                ("val_it", it),
                ("val_seconds", elapsed),
                ("val_error", err),
                ("val_saturation", sat),
                ("val_length", length),
            ):
                history[k].append(v)
            if length < cfg.max_length:
                stage += 1
                if err <= cfg.error or stage >= cfg.stage_evals:
                    length += 1
                    best, since_best, stage = float("inf"), 0, 0
            elif phase == "criterion" and err <= cfg.error and sat <= cfg.saturation:
                reason = "criteria"
                break
            elif phase == "extra" and err <= cfg.extra_error and it >= min_its:
                reason = "criteria"
                break
            else:
                if vloss < best * 0.99:
                    best, since_best = vloss, 0
                else:
                    since_best += 1
                if since_best >= cfg.stall_evals and it >= min_its:
                    reason = "stalled"
                    break
            if elapsed > cap:
                reason = "time_cap"
                break
    seconds = time.perf_counter() - t0
    cpu_seconds = time.process_time() - c0
    log.info(
        "%s seed %d %s: %s after %d it, %.1f s (error %.4f, saturation %.4f)",
        unit,
        seed,
        phase,
        reason,
        it,
        seconds,
        err,
        sat,
    )
    return {
        "unit": unit,
        "seed": seed,
        "phase": phase,
        "stop_reason": reason,
        "iterations": it,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "val_error": err,
        "val_saturation": sat,
        "data_digest": data.digest,
        "history": history,
        "device": str(device),
        "states": states_to_bytes(modules),
        "met_criteria": reason in ("criteria", "loss_floor"),
    }


__all__ = [
    "TrainConfig",
    "check_device",
    "mean_abs_grad",
    "modules_from_bytes",
    "port_errors",
    "port_loss",
    "states_to_bytes",
    "train_unit",
    "unit_data",
]
