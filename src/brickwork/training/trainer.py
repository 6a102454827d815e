"""Execute a :class:`~brickwork.plan.TrainingPlan`: stage by stage, jobs in parallel.

Before each stage the tables its modules train on are recorded as intermediate
datasets (the upstream modules are frozen and run once over the data, §4.3.2); each
module is then a :class:`ModuleJob` run by the executor; trained weights are loaded
back into the vocabulary, registered when a registry is given, and the next stage
starts. Joint groups train together in this process, end-to-end over the layouts that
use them. A run folder holds everything: ``cache/``, ``jobs/<module>/``, ``summary.json``.
Run it again with ``resume=True`` after a crash: finished jobs are skipped, unfinished
ones continue from their checkpoints, intermediate datasets are cache hits.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, final

import torch

from brickwork._version import __version__
from brickwork.errors import TrainingError
from brickwork.layouts import Kinds, Layout, Runner, Source
from brickwork.modules import atomic_write_json, load_module
from brickwork.plan import TrainingPlan
from brickwork.training.cache import CacheKey, IntermediateDataset
from brickwork.training.cost import CostReport
from brickwork.training.end_to_end import train_end_to_end
from brickwork.training.executor import Executor, make_executor
from brickwork.training.fit import FitConfig
from brickwork.training.job import DEFAULT_HPARAMS, ModuleJob, run_job
from brickwork.training.samples import Samples
from brickwork.training.seeding import derive_seed

log = logging.getLogger("brickwork.training")

SHARD_ROWS = 512


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "module"


@final
class PlanResult:
    """What :func:`train_plan` returns: per-module results, cost, and the summary JSON."""

    def __init__(self, summary: dict[str, Any]):
        self.summary = summary

    @property
    def modules(self) -> dict[str, Any]:
        return dict(self.summary["modules"])

    @property
    def cost(self) -> CostReport:
        c = self.summary["cost"]
        return CostReport(c["modules"], c["stages"], end_to_end=c["end_to_end"],
                          workers=c["workers"], overhead=c["overhead"])

    def cost_table(self) -> str:
        return self.cost.table()


def _slice_value(lay: Layout, src: Source) -> Layout:
    sl = lay.slice(src.node)  # type: ignore[arg-type]
    return Layout(sl.name, sl.nodes, sl.kinds, {"value": src}, dict(sl.inputs))


def module_table(name: str, family: Sequence[Layout], kinds: Kinds, data: Samples,
                 columns: Mapping[str, str], *, layout_column: str = "layout",
                 data_inputs: Sequence[str] = ()) -> list[Samples]:
    """Rows for training ``name``: one per application in the data's layouts.

    Each input port's column holds what feeds it: a data column for external inputs,
    the value computed by the (frozen) upstream slice otherwise. ``columns`` adds data
    columns by name (targets, context). Returned in shards.
    """
    lay_idx = data[layout_column].tolist()
    apps: list[tuple[int, int, str]] = []  # (row, layout index, node id)
    for row, li in enumerate(lay_idx):
        for node in family[li].nodes:
            if node.module == name:
                apps.append((row, li, node.id))
    if not apps:
        raise TrainingError(f"module {name!r} is used by no sample of the data; check the "
                            f"'{layout_column}' column")
    runner = Runner(kinds)
    slices: dict[tuple[int, str, str], Layout] = {}
    shards: list[Samples] = []
    with torch.no_grad():
        for start in range(0, len(apps), SHARD_ROWS):
            part = apps[start:start + SHARD_ROWS]
            rows = torch.tensor([a[0] for a in part])
            cols: dict[str, torch.Tensor] = {}
            first = family[part[0][1]].node(part[0][2])
            for port in first.inputs:
                srcs = [family[li].node(nid).inputs[port] for _, li, nid in part]
                if all(s.node is None for s in srcs):
                    cols[f"in.{port}"] = torch.stack([data[s.port][r] for s, (r, _, _) in zip(srcs, part)])
                    continue
                values: list[torch.Tensor | None] = [None] * len(part)
                groups: dict[bool, list[int]] = {True: [], False: []}
                for j, s in enumerate(srcs):
                    groups[s.node is None].append(j)
                for j in groups[True]:
                    values[j] = data[srcs[j].port][part[j][0]]
                if groups[False]:
                    lays = []
                    for j in groups[False]:
                        _, li, _ = part[j]
                        key = (li, srcs[j].node, srcs[j].port)  # type: ignore[assignment]
                        if key not in slices:
                            slices[key] = _slice_value(family[li], srcs[j])  # type: ignore[index]
                        lays.append(slices[key])  # type: ignore[index]
                    need = sorted(set().union(*[set(l.inputs) for l in lays]))
                    sub_rows = rows[torch.tensor(groups[False])]
                    out = runner(lays, {k: data[k][sub_rows] for k in need}, outputs=["value"])
                    for k, j in enumerate(groups[False]):
                        values[j] = out["value"][k]
                cols[f"in.{port}"] = torch.stack(values)  # type: ignore[arg-type]
            for new, old in columns.items():
                cols[new] = data[old][rows]
            cols["sample"] = data.ids[rows]
            ids = torch.arange(start, start + len(part), dtype=torch.int64)
            shards.append(Samples(cols, ids))
    return shards


def _register(registry: Any, name: str, module: Any, result: Mapping[str, Any], tag: str,
              lineage: Mapping[str, Any], data_digest: str) -> str:
    from brickwork.registry import module_name_to_tag

    entry = f"{module.kind}.{module_name_to_tag(name)}-{tag}"
    registry.put(entry, module, mode=result.get("mode", ""),
                 hyperparameters=result.get("hyperparameters", {}),
                 metrics=result.get("metrics", {}), lineage=lineage, data_digest=data_digest,
                 overwrite=True)
    return entry


def train_plan(plan: TrainingPlan, family: Sequence[Layout], kinds: Kinds, data: Samples, *,
               workdir: str | Path, executor: str | Executor = "local", workers: int = 2,
               ray_address: str | None = None, registry: Any = None, register_tag: str = "v1",
               seed: int = 0, hparams: Mapping[str, Mapping[str, Any]] | None = None,
               search: Mapping[str, Mapping[str, Any]] | None = None, trials: int = 0,
               resume: bool = False, progress: bool = False, tensorboard: bool = False,
               end_to_end_time: float | None = None,
               config: Mapping[str, Any] | None = None) -> PlanResult:
    """Train every module of ``plan`` and write ``workdir/summary.json``.

    Args:
        plan: from :func:`brickwork.plan.make_plan` over ``family``.
        family: the layouts; ``kinds``: their vocabulary (trained in place).
        data: the dataset (inputs, targets, the layout column).
        workdir: the run folder.
        executor: ``"local"``, ``"ray"`` or an :class:`Executor`.
        workers: parallel workers (local) or CPUs of a local Ray instance.
        registry: register every trained module here (and load reused ones from it).
        hparams: per kind or module name, hyperparameters (``epochs``, ``lr``, ...).
        search: per kind or module name, a search space; ``trials`` per module.
        resume: continue a killed run (finished jobs are skipped).
        progress: tqdm bars per stage (and per epoch with one worker).
        tensorboard: TensorBoard logs per job (optional ``tensorboard`` package).
        end_to_end_time: seconds of an end-to-end baseline, for the cost report.
        config: extra configuration recorded in the summary.
    """
    t_start = time.perf_counter()
    work = Path(workdir)
    if work.exists() and any(work.iterdir()) and not resume:
        raise TrainingError(f"{work} already holds a run; pass resume=True (--resume) to continue "
                            "it, or choose another folder")
    work.mkdir(parents=True, exist_ok=True)
    layout_column = plan.data.get("layout_column", "layout")
    data_digest = data.digest()
    data_path = work / "data.safetensors"
    if not data_path.exists():
        data.save(data_path)
    hparams, search = dict(hparams or {}), dict(search or {})
    own_executor = isinstance(executor, str)
    ex = make_executor(executor, workers=workers, address=ray_address) if isinstance(executor, str) else executor
    results: dict[str, Any] = {}
    stage_overhead: list[float] = []
    stage_times: list[float] = []
    registered: dict[str, str] = {}
    try:
        for name, mp in plan.modules.items():
            if mp.mode == "reuse":
                if registry is None:
                    raise TrainingError(f"module {name!r} is planned for reuse of "
                                        f"{mp.registry_entry!r} but no registry was given")
                kinds.module(name).load_state_dict(registry.load(mp.registry_entry).state_dict())
                results[name] = {"name": name, "mode": "reuse", "registry_entry": mp.registry_entry,
                                 "train_time": 0.0}
        for s_index, stage in enumerate(plan.stages, 1):
            t_stage = time.perf_counter()
            jobs: list[dict[str, Any]] = []
            joint: list[str] = []
            for name in stage:
                mp = plan.modules[name]
                if mp.mode == "joint":
                    joint.append(name)
                    continue
                module = kinds.module(name)
                if mp.direct:
                    target = (plan.data.get("module_targets", {}).get(name)
                              or next(t for t in mp.targets if not t.startswith("<")))
                else:
                    target = mp.targets[0]
                extra = {"target": target}
                context = None
                if mp.mode == "surrogate":
                    ctx = [c for c in mp.context if c in data and data[c].dim() == 4]
                    if ctx:
                        extra["context"] = ctx[0]
                        context = "context"
                upstream = {u: kinds.module(u).fingerprint() for u in mp.upstream}
                producers = {u: {"kind": kinds.module(u).kind, "config": kinds.module(u).config}
                             for u in mp.upstream}
                key = CacheKey(upstream=upstream, producers=producers, data_digest=data_digest,
                               dtype="float32", content={"consumer": name, "columns": extra,
                                                         "family": [l.to_json() for l in family
                                                                    if name in l.module_names()]})
                ds, hit = IntermediateDataset.get_or_build(
                    work / "cache", key,
                    lambda n=name, e=extra: module_table(n, family, kinds, data, e,
                                                         layout_column=layout_column))
                log.info("stage %d: table of %s %s (%d rows)", s_index, name,
                         "cache hit" if hit else "built", len(ds))
                hp = {**DEFAULT_HPARAMS, **hparams.get(mp.kind, {}), **hparams.get(name, {})}
                space = search.get(name) or search.get(mp.kind)
                job = ModuleJob(
                    name=name, kind=module.kind, config=module.config,
                    imports=(type(module).__module__,),
                    mode="cached" if mp.mode == "cached" else mp.mode,
                    data=str(ds.folder), inputs={p: f"in.{p}" for p in module.inputs},
                    target="target", context=context, hparams=hp,
                    search=space, trials=trials if space else 0, seed=derive_seed(seed, name),
                    workdir=str(work / "jobs" / _safe(name)),
                    progress=progress and ex.workers == 1, data_digest=data_digest,
                    tensorboard=tensorboard)
                jobs.append(job.to_json())
            overhead = time.perf_counter() - t_stage
            out = ex.map(run_job, jobs, progress=progress, desc=f"stage {s_index}") if jobs else []
            for res in out:
                name = res["name"]
                trained = load_module(res["module_dir"])
                kinds.module(name).load_state_dict(trained.state_dict())
                results[name] = res
            if joint:
                t_joint = time.perf_counter()
                _train_joint(plan, joint, family, kinds, data, hparams, seed, layout_column)
                for name in joint:
                    results[name] = {"name": name, "mode": "joint",
                                     "train_time": (time.perf_counter() - t_joint) / len(joint),
                                     "fingerprint": kinds.module(name).fingerprint()}
            if registry is not None:
                for name in stage:
                    mp = plan.modules[name]
                    lineage = {"upstream": {u: kinds.module(u).fingerprint() for u in mp.upstream},
                               "intermediate_dataset": mp.reads or ""}
                    registered[name] = _register(registry, name, kinds.module(name), results[name],
                                                 register_tag, lineage, data_digest)
            stage_overhead.append(overhead)
            stage_times.append(time.perf_counter() - t_stage)
    finally:
        if own_executor:
            ex.close()
    per_module = {n: float(r.get("train_time", 0.0)) for n, r in results.items()
                  if plan.modules[n].mode != "reuse"}
    cost = CostReport(per_module, [list(s) for s in plan.stages], end_to_end=end_to_end_time,
                      workers=ex.workers, overhead=stage_overhead)
    summary = {
        "brickwork_version": __version__, "seed": seed, "data_digest": data_digest,
        "config": {**dict(config or {}), "executor": getattr(ex, "name", str(executor)),
                   "workers": ex.workers, "trials": trials, "hparams": hparams,
                   "search": search, "register_tag": register_tag},
        "plan": plan.to_json(), "modules": results, "registered": registered,
        "wall_time": {"total": time.perf_counter() - t_start, "stages": stage_times,
                      "intermediate_datasets": stage_overhead},
        "metrics": {n: r.get("metrics", {}) for n, r in results.items()},
        "cost": cost.to_json(),
    }
    atomic_write_json(work / "summary.json", summary)
    return PlanResult(summary)


def _train_joint(plan: TrainingPlan, names: Sequence[str], family: Sequence[Layout], kinds: Kinds,
                 data: Samples, hparams: Mapping[str, Mapping[str, Any]], seed: int,
                 layout_column: str) -> None:
    """Train a joint group end-to-end over the layouts that use it (others frozen)."""
    use = [i for i, lay in enumerate(family) if lay.module_names() & set(names)]
    keep = torch.tensor([i for i, li in enumerate(data[layout_column].tolist()) if li in set(use)])
    if len(keep) == 0:
        raise TrainingError(f"joint group {list(names)}: no sample uses it")
    targets = sorted({t for n in names for t in plan.modules[n].targets if not t.startswith("<")})
    kind = plan.modules[names[0]].kind
    hp = {**DEFAULT_HPARAMS, **hparams.get(kind, {}), **hparams.get(names[0], {})}
    cfg = FitConfig(epochs=int(hp["epochs"]), batch_size=int(hp["batch_size"]), lr=float(hp["lr"]),
                    seed=derive_seed(seed, "joint", *names))
    train_end_to_end(family, kinds, data.select(keep), targets=targets, config=cfg,
                     trainable=list(names), layout_column=layout_column)
