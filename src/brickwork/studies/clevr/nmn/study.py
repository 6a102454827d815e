"""The NMN study (thesis ch. 4 on CLEVR-format data): runs every job and writes the summary and
figures.

Example:
    >>> from brickwork.studies.clevr.nmn import StudyConfig
    >>> StudyConfig.quick().seeds >= 1
    True
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

import brickwork
from brickwork.modules import atomic_write_json
from brickwork.studies.clevr.nmn.cost import _cost
from brickwork.studies.clevr.nmn.data import StudyConfig, prepare_data
from brickwork.studies.clevr.nmn.jobs import (
    DEVICE_WHERE,
    _e2e_trials,
    _jsonable,
    run_jobs,
    study_jobs,
)
from brickwork.studies.clevr.nmn.plots import plot_study
from brickwork.studies.clevr.nmn.report import _mean_std, acceptance
from brickwork.studies.clevr.nmn.sgm_study import _sgm_summary, sgm_study_settings
from brickwork.studies.clevr.nmn.variants import VARIANTS
from brickwork.training import check_device


def _load_average() -> float | None:
    """The 1-minute load average (``None`` where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def run_study(
    out: str | Path, cfg: StudyConfig, cache: str | Path, progress: bool = False
) -> dict[str, Any]:
    """Run the whole study; writes ``summary.json`` and PNGs under ``out``.

    The study is a set of independent jobs (every variant and seed, the all-depth
    models, the supervised-targets run, the SGM study's points) run ``cfg.workers`` at a
    time in worker processes; results land in ``out/jobs/`` as they finish, so a rerun
    with the same configuration resumes."""
    torch.set_num_threads(1)
    check_device(cfg.device, DEVICE_WHERE)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    load_start = _load_average()
    data = prepare_data(cache, cfg)  # generate + encode once, before the workers read it
    res = run_jobs(out, study_jobs(out, cfg, cache), cfg.workers, progress=progress)
    runs = {v: [res[f"{v}-s{cfg.seed + k}"] for k in range(cfg.seeds)] for v in VARIANTS}
    tgt = res[f"modular_typed_targets-s{cfg.seed}"]
    points = [res[f"sgm_point-{k}"] for k in range(len(sgm_study_settings(cfg)))]
    sgm = _sgm_summary(points)
    search = [{**runs["e2e_typed"][0], "lr": cfg.lr}] + [res[n] for n in _e2e_trials(cfg)]
    cost = _cost(
        search, runs["modular_typed"][0], cfg.workers, {**runs["e2e_classic"][0], "lr": cfg.lr}
    )

    def by_depth(d: dict[str, float]) -> dict[str, float]:
        return {k: d[k] for k in sorted(d, key=int)}

    summary: dict[str, Any] = {
        "brickwork": brickwork.__version__,
        "config": cfg.to_json(),
        "data_digest": data.digest,
        "depth_definition": "CLEVR program depth: nodes on the longest chain from scene to the "
        "answer, scene not counted (brickwork.studies.clevr.data.program_depth)",
        "accuracy_scope": f"test split, questions of depth <= {cfg.train_max_depth}",
        "supervision": "answers only (main); 'supervision_targets' uses executor object masks",
        "encoder_cell_accuracy": data.encoder_accuracy,
        "accuracy": {v: _mean_std([r["accuracy"] for r in runs[v]]) for v in VARIANTS},
        "seen_error": {v: _mean_std([r["seen_error"] for r in runs[v]]) for v in VARIANTS},
        "unseen_error": {v: _mean_std([r["unseen_error"] for r in runs[v]]) for v in VARIANTS},
        "error_by_depth": {
            v: {
                d: _mean_std([r["error_by_depth"][d] for r in runs[v]])
                for d in by_depth(runs[v][0]["error_by_depth"])
            }
            for v in VARIANTS
        },
        "train_images_error_by_depth": {
            v: by_depth(runs[v][0]["train_images_error_by_depth"])
            for v in ("e2e_classic", "e2e_typed")
        },
        "all_depths_error_by_depth": {
            f"e2e_{itf}_all_depths": by_depth(res[f"e2e_{itf}_all_depths"]["error_by_depth"])
            for itf in ("typed", "classic")
        },
        "supervision_targets": {
            "modular_typed": {
                "accuracy": tgt["accuracy"],
                "seen_error": tgt["seen_error"],
                "unseen_error": tgt["unseen_error"],
                "error_by_depth": by_depth(tgt["error_by_depth"]),
            }
        },
        "sgm": sgm,
        "sgm_pearson_r": sgm["pearson_r"],
        "sgm_p_value": sgm["p_value"],
        "cost": cost,
        "cost_ratio_sequential": cost["cost_ratio_sequential"],
        "cost_ratio_parallel": cost["cost_ratio_parallel"],
        "modular_jobs": runs["modular_typed"][0]["jobs"],
        "intermediate_datasets": {
            f"{v}_s{r['seed']}": r["recorded"]
            for v in ("modular_classic", "modular_typed")
            for r in runs[v]
            if r.get("recorded")
        },
        "plan": runs["modular_typed"][0]["plan"],
        "registry": {
            "path": str(out / "registry"),
            "modules": sorted(
                n
                for v in ("modular_classic", "modular_typed")
                for r in runs[v]
                for n in r["registered"]
            )
            + sorted(tgt["registered"]),
        },
        "train_samples_per_second": statistics.mean(
            r["samples_per_second"] for r in runs["e2e_typed"]
        ),
        "job_seconds": {name: r.get("job_seconds") for name, r in res.items()},
        "curves": {v: runs[v][0]["curve"] for v in VARIANTS},
    }
    summary["acceptance"] = acceptance(summary, cfg.train_max_depth)
    # time budgets count a process's own training time, but a busy machine still gives
    # fewer steps per second: the load says how far to trust timings and cost ratios
    summary["machine"] = {
        "cpus": os.cpu_count(),
        "workers": cfg.workers,
        "load_average_start": load_start,
        "load_average_end": _load_average(),
    }
    summary["wall_seconds"] = time.perf_counter() - t0
    summary = _jsonable(summary)
    plot_study(summary, out)
    atomic_write_json(out / "summary.json", summary, indent=1)
    return summary
