"""Monolithic training (§3.2.2): the thesis modules unrolled as one network, trained end
to end with the target traces as an auxiliary selection loss and teacher-forced operator
selection, plus a final-state loss; until the episode error ≤ 1 % or a wall-time cap.
Trains through :func:`brickwork.training.fit`, like the modular units.

Example:
    >>> cfg = MonolithicConfig(max_length=3, train_lists=40, val_lists=10, cap_seconds=2,
    ...                        hidden=8, batch=4, val_episodes=8)
    >>> result = train_monolithic(0, cfg)
    >>> result["stop_reason"] in ("criteria", "time_cap")
    True
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, final

import numpy as np
import torch

from brickwork.studies.sorting.data import (
    Transitions,
    batch_representation,
    build_transitions,
    training_lists,
)
from brickwork.studies.sorting.training import StepRules, states_to_bytes
from brickwork.studies.sorting.variants import (
    THESIS_UNITS,
    new_modules,
    thesis_controller,
    thesis_operators,
)
from brickwork.training import FitState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonolithicConfig:
    """Monolithic training settings (recorded with the results).

    Attributes:
        max_length: longest training list (curriculum from 2 up to it).
        batch: episodes per batch.
        lr: Adam learning rate.
        error: episode error criterion (an episode is wrong when any selection or the
            final list is wrong).
        cap_seconds: wall-time cap; hitting it makes the speedup a lower bound.
        hidden: LSTM hidden units.
        train_lists, val_lists: lists the traces come from.
        val_episodes: validation episodes.
        eval_every: iterations between validations.
        curriculum: grow the list length as the criterion is met.
    """

    max_length: int = 7
    batch: int = 32
    lr: float = 1e-3
    error: float = 0.01
    cap_seconds: float = 1800.0
    hidden: int = 100
    train_lists: int = 3000
    val_lists: int = 300
    val_episodes: int = 128
    eval_every: int = 25
    curriculum: bool = True

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _Unrolled:
    def __init__(self, modules: dict, tr: Transitions, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.ops = thesis_operators(modules)
        self.ctl = thesis_controller(modules)
        self.tr = tr
        self.starts = np.nonzero(tr.t == 0)[0]
        self.lens = np.append(self.starts[1:], len(tr.t)) - self.starts
        self.lengths = tr.length[self.starts]

    def run(self, eps: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and per-episode error for the episodes ``eps`` (teacher-forced)."""
        tr, dev = self.tr, self.device
        starts, lens = self.starts[eps], torch.from_numpy(self.lens[eps]).to(dev)
        rep = batch_representation(tr, starts, device=dev)
        n = rep["values"].shape[1]
        last = starts + self.lens[eps] - 1
        target_values = torch.from_numpy(tr.values[last, :n]).to(dev)
        state = self.ctl.initial_state(len(eps), device=dev)
        sel_loss = torch.zeros((), device=dev)
        wrong = torch.zeros(len(eps), dtype=torch.bool, device=dev)
        for t in range(int(self.lens[eps].max())):
            live = lens > t
            target = torch.from_numpy(tr.op[np.minimum(starts + t, last)]).to(dev)
            sel, state = self.ctl.decide(rep, state)
            logp = torch.log(sel.clamp(min=1e-8))
            sel_loss = sel_loss - (logp.gather(1, target.view(-1, 1)).squeeze(1) * live).sum()
            wrong |= live & (sel.argmax(-1) != target)
            new = rep
            for k, op in enumerate(self.ops):
                rows = (live & (target == k)).nonzero().flatten()
                if rows.numel():
                    new = new.put(rows, op(rep.take(rows)))
            rep = new
        values = rep["values"]
        final = torch.nn.functional.nll_loss(
            torch.log(values.clamp(min=1e-8)).reshape(-1, values.shape[-1]),
            target_values.reshape(-1),
        )
        wrong |= (values.argmax(-1) != target_values).any(-1)
        loss = sel_loss / lens.sum() + final
        return loss, wrong.float()


@final
class _MonolithicRules(StepRules):
    """Curriculum from length 2 while the episode error meets the criterion; stop at the
    full length when it does (``criteria``) or at the wall cap (``time_cap``)."""

    def __init__(self, params: list[torch.nn.Parameter], vnet: _Unrolled, cfg: MonolithicConfig):
        super().__init__(
            params,
            length=2 if cfg.curriculum else cfg.max_length,
            log_every=5,
            eval_every=cfg.eval_every,
            val_keys=("val_error", "val_length"),
        )
        self.vnet, self.cfg, self.err = vnet, cfg, 1.0

    def check(self, state: FitState) -> None:
        vpool = np.nonzero(self.vnet.lengths <= self.length)[0][: self.cfg.val_episodes]
        with torch.no_grad():
            _, wrong = self.vnet.run(vpool)
        self.err = float(wrong.mean())
        self.record(state, val_error=self.err, val_length=self.length)
        if self.err <= self.cfg.error:
            if self.length < self.cfg.max_length:
                self.length += 1
            else:
                self.stop("criteria")
        if not self.done and self.history["val_seconds"][-1] > self.cfg.cap_seconds:
            self.stop("time_cap")


def train_monolithic(seed: int, cfg: MonolithicConfig, *, device: str = "cpu") -> dict[str, Any]:
    """Train the monolithic sorter on ``device`` through :func:`brickwork.training.fit`;
    returns metrics, history and weights by role (the modules are built on the CPU, so a
    seed starts from the same weights on every device)."""
    init_seed = seed * 7919 + 17
    torch.manual_seed(init_seed)
    modules: dict = {}
    for unit in THESIS_UNITS:
        modules.update(new_modules(unit, cfg.hidden))
    for m in modules.values():
        m.to(device)
    train = build_transitions(
        training_lists(cfg.train_lists, cfg.max_length, seed), pad_to=cfg.max_length
    )
    val = build_transitions(
        training_lists(cfg.val_lists, cfg.max_length, seed + 100_003), pad_to=cfg.max_length
    )
    net, vnet = _Unrolled(modules, train, device), _Unrolled(modules, val, device)
    params = [p for m in modules.values() for p in m.parameters()]
    rng = np.random.default_rng(seed + 5)
    rules = _MonolithicRules(params, vnet, cfg)

    def step_loss() -> torch.Tensor:
        pool = np.nonzero(net.lengths <= rules.length)[0]
        return net.run(pool[rng.integers(0, len(pool), size=cfg.batch)])[0]

    it = rules.run(modules, step_loss, lr=cfg.lr, seed=init_seed, device=device)
    # the episode error at the full training length, whatever the curriculum reached
    with torch.no_grad():
        full = np.nonzero(vnet.lengths <= cfg.max_length)[0][: cfg.val_episodes]
        full_error = float(vnet.run(full)[1].mean())
    log.info(
        "monolithic seed %d: %s after %d it, %.1f s (episode error %.3f at length ≤ %d, "
        "%.3f at ≤ %d)",
        seed,
        rules.reason,
        it,
        rules.seconds,
        rules.err,
        rules.length,
        full_error,
        cfg.max_length,
    )
    return {
        "unit": "monolithic",
        "seed": seed,
        "stop_reason": rules.reason,
        "iterations": it,
        "seconds": rules.seconds,
        "cpu_seconds": rules.cpu_seconds,
        "val_error": rules.err,
        "curriculum_length": rules.length,
        "full_length_error": full_error,
        "met_criteria": rules.reason == "criteria",
        "data_digest": train.digest(),
        "history": rules.history,
        "device": str(device),
        "states": states_to_bytes(modules),
    }


__all__ = ["MonolithicConfig", "train_monolithic"]
