"""The whole sorting study: train (modular in parallel + monolithic), evaluate closed
loop, plot, and write a JSON summary with config, seeds, version and data digests.

Example:
    >>> cfg = StudyConfig.quick_config()
    >>> cfg.variants
    ('monolithic', 'modular_addressed', 'modular_addressed_recursive')
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from brickwork._version import __version__
from brickwork.errors import TrainingError
from brickwork.modules import atomic_write_json, load_module, save_module
from brickwork.studies.sorting.evaluation import eval_lengths, evaluate_agent, max_verified
from brickwork.studies.sorting.monolithic import MonolithicConfig, train_monolithic
from brickwork.studies.sorting.plots import plot_all
from brickwork.studies.sorting.training import (
    TrainConfig,
    modules_from_bytes,
    train_unit,
)
from brickwork.studies.sorting.variants import (
    ADDRESSED_UNITS,
    OPERATORS,
    THESIS_UNITS,
    VARIANTS,
    WHOLE_LIST,
    build_agent,
    is_typed,
)
from brickwork.training import LocalExecutor, check_device, makespan

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyConfig:
    """What the study runs (recorded in the summary).

    Attributes:
        quick: the smoke configuration (the demo).
        seeds: modular training seeds (monolithic trains once, on the first seed).
        variants: which variants to train and evaluate.
        hybrid_seeds: seeds the hybrids are evaluated on (they reuse the thesis modules).
        workers: parallel processes (one torch thread each).
        train, monolithic: the training configurations.
        factors: evaluation lengths beyond training, as multiples of the max length.
        lists: lists per evaluation length.
        whole_list_full_until: whole-list variants use ``lists`` up to this multiple of
            the max length; beyond it ``lists · (that length / n)³`` lists (at least
            ``whole_list_min_lists``), and lengths after one with 0 solved lists are
            skipped (their cost grows as n³).
        long_beyond, long_lists: lengths beyond ``long_beyond`` × the max length are
            evaluated on the first seed only, with at most ``long_lists`` lists (a typed
            step projects O(n) one-hots, so an episode costs O(n³)).
    """

    quick: bool = False
    seeds: tuple[int, ...] = (0, 1, 2)
    variants: tuple[str, ...] = VARIANTS
    hybrid_seeds: tuple[int, ...] = (0,)
    workers: int = 2
    train: TrainConfig = field(default_factory=TrainConfig)
    monolithic: MonolithicConfig = field(default_factory=MonolithicConfig)
    factors: tuple[float, ...] = (1.5, 2, 3, 5, 10, 20)
    lists: int = 500
    whole_list_full_until: float = 3.0
    whole_list_min_lists: int = 50
    long_beyond: float = 10.0
    long_lists: int = 100

    @classmethod
    def quick_config(cls, seed: int = 0) -> StudyConfig:
        """The few-minute smoke run: addressed agents vs a capped monolithic run."""
        return cls(
            quick=True,
            seeds=(seed,),
            hybrid_seeds=(seed,),
            variants=("monolithic", "modular_addressed", "modular_addressed_recursive"),
            train=TrainConfig(train_lists=1500, val_lists=200, extra_max_seconds=30),
            monolithic=MonolithicConfig(
                cap_seconds=60, train_lists=1500, val_lists=200, val_episodes=64
            ),
            factors=(1.5, 2, 3, 5, 10),
            lists=100,
            whole_list_min_lists=20,
        )

    def with_seed(self, seed: int) -> StudyConfig:
        """The same configuration on seeds starting at ``seed``."""
        return replace(
            self, seeds=tuple(seed + i for i in range(len(self.seeds))), hybrid_seeds=(seed,)
        )

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["train"] = self.train.to_json()
        d["monolithic"] = self.monolithic.to_json()
        return d

    def max_train(self) -> int:
        return self.train.max_length

    def lengths(self) -> list[int]:
        return eval_lengths(self.max_train(), self.factors)

    def counts(self, variant: str, seed: int | None = None) -> dict[int, int]:
        """Lists per evaluation length for a variant (0: not evaluated on this seed)."""
        full_until = int(math.ceil(self.whole_list_full_until * self.max_train()))
        first = seed is None or seed == self.seeds[0]
        out = {}
        for n in self.lengths():
            count = self.lists
            if variant in WHOLE_LIST and n > full_until:
                count = max(self.whole_list_min_lists, int(self.lists * (full_until / n) ** 3))
            if n > self.long_beyond * self.max_train():
                count = min(count, self.long_lists) if first else 0
            out[n] = count
        return out


def _units_for(variants: tuple[str, ...]) -> tuple[list[str], list[str]]:
    thesis = (
        [u for u in THESIS_UNITS]
        if any(
            v in ("modular_untyped", "modular_typed") or v.startswith("hybrid_") for v in variants
        )
        else []
    )
    addressed = []
    if "modular_addressed" in variants or "modular_addressed_recursive" in variants:
        addressed = [f"addr.{op}" for op in OPERATORS]
        if "modular_addressed" in variants:
            addressed.append("addr.controller")
        if "modular_addressed_recursive" in variants:
            addressed.append("rec.controller")
    return thesis, addressed


def _save_unit(out: Path, seed: int, unit: str, states: dict[str, bytes], hidden: int) -> None:
    for role, module in modules_from_bytes(unit, states, hidden).items():
        save_module(module, out / "modules" / f"seed{seed}" / unit / role)


def _variant_units(variant: str) -> list[str]:
    if variant == "modular_addressed":
        return [u for u in ADDRESSED_UNITS if u != "rec.controller"]
    if variant == "modular_addressed_recursive":
        return [*(f"addr.{op}" for op in OPERATORS), "rec.controller"]
    return list(THESIS_UNITS)


def evaluate_variant(
    variant: str,
    seed: int,
    folder: str,
    lengths: list[int],
    counts: dict[int, int],
    *,
    device: str = "cpu",
) -> dict[str, Any]:
    """Load a variant's modules from ``folder`` (a seed's module folder, or the monolithic
    one) onto ``device`` and evaluate it closed loop there (runs in a worker process)."""
    root = Path(folder)
    modules = {}
    for unit in _variant_units(variant):
        base = root / unit if variant != "monolithic" else root
        for role in THESIS_UNITS.get(unit) or ADDRESSED_UNITS[unit]:
            modules[role] = load_module(base / role).to(device)
    agent = build_agent(variant, modules)
    t0 = time.perf_counter()
    res = evaluate_agent(
        agent,
        is_typed(variant),
        lengths,
        counts,
        seed,
        skip_after_zero=variant in WHOLE_LIST,
        device=device,
    )
    return {
        "variant": variant,
        "seed": seed,
        "by_length": {str(k): v for k, v in res.items()},
        "seconds": time.perf_counter() - t0,
    }


def _run_job(job: dict[str, Any]) -> dict[str, Any]:
    """One study job in a worker: ``job["run"]`` names the function (``train_unit``,
    ``train_monolithic`` or ``evaluate_variant``), the other keys are its arguments."""
    kwargs = dict(job)
    run = kwargs.pop("run")
    fns: dict[str, Callable[..., dict[str, Any]]] = {
        "train_unit": train_unit,
        "train_monolithic": train_monolithic,
        "evaluate_variant": evaluate_variant,
    }
    if run not in fns:
        raise TrainingError(f"sorting study: unknown job {run!r}; known: {sorted(fns)}")
    result: dict[str, Any] = fns[run](**kwargs)
    return result


def _strip(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k not in ("states", "history")}


class _Run:
    """The scheduler of one study run (main process)."""

    def __init__(
        self,
        cfg: StudyConfig,
        out: Path,
        executor: LocalExecutor,
        evaluate: bool,
        device: str = "cpu",
        progress: bool = False,
    ):
        self.cfg, self.out, self.executor, self.evaluate = cfg, out, executor, evaluate
        self.device = device
        # one tick per finished job (training units, monolithic, evaluations); the total
        # grows as jobs are submitted, tqdm's rate gives the ETA of the known ones
        self.bar = tqdm(
            total=0, desc="sorting study", unit="job", disable=not progress, dynamic_ncols=True
        )
        self.pending: dict[cf.Future, tuple] = {}
        self.modules: dict[int, dict[str, dict]] = {}
        self.histories: dict[str, dict] = {}
        self.evals: dict[str, dict[int, dict]] = {}
        self.mono: dict[str, Any] | None = None
        self.thesis, self.addressed = _units_for(cfg.variants)

    def submit(self, tag: tuple, job: dict[str, Any]) -> None:
        self._grow()
        self.pending[self.executor.submit(_run_job, job)] = tag

    def _train_job(self, unit: str, seed: int, **extra: Any) -> dict[str, Any]:
        """A ``train_unit`` job (``extra``: the extra phase's arguments)."""
        return {
            "run": "train_unit",
            "unit": unit,
            "seed": seed,
            "cfg": self.cfg.train,
            "device": self.device,
            **extra,
        }

    def _grow(self, n: int = 1) -> None:
        self.bar.total = (self.bar.total or 0) + n
        self.bar.refresh()

    def _tick(self, tag: tuple) -> None:
        self.bar.set_postfix_str(" ".join(str(t) for t in tag[1:]) or tag[0], refresh=False)
        self.bar.update(1)

    def phase_a(self, seed: int, units: list[str]) -> tuple[float, float]:
        """Train units to criterion with the executor to themselves: (wall, CPU) seconds."""
        if not units:
            return 0.0, 0.0
        t0 = time.perf_counter()
        self._grow(len(units))
        futs = {
            u: self.executor.submit(_run_job, self._train_job(u, seed))
            for u in sorted(
                units, key=lambda u: -{"thesis.controller": 3, "thesis.swap": 2}.get(u, 0)
            )
        }
        for u, f in futs.items():
            self._done_a(seed, u, f.result(), submit_extra=False)
            self._tick(("A", seed, u))
        wall = time.perf_counter() - t0
        # CPU-time makespan of the same schedule (the machine may be shared): the
        # measured per-unit CPU seconds list-scheduled onto the workers in submit order
        cpu = [self.modules[seed][u]["criterion"]["cpu_seconds"] for u in futs]
        return wall, makespan(cpu, self.executor.workers, longest_first=False)

    def _done_a(self, seed: int, unit: str, res: dict, submit_extra: bool = True) -> None:
        self.modules.setdefault(seed, {})[unit] = {"criterion": res}
        if seed == self.cfg.seeds[0]:
            self.histories[unit] = res["history"]
        if submit_extra:
            self._submit_extra(seed, unit)

    def _submit_extra(self, seed: int, unit: str) -> None:
        res = self.modules[seed][unit]["criterion"]
        self.submit(
            ("B", seed, unit),
            self._train_job(
                unit,
                seed,
                phase="extra",
                init_states=res["states"],
                prior_iterations=res["iterations"],
            ),
        )

    def start_seed(self, seed: int) -> None:
        for u in self.thesis + self.addressed:
            self.submit(("A", seed, u), self._train_job(u, seed))

    def _seed_ready(self, seed: int, units: list[str]) -> bool:
        got = self.modules.get(seed, {})
        return bool(units) and all("extra" in got.get(u, {}) for u in units)

    def _eval(self, variant: str, seed: int, folder: Path) -> None:
        if self.evaluate and variant in self.cfg.variants:
            self.submit(
                ("E", variant, seed),
                {
                    "run": "evaluate_variant",
                    "variant": variant,
                    "seed": seed,
                    "folder": str(folder),
                    "lengths": self.cfg.lengths(),
                    "counts": self.cfg.counts(variant, seed),
                    "device": self.device,
                },
            )

    def handle(self, tag: tuple, res: Any) -> None:
        kind = tag[0]
        if kind == "A":
            self._done_a(tag[1], tag[2], res)
        elif kind == "B":
            seed, unit = tag[1], tag[2]
            self.modules[seed][unit]["extra"] = res
            _save_unit(self.out, seed, unit, res["states"], self.cfg.train.hidden)
            folder = self.out / "modules" / f"seed{seed}"
            if unit in self.thesis and self._seed_ready(seed, self.thesis):
                for v in ("modular_untyped", "modular_typed"):
                    self._eval(v, seed, folder)
                if seed in self.cfg.hybrid_seeds:
                    for v in self.cfg.variants:
                        if v.startswith("hybrid_"):
                            self._eval(v, seed, folder)
            if unit in self.addressed and self._seed_ready(seed, self.addressed):
                for v in ("modular_addressed", "modular_addressed_recursive"):
                    self._eval(v, seed, folder)
        elif kind == "M":
            self.mono = res
            self.histories["monolithic"] = res["history"]
            folder = self.out / "modules" / "monolithic"
            for role, m in modules_from_bytes_all(
                res["states"], self.cfg.monolithic.hidden
            ).items():
                save_module(m, folder / role)
            self._eval("monolithic", self.cfg.seeds[0], folder)
        elif kind == "E":
            self.evals.setdefault(tag[1], {})[tag[2]] = res

    def drain(self) -> None:
        while self.pending:
            done, _ = cf.wait(list(self.pending), return_when=cf.FIRST_COMPLETED)
            for f in done:
                tag = self.pending.pop(f)
                try:
                    res = f.result()
                except Exception as exc:
                    raise TrainingError(f"sorting study: job {tag} failed: {exc}") from exc
                self.handle(tag, res)
                self._tick(tag)


def modules_from_bytes_all(states: dict[str, bytes], hidden: int) -> dict[str, Any]:
    """The monolithic network's modules by role."""
    out: dict[str, Any] = {}
    for unit, roles in THESIS_UNITS.items():
        out.update(modules_from_bytes(unit, {r: states[r] for r in roles}, hidden))
    return out


def _variant_summary(cfg: StudyConfig, variant: str, per_seed: dict[int, dict]) -> dict[str, Any]:
    lengths = cfg.lengths()
    pooled: dict[str, Any] = {}
    wil: dict[str, Any] = {}
    lists: dict[str, int] = {}
    from brickwork.studies.sorting.evaluation import wilson

    for n in lengths:
        rs = [e["by_length"][str(n)] for e in per_seed.values() if e["by_length"].get(str(n))]
        if not rs:
            pooled[str(n)], wil[str(n)], lists[str(n)] = None, None, 0
            continue
        c, t = sum(r["correct"] for r in rs), sum(r["total"] for r in rs)
        pooled[str(n)], wil[str(n)], lists[str(n)] = c / t, list(wilson(c, t)), t
    seeds = {}
    for s, e in sorted(per_seed.items()):
        acc = {n: (e["by_length"][str(n)] or {}).get("accuracy") for n in lengths}
        mv = max_verified(acc, lengths)
        seeds[str(s)] = {
            "max_verified_length": mv,
            "extrapolation_factor": mv / cfg.max_train(),
            "accuracy_by_length": {str(n): acc[n] for n in lengths},
            "eval_seconds": e["seconds"],
        }
    mv = min(v["max_verified_length"] for v in seeds.values()) if seeds else 0
    return {
        "max_verified_length": mv,
        "extrapolation_factor": mv / cfg.max_train(),
        "accuracy_by_length": pooled,
        "wilson95": wil,
        "lists_by_length": lists,
        "seeds": sorted(per_seed),
        "per_seed": seeds,
        "typed": is_typed(variant),
        "whole_list": variant in WHOLE_LIST,
    }


def run_study(
    cfg: StudyConfig,
    out: str | Path,
    *,
    train: bool = True,
    evaluate: bool = True,
    device: str = "cpu",
    progress: bool = False,
) -> dict[str, Any]:
    """Run the study into ``out`` (modules, histories, plots, ``summary.json``).

    With ``train=False`` the modules are loaded from ``out/modules`` (a previous train run).
    ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"`` …): where every worker trains and
    evaluates (modules are initialised and data drawn on the CPU with the same seeds, then
    moved there); it is recorded in the summary. Saved modules are on the CPU.
    ``progress``: a tqdm bar on stderr, one tick per finished job, with an ETA.
    """
    check_device(device, "sorting study")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    unknown = [v for v in cfg.variants if v not in VARIANTS]
    if unknown:
        raise TrainingError(f"sorting study: unknown variants {unknown}; known: {list(VARIANTS)}")
    t_start = time.perf_counter()
    summary: dict[str, Any] = {
        "study": "sorting",
        "brickwork_version": __version__,
        "torch_version": torch.__version__,
        "quick": cfg.quick,
        "seeds": list(cfg.seeds),
        "config": cfg.to_json(),
        "max_train_length": cfg.max_train(),
        "device": str(device),
    }
    # one job in this process when there is one worker (no start-up cost)
    with LocalExecutor(cfg.workers, in_process=cfg.workers == 1) as executor:
        # start the workers (imports, optimizer set-up) before anything is timed
        executor.warm_up(imports=["brickwork.studies.sorting"])
        run = _Run(cfg, out, executor, evaluate, device, progress)
        if train:
            s0 = cfg.seeds[0]
            modular_seconds, modular_cpu = run.phase_a(s0, run.thesis)
            addressed_seconds, addressed_cpu = run.phase_a(s0, run.addressed)
            for u in run.thesis + run.addressed:
                run._submit_extra(s0, u)
            if "monolithic" in cfg.variants:
                run.submit(
                    ("M",),
                    {
                        "run": "train_monolithic",
                        "seed": s0,
                        "cfg": cfg.monolithic,
                        "device": device,
                    },
                )
            for s in cfg.seeds[1:]:
                run.start_seed(s)
            run.drain()
            summary.update(
                _training_summary(
                    cfg, run, modular_seconds, addressed_seconds, modular_cpu, addressed_cpu
                )
            )
            atomic_write_json(out / "histories.json", run.histories)
            atomic_write_json(out / "train.json", summary)
        else:
            prior = out / "train.json"
            if not prior.exists():
                raise TrainingError(
                    f"{prior}: missing; run 'brickwork sorting train --out {out}' first"
                )
            summary.update(
                {
                    k: v
                    for k, v in json.loads(prior.read_text()).items()
                    if k not in ("config", "quick", "seeds", "device")
                }
            )
            run.histories = json.loads((out / "histories.json").read_text())
            for v in cfg.variants:
                seeds = (
                    [cfg.seeds[0]]
                    if v == "monolithic"
                    else (cfg.hybrid_seeds if v.startswith("hybrid_") else cfg.seeds)
                )
                for s in seeds:
                    folder = out / "modules" / ("monolithic" if v == "monolithic" else f"seed{s}")
                    if folder.exists():
                        run._eval(v, s, folder)
            run.drain()
        run.bar.close()
    if evaluate:
        variants = {
            v: _variant_summary(cfg, v, run.evals[v]) for v in cfg.variants if v in run.evals
        }
        summary["variants"] = variants
        summary["eval_lengths"] = cfg.lengths()
        summary["eval_lists_first_seed"] = {
            v: {str(k): c for k, c in cfg.counts(v).items()} for v in variants
        }
        summary["eval_policy"] = (
            f"closed loop, exact match (sorted permutation, EOP within 2x the teacher's steps); "
            f"{cfg.lists} lists per length and seed; whole-list variants use fewer lists beyond "
            f"{cfg.whole_list_full_until}x the training length (n^3 cost) and skip lengths after "
            f"one with no solved list (null); lengths beyond {cfg.long_beyond}x run on the first "
            f"seed only with at most {cfg.long_lists} lists; max_verified_length is the minimum "
            "over seeds (a seed counts the lengths it evaluated), "
            "accuracy_by_length pools the seeds"
        )
        times = dict(summary.get("time_to_criterion_by_unit", {}))
        if summary.get("monolithic_seconds") is not None:
            times["monolithic" + (" (cap)" if summary.get("speedup_is_lower_bound") else "")] = (
                summary["monolithic_seconds"]
            )
        summary["plots"] = plot_all(
            out, run.histories, times, variants, cfg.lengths(), cfg.max_train()
        )
    summary["wall_seconds"] = time.perf_counter() - t_start
    atomic_write_json(out / "summary.json", summary)
    return summary


def _training_summary(
    cfg: StudyConfig,
    run: _Run,
    modular_seconds: float,
    addressed_seconds: float,
    modular_cpu: float,
    addressed_cpu: float,
) -> dict[str, Any]:
    s0 = cfg.seeds[0]
    modules = {
        str(s): {u: {ph: _strip(r) for ph, r in d.items()} for u, d in units.items()}
        for s, units in run.modules.items()
    }
    digests = sorted(
        {r["criterion"]["data_digest"] for units in run.modules.values() for r in units.values()}
    )
    ref_units = run.thesis or run.addressed
    ref_seconds = modular_seconds if run.thesis else addressed_seconds
    out: dict[str, Any] = {
        "modules": modules,
        "data_digests": digests,
        "modular_seconds": ref_seconds,
        "modular_reference": "modular_typed (thesis architectures)"
        if run.thesis
        else "modular_addressed",
        "modular_seconds_summed": sum(
            run.modules[s0][u]["criterion"]["seconds"] for u in ref_units
        ),
        "modular_addressed_seconds": addressed_seconds if run.addressed else None,
        "modular_cpu_seconds": modular_cpu if run.thesis else addressed_cpu,
        "modular_addressed_cpu_seconds": addressed_cpu if run.addressed else None,
        "cpu_seconds_to_criterion_by_unit": {
            u: run.modules[s0][u]["criterion"]["cpu_seconds"] for u in run.thesis + run.addressed
        },
        "modular_met_criteria": {
            u: run.modules[s0][u]["criterion"]["met_criteria"] for u in ref_units
        },
        "time_to_criterion_by_unit": {
            u: run.modules[s0][u]["criterion"]["seconds"] for u in run.thesis + run.addressed
        },
        "steps_to_criterion_by_unit": {
            u: run.modules[s0][u]["criterion"]["iterations"] for u in run.thesis + run.addressed
        },
    }
    if run.mono is not None:
        mono = run.mono
        out["monolithic"] = _strip(mono)
        out["monolithic_seconds"] = mono["seconds"]
        out["speedup"] = mono["seconds"] / max(ref_seconds, 1e-9)
        out["speedup_summed"] = mono["seconds"] / max(out["modular_seconds_summed"], 1e-9)
        if run.addressed and run.thesis:
            out["speedup_addressed"] = mono["seconds"] / max(addressed_seconds, 1e-9)
        out["speedup_is_lower_bound"] = not mono["met_criteria"]
        out["monolithic_cpu_seconds"] = mono["cpu_seconds"]
        out["speedup_cpu"] = mono["cpu_seconds"] / max(out["modular_cpu_seconds"], 1e-9)
        digests.append(mono["data_digest"])
        out["data_digests"] = sorted(set(digests))
    return out


__all__ = ["StudyConfig", "evaluate_variant", "run_study"]
