"""The study's cost measure (thesis Fig. 4.9): seconds to a target validation accuracy, modular ÷
end-to-end, in sequence and on parallel workers.

Example:
    >>> curve = [(1.0, 0.4), (2.0, 0.6), (3.0, 0.7)]
    >>> time_to_reach(curve, 0.6), time_to_reach(curve, 0.9)
    (2.0, inf)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from brickwork.training import makespan


def time_to_reach(curve: Sequence[tuple[float, float]], target: float) -> float:
    """First training time at which the accuracy curve reaches ``target``."""
    for t, acc in curve:
        if acc >= target - 1e-9:
            return t
    return math.inf


def _search_seconds(
    trials: list[dict[str, Any]], target: float, workers: int
) -> tuple[float, float, int]:
    """Cost of a search to ``target``: every trial runs its whole budget (a search has to
    finish them all to pick one) except the kept trial (the best validation accuracy),
    counted until it reaches ``target`` (a trial's time is its accuracy curve's last
    point: the loops evaluate once more when the budget runs out); summed, and scheduled
    on ``workers``. Returns ``(sequential, parallel, index of the kept trial)``.

    Example:
        >>> t = [{"curve": [(5, .5), (10, .6)]}, {"curve": [(5, .7), (10, .8)]}]
        >>> _search_seconds(t, 0.7, workers=2)
        (15.0, 10.0, 1)
    """
    best = max(range(len(trials)), key=lambda i: max(a for _, a in trials[i]["curve"]))
    cost = [
        float(t["curve"][-1][0]) if i != best else time_to_reach(t["curve"], target)
        for i, t in enumerate(trials)
    ]
    return sum(cost), makespan(cost, workers), best


def _cost(
    e2e_trials: list[dict[str, Any]],
    mod: dict[str, Any],
    workers: int,
    e2e_classic: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fig. 4.9: seconds to the same validation accuracy (the lower of the two sides'
    best), modular ÷ end-to-end, in sequence and scheduled on ``workers``.

    The headline counts the hyperparameter search of both sides, as the thesis does
    (Fig. 4.9: "total training times including hyperparameter optimization"): the modular
    side is every trial of every stage-1 module's search (summed, or scheduled on
    ``workers``) plus the downstream stage until it reaches the target; the end-to-end
    side is its own search with as many trials (``e2e_trials``, the first the study
    seed's ``e2e_typed`` run, see :func:`e2e_hpo_lrs`), each trial's whole budget but the
    kept one's, counted until it reaches the target. Other readings beside it:
    ``modular_hpo_only`` (every modular trial against the single default end-to-end
    run), ``per_trial`` (one trial per job on both sides) and ``vs_e2e_classic`` (the
    classic end-to-end run, the baseline of Table 4.2).

    Every second here is a process CPU second of training (one torch thread per
    process): the curves' time axes, the stage-1 jobs and the end-to-end budgets alike,
    so a busy machine slows both sides' wall clocks without bending the ratio; the
    study records the load beside it (``summary["machine"]``)."""
    stage1 = mod["stage1_seconds"]
    jobs = mod.get("jobs", [])
    trials = [max(1, (j.get("hpo") or {}).get("trials", 1)) for j in jobs]
    one = [t / n for t, n in zip(stage1, trials)] if len(trials) == len(stage1) else stage1
    # second-round jobs (train_modular) start when the first round is done
    rounds = [j.get("round", 1) for j in jobs] if len(jobs) == len(stage1) else [1] * len(stage1)

    def staged(s1: list[float], width: int) -> float:
        return sum(
            makespan([d for d, r in zip(s1, rounds) if r == k], width) for k in sorted(set(rounds))
        )

    def ratios(base: list[dict[str, Any]], s1: list[float]) -> dict[str, Any]:
        target = min(max(a for t in base for _, a in t["curve"]), max(a for _, a in mod["curve"]))
        e2e_seq, e2e_par, kept = _search_seconds(base, target, workers)
        t_down = time_to_reach(mod["curve"], target)
        seq, par = sum(s1) + t_down, staged(s1, workers) + t_down
        unbounded = staged(s1, max(len(s1), 1)) + t_down
        e2e_unbounded = _search_seconds(base, target, len(base))[1]
        return {
            "target_val_accuracy": target,
            "e2e_seconds": e2e_seq,
            "e2e_parallel_seconds": e2e_par,
            "e2e_trials": len(base),
            "e2e_kept_lr": base[kept].get("lr"),
            "downstream_seconds": t_down,
            "modular_sum_seconds": seq,
            "modular_critical_path_seconds": par,
            "modular_critical_path_unbounded_seconds": unbounded,
            "cost_ratio_sequential": seq / e2e_seq,
            "cost_ratio_parallel": par / e2e_par,
            "cost_ratio_parallel_unbounded": unbounded / e2e_unbounded,
        }

    out = ratios(e2e_trials, stage1)
    out["workers"] = workers
    out["per_module_seconds"] = {}
    for j in jobs:  # a second-round module's seconds count both rounds
        out["per_module_seconds"][j["module"]] = out["per_module_seconds"].get(
            j["module"], 0.0
        ) + j.get("seconds", 0.0)
    out["e2e_search"] = [
        {
            "lr": t.get("lr"),
            "best_val_accuracy": max(a for _, a in t["curve"]),
            "seconds": t["curve"][-1][0],
        }
        for t in e2e_trials
    ]
    out["modular_hpo_only"] = ratios(e2e_trials[:1], stage1)
    out["per_trial"] = ratios(e2e_trials[:1], one)
    if e2e_classic is not None:
        out["vs_e2e_classic"] = ratios([e2e_classic], stage1)
        out["vs_e2e_classic_per_trial"] = ratios([e2e_classic], one)
    return out
