"""The study as independent, resumable jobs: the list of jobs, one job run in a worker, and what
each job's key in the library's job cache holds."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from brickwork.errors import TrainingError
from brickwork.studies.clevr.nmn.data import (
    StudyConfig,
    StudyData,
    data_device,
    data_on,
    prepare_data,
)
from brickwork.studies.clevr.nmn.end_to_end import LR, train_e2e
from brickwork.studies.clevr.nmn.evaluate import error_by_depth
from brickwork.studies.clevr.nmn.layouts import NMN
from brickwork.studies.clevr.nmn.modular import train_question_encoder
from brickwork.studies.clevr.nmn.sgm_study import _sgm_point, sgm_study_settings
from brickwork.studies.clevr.nmn.variants import TARGETS, VARIANTS, Variant, _run_variant
from brickwork.training import JobCache, check_device, source_digests

log = logging.getLogger(__name__)


#: the learning-rate range of the end-to-end model's search: one decade around the rate
#: the earlier searches found best, so the search brackets it
#: (docs/history/nmn-study-runs.md "Learning rate")
E2E_LR_RANGE = (5e-4, 5e-3)


def e2e_hpo_lrs(trials: int, default: float = LR) -> list[float]:
    """Learning rates of the end-to-end model's search, one per trial, as many trials as
    each stage-1 module's search has (thesis Fig. 4.9 counts the HPO of both sides):
    log-spaced over :data:`E2E_LR_RANGE`, the one nearest ``default`` (the study's
    ``lr``) replaced by it (that trial is the study seed's ``e2e_typed`` run).

    Example:
        >>> e2e_hpo_lrs(1, 3e-3), e2e_hpo_lrs(3, 3e-3), e2e_hpo_lrs(3, 1e-3)
        ([0.003], [0.0005, 0.0016, 0.003], [0.0005, 0.001, 0.005])
    """
    if trials <= 1:
        return [default]
    lo, hi = E2E_LR_RANGE
    grid = [float(f"{lo * (hi / lo) ** (k / (trials - 1)):.2g}") for k in range(trials)]
    nearest = min(range(trials), key=lambda k: abs(math.log(grid[k] / default)))
    grid[nearest] = default
    return grid


_DATA: dict[tuple[str, str, str], StudyData] = {}


_PRIORS: dict[tuple[str, int, str], dict[str, torch.Tensor]] = {}


#: who asks, in a refused device's message
DEVICE_WHERE = "clevr study: StudyConfig.device"


def _worker_data(cache: str, cfg: StudyConfig) -> StudyData:
    """The study's data (prepared on the CPU once per process), on ``cfg.device``."""
    base = (cache, json.dumps(cfg.data_json(), sort_keys=True))
    cpu_key = (*base, "cpu")  # bound first: mypy reads _DATA[(*base, ...)] as 3.11 syntax
    if cpu_key not in _DATA:
        _DATA[cpu_key] = prepare_data(cache, cfg)
    key = (*base, str(torch.device(cfg.device)))
    if key not in _DATA:
        _DATA[key] = data_on(_DATA[cpu_key], cfg.device)
    return _DATA[key]


def _sgm_priors(data: StudyData, cfg: StudyConfig) -> dict[str, torch.Tensor]:
    """The cached prior logits the SGM study's points share (question encoder trained
    directly, as in the modular runs, with the study's seed)."""
    key = (data.digest, cfg.seed, str(data_device(data)))
    if key not in _PRIORS:
        torch.manual_seed(cfg.seed)
        model = NMN("typed", len(data.tokenizer), cfg.channels).to(data_device(data))
        _PRIORS[key] = train_question_encoder(model, data, seed=cfg.seed)[0]
    return _PRIORS[key]


#: how JSON results spell non-finite floats: an infinity (a target never reached) is
#: capped at ±1e9 seconds so summaries stay plain JSON numbers; NaN stays NaN
_NON_FINITE = {"Infinity": 1e9, "-Infinity": -1e9, "NaN": math.nan}


def _jsonable(obj: Any) -> Any:
    """``obj`` as the JSON-compatible value a result file holds (tuples → lists, keys →
    strings, numpy/tensor scalars → floats, infinities → ±1e9).

    Example:
        >>> _jsonable({1: (float("inf"), -float("inf"))})
        {'1': [1000000000.0, -1000000000.0]}
    """
    return json.loads(json.dumps(obj, default=float), parse_constant=_NON_FINITE.__getitem__)


def study_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run one job of the study in this process (an executor's job function).

    ``job``: ``{"kind": "variant"|"all_depths"|"sgm_point", "cfg": StudyConfig JSON,
    "cache": ..., "out": ..., "variant"/"interface"/"point": ..., "seed": ...}``;
    returns a JSON-able result."""
    torch.set_num_threads(1)
    cfg = StudyConfig(**job["cfg"])
    check_device(cfg.device, DEVICE_WHERE)
    data = _worker_data(job["cache"], cfg)
    t0 = time.perf_counter()
    if job["kind"] == "variant":
        res = _run_variant(job["variant"], data, cfg, job["seed"], Path(job["out"]))
        res.pop("_model", None)
        res.pop("_priors", None)
    elif job["kind"] == "all_depths":
        model, _ = train_e2e(
            job["interface"],
            data,
            seconds=cfg.seconds_all_depths,
            seed=cfg.seed,
            train_set="train_all",
            channels=cfg.channels,
            lr=cfg.lr,
        )
        res = {"error_by_depth": error_by_depth(model, data, "test")}
    elif job["kind"] == "sgm_point":
        res = _sgm_point(data, cfg, _sgm_priors(data, cfg), job["point"])
    elif job["kind"] == "e2e_trial":
        _, info = train_e2e(
            "typed",
            data,
            seconds=cfg.seconds_e2e,
            seed=cfg.seed,
            channels=cfg.channels,
            lr=job["lr"],
        )
        res = {
            "lr": job["lr"],
            "curve": info["curve"],
            "samples_per_second": info["samples_per_second"],
        }
    else:
        raise TrainingError(
            f"study job {job.get('name')!r}: unknown kind {job['kind']!r}; "
            "expected 'variant', 'all_depths', 'sgm_point' or 'e2e_trial' "
            "(jobs come from study_jobs)"
        )
    res["job_seconds"] = time.perf_counter() - t0
    return _jsonable(res)


def _e2e_trials(cfg: StudyConfig) -> dict[str, float]:
    """Job name -> learning rate of the end-to-end search's trials that run as their own
    jobs (the trial at ``cfg.lr`` is the seed's ``e2e_typed`` run)."""
    return {
        f"e2e_typed_lr{lr:.0e}-s{cfg.seed}": lr
        for lr in e2e_hpo_lrs(cfg.sgm_hpo_trials, cfg.lr)
        if lr != cfg.lr
    }


def study_jobs(out: Path, cfg: StudyConfig, cache: str | Path) -> list[dict[str, Any]]:
    """Every independent job of the study, the longest (by budget) first.

    Example:
        >>> [j["name"] for j in study_jobs(Path("o"), StudyConfig.quick(), "c")][:3]
        ['modular_classic-s0', 'modular_typed-s0', 'modular_typed_targets-s0']
    """
    base = {"cfg": cfg.to_json(), "cache": str(cache), "out": str(out)}
    # budgets order the jobs (longest first); stage 1 runs ~600 SGM steps/s over ~17 finds
    stage1 = max(1, cfg.sgm_hpo_trials) * cfg.sgm_steps * 17 / 600
    budget = {
        "e2e_classic": cfg.seconds_e2e,
        "e2e_typed": cfg.seconds_e2e,
        "modular_classic": cfg.seconds_downstream + 60 + stage1,
        "film": cfg.seconds_film,
        "modular_typed": cfg.seconds_downstream + 60 + stage1,
    }
    jobs = [
        {
            **base,
            "kind": "variant",
            "variant": v,
            "seed": cfg.seed + k,
            "name": f"{v}-s{cfg.seed + k}",
            "budget": budget[v],
        }
        for k in range(cfg.seeds)
        for v in VARIANTS
    ]
    jobs += [
        {
            **base,
            "kind": "all_depths",
            "interface": itf,
            "name": f"e2e_{itf}_all_depths",
            "budget": cfg.seconds_all_depths,
        }
        for itf in ("typed", "classic")
    ]
    jobs.append(
        {
            **base,
            "kind": "variant",
            "variant": TARGETS.name,
            "seed": cfg.seed,
            "name": f"{TARGETS.name}-s{cfg.seed}",
            "budget": cfg.seconds_downstream + 30,
        }
    )
    # the end-to-end model's search (Fig. 4.9 counts it): the default trial is
    # e2e_typed at the study's seed, the others run here
    jobs += [
        {**base, "kind": "e2e_trial", "lr": lr, "name": name, "budget": cfg.seconds_e2e}
        for name, lr in _e2e_trials(cfg).items()
    ]
    jobs += [
        {
            **base,
            "kind": "sgm_point",
            "point": k,
            "name": f"sgm_point-{k}",
            # ~30 steps/s for 17 finds, for each start; ~25 s recording and evaluating
            "budget": cfg.seconds_sgm_study + 25 + max(1, cfg.sgm_hpo_trials) * st / 30,
        }
        for k, (st, _, _) in enumerate(sgm_study_settings(cfg))
    ]
    return sorted(jobs, key=lambda j: -j["budget"])


_NMN = "brickwork.studies.clevr.nmn"
#: the module whose code a job trains with, by job kind (a ``variant`` job by its
#: :attr:`Variant.training`); a job's key holds the source digest of that module and of
#: every module of ``brickwork.studies`` it imports, so a change to that code reruns the
#: jobs that run it and keeps the others (no hand-bumped revisions)
_TRAINS_WITH = {
    "e2e": f"{_NMN}.end_to_end",
    "film": f"{_NMN}.end_to_end",
    "modular": f"{_NMN}.modular",
    "all_depths": f"{_NMN}.end_to_end",
    "e2e_trial": f"{_NMN}.end_to_end",
    "sgm_point": f"{_NMN}.sgm_study",
}


def job_code(job: dict[str, Any]) -> dict[str, str]:
    """The code a study job runs, as source digests by module: the module it trains with
    (:data:`_TRAINS_WITH`) and its imports, the evaluation, and for a ``variant`` job
    the variant runner itself (without its imports: the other variants' training).

    Example:
        >>> sorted(job_code({"kind": "e2e_trial"}))[:2]
        ['brickwork.studies.clevr.data', 'brickwork.studies.clevr.data.camera']
    """
    if job["kind"] == "variant":
        entry = _TRAINS_WITH[Variant.named(job["variant"]).training]
        own = [f"{_NMN}.variants", f"{_NMN}.report"]
    else:
        entry, own = _TRAINS_WITH[job["kind"]], []
    return {
        **source_digests([entry, f"{_NMN}.evaluate"], follow="brickwork.studies."),
        **source_digests(own),
    }


#: StudyConfig fields that only the stage-1 searches of the answer-supervised modular
#: jobs and the SGM study's points read: left out of every other job's key, so that
#: changing the search (e.g. more trials) reruns those jobs only (the end-to-end
#: search's trials are jobs of their own, keyed by their learning rate)
_SGM_SEARCH_FIELDS = ("sgm_hpo_trials", "sgm_steps")


_SGM_SEARCH_VARIANTS = ("modular_typed", "modular_classic")


def _key_payload(job: Mapping[str, Any]) -> dict[str, Any]:
    """What a study job's result depends on: its config (less the fields it never reads)
    and the digests of the code it runs (:func:`job_code`); :class:`JobCache` adds the
    package version."""
    payload = {k: v for k, v in job.items() if k not in ("out", "cache")}
    payload["code"] = job_code(dict(job))
    # how many workers ran it does not change a job's result, nor does a field it never reads
    unread = {"workers"}
    if job.get("variant") not in _SGM_SEARCH_VARIANTS and job["kind"] != "sgm_point":
        unread.update(_SGM_SEARCH_FIELDS)
    if payload["cfg"].get("device", "cpu") == "cpu":
        unread.add("device")  # a CPU job's key does not depend on the field's presence
    payload["cfg"] = {k: v for k, v in payload["cfg"].items() if k not in unread}
    return payload


def job_cache(out: Path) -> JobCache:
    """The study's job cache: ``out/jobs/NAME.json``, keyed by :func:`_key_payload`."""
    return JobCache(Path(out) / "jobs", key=_key_payload)


def _job_key(job: Mapping[str, Any]) -> str:
    """A study job's key digest."""
    return job_cache(Path(".")).digest(job)


def run_jobs(
    out: Path, jobs: list[dict[str, Any]], workers: int, progress: bool = False
) -> dict[str, dict[str, Any]]:
    """Run the jobs ``workers`` at a time through the library's :class:`JobCache` (each
    result kept in ``out/jobs/NAME.json`` with its key); a rerun skips the jobs whose
    result is there under the same key — an interrupted study resumes where it stopped."""
    return job_cache(out).run(
        study_job, jobs, workers=workers, progress=progress, desc="clevr study"
    )
