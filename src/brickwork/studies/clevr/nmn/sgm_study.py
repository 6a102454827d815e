"""The SGM correlation study (thesis Fig. 4.7): whether a lower SGM loss makes a better find,
measured over training settings."""

from __future__ import annotations

import copy
import math
import statistics
import tempfile
from typing import Any

import torch
from torch import nn

from brickwork.studies.clevr.nmn.data import StudyConfig, StudyData, data_device
from brickwork.studies.clevr.nmn.end_to_end import train_loop
from brickwork.studies.clevr.nmn.evaluate import _forward, accuracy
from brickwork.studies.clevr.nmn.layouts import NMN
from brickwork.studies.clevr.nmn.modular import find_modules, freeze, recorded_finds
from brickwork.studies.clevr.nmn.sgm import reinitialise, train_sgm_module
from brickwork.training.sgm import pareto_front, pearson


def sgm_study_settings(cfg: StudyConfig) -> list[tuple[int, int, float]]:
    """(SGM steps per find, rank, dropout) of every point of the SGM correlation study:
    budgets spread geometrically from barely trained (20 steps) to the main runs'
    ``sgm_steps`` (1,500), so the points span the whole range of SGM quality (Fig. 4.7
    varies epochs). Steps past the main runs' budget bought little; the best-of-trials
    selection (:func:`_sgm_point`) spends the time better (docs/history/nmn-study-runs.md
    "The SGM correlation").

    Example:
        >>> sgm_study_settings(StudyConfig.quick())
        [(20, 2, 0.1), (60, 8, 0.3), (190, 4, 0.1), (600, 16, 0.3)]
    """
    n, top = cfg.sgm_study_points, max(cfg.sgm_steps, 20)
    steps = [max(10, int(round(20 * (top / 20) ** (k / max(n - 1, 1)), -1))) for k in range(n)]
    return [(st, [2, 8, 4, 16][k % 4], [0.1, 0.3][k % 2]) for k, st in enumerate(steps)]


def _sgm_point(
    data: StudyData, cfg: StudyConfig, priors: dict[str, torch.Tensor], k: int
) -> dict[str, Any]:
    """One point of Fig. 4.7: every find trained through its SGM with setting ``k``,
    frozen into the full (typed) model, the rest trained for a fixed budget.

    Each find is trained from ``cfg.sgm_hpo_trials`` fresh starts (seeds) and keeps the
    one with the lowest SGM validation loss, the model selection the modular runs'
    searches make: with one start per find, whichever finds stayed on the SGM plateau
    decided the full model's loss more than the mean SGM loss did
    (docs/history/nmn-study-runs.md "The SGM correlation")."""
    steps, rank, dropout = sgm_study_settings(cfg)[k]
    seed = cfg.seed + 100 + k
    torch.manual_seed(seed)
    model = NMN("typed", len(data.tokenizer), cfg.channels)
    finds = find_modules(model, data)
    model.to(data_device(data))
    jobs = []
    for n in finds:
        module, best, state = model.kinds.module(n), None, None
        for t in range(max(1, cfg.sgm_hpo_trials)):
            reinitialise(module, seed * 1000 + t)
            job = train_sgm_module(
                model,
                n,
                data,
                priors,
                seed=seed * 1000 + t,
                epochs=1,
                rank=rank,
                dropout=dropout,
                min_steps=steps,
            )
            if job.get("skipped"):
                break
            if best is None or job["sgm_loss"] < best["sgm_loss"]:
                best, state = job, copy.deepcopy(module.state_dict())
        if best is not None and state is not None:
            module.load_state_dict(state)
            jobs.append(best)
    freeze(model, finds)
    # the rest trains towards convergence (§4.3.1) on the frozen finds' recorded masks, as
    # the modular runs' downstream stage does: several times the steps of running them
    with tempfile.TemporaryDirectory(prefix="nmn-sgm-") as tmp:
        reader, _ = recorded_finds(model, finds, data, ["train"], tmp)
    down = train_loop(
        model,
        data,
        "train",
        cfg.seconds_sgm_study,
        seed=seed,
        priors=priors,
        eval_every=1e9,
        recorded=reader,
        lr=cfg.lr,
    )
    model.eval()
    qs = data.sets["val"]
    with torch.no_grad():
        logp = _forward(model, qs, data.set_features("val"), slice(0, len(qs)), priors["val"])
        full = float(nn.functional.nll_loss(logp, qs.answer))
    return {
        "steps": steps,
        "rank": rank,
        "dropout": dropout,
        "starts": max(1, cfg.sgm_hpo_trials),
        "sgm_loss": statistics.mean(j["sgm_loss"] for j in jobs),
        "variance": statistics.mean(j["variance"] for j in jobs),
        "full_loss": full,
        "full_accuracy": accuracy(model, data, "val", priors["val"]),
        "downstream_steps": down["steps"],
    }


def _sgm_summary(points: list[dict[str, Any]]) -> dict[str, Any]:
    """Fig. 4.6–4.7: the loss–variance Pareto front and Pearson r between SGM loss and
    full-model loss over every point; with how robust r is: Spearman's rank correlation
    and the smallest r left when any one point is dropped (one extreme point can carry
    a Pearson r on its own)."""
    from scipy.stats import rankdata  # lazily, as brickwork.training.sgm.pearson does

    x, y = [q["sgm_loss"] for q in points], [q["full_loss"] for q in points]
    r, p = pearson(x, y)
    rho = pearson(list(rankdata(x)), list(rankdata(y)))[0]  # Spearman: r of the ranks
    loo = (
        [pearson(x[:i] + x[i + 1 :], y[:i] + y[i + 1 :])[0] for i in range(len(points))]
        if len(points) > 3
        else [math.nan]
    )
    front = pareto_front([(q["sgm_loss"], q["variance"]) for q in points])
    return {
        "points": points,
        "pareto_front": front,
        "pearson_r": r,
        "p_value": p,
        "spearman_rho": rho,
        "pearson_r_leave_one_out_min": min(loo),
    }
