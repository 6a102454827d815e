"""Execute a :class:`~brickwork.plan.TrainingPlan`: stage by stage, jobs in parallel.

Before each stage the tables its modules train on are recorded as intermediate
datasets (the upstream modules are frozen and run once over the data, §4.3.2); each
module is then a :class:`ModuleJob` run by the executor; trained weights are loaded
back into the vocabulary, registered when a registry is given, and the next stage
starts.

A module in ``surrogate`` mode trains through its own surrogate gradient module (§4.2.3)
on a table of its applications (:func:`~brickwork.training.surrogate_table.surrogate_table`:
the merge ops between its output and the reader kept, one head per route), with the
job's search, ``starts`` fresh starts (the lowest SGM validation loss wins) and a
plateau measure (best SGM loss over the loss before training, the routes' answer
prior). A module that stays on its plateau trains again after its stage, from fresh
weights, with the modules that learned as context (the NMN study's second round,
generically: its mask ANDed with theirs through the layout's own op), and keeps the
weights that end further below their start; the round's learners are the next round's
context, up to ``rounds`` rounds.

Joint groups train together in this process, end-to-end over the layouts that use
them: the codependent (or cyclic) modules and the not yet trained modules between them
and their targets, which ``make_plan`` puts in the group (they do not train again).
A run folder holds everything: ``run.json`` (the run key), ``data.safetensors``,
``cache/``, ``jobs/<module>/``, ``metrics.csv``, ``summary.json``; every path recorded in
it is relative to it. Run it again with ``resume=True`` after a crash: finished jobs whose
key matches are skipped, unfinished ones continue from their checkpoints, intermediate
datasets are cache hits. A resume whose run key differs (seed, data, hyperparameters,
search space, trials, plan, split) is refused before anything is written.
"""

from __future__ import annotations

import copy
import csv
import glob
import hashlib
import io
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, final

import torch

from brickwork._version import __version__
from brickwork.errors import DataError, TrainingError
from brickwork.layouts import Kinds, Layout, Runner, Source
from brickwork.modules import (
    atomic_write_bytes,
    atomic_write_json,
    load_module,
    read_json_object,
    save_module,
)
from brickwork.plan import TrainingPlan
from brickwork.registry import module_name_to_tag
from brickwork.training.cache import CacheKey, IntermediateDataset
from brickwork.training.cost import CostReport
from brickwork.training.end_to_end import train_end_to_end
from brickwork.training.evaluate import EvaluationReport, check_layout_column, evaluate
from brickwork.training.executor import Executor, make_executor
from brickwork.training.fit import FitConfig
from brickwork.training.job import (
    DEFAULT_HPARAMS,
    SURROGATE_HPARAMS,
    ModuleJob,
    key_changes,
    run_job,
)
from brickwork.training.samples import Samples, tensors_digest
from brickwork.training.seeding import derive_seed
from brickwork.training.surrogate_table import surrogate_table

log = logging.getLogger("brickwork.training")

SHARD_ROWS = 512
_SPLIT = "__split__"


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
        return CostReport(
            c["modules"],
            c["stages"],
            end_to_end=c["end_to_end"],
            workers=c["workers"],
            overhead=c["overhead"],
        )

    def cost_table(self) -> str:
        return self.cost.table()

    @property
    def evaluation(self) -> EvaluationReport | None:
        """The assembled family's metrics on the held-out samples (None when not run)."""
        e = self.summary.get("evaluation")
        return EvaluationReport.from_json(e) if e and "outputs" in e else None


def _slice_value(lay: Layout, src: Source) -> Layout:
    sl = lay.slice(src.node)  # type: ignore[arg-type]
    return Layout(sl.name, sl.nodes, sl.kinds, {"value": src}, dict(sl.inputs))


def module_table(
    name: str,
    family: Sequence[Layout],
    kinds: Kinds,
    data: Samples,
    columns: Mapping[str, str],
    *,
    layout_column: str = "layout",
    data_inputs: Sequence[str] = (),
    device: str | torch.device | None = None,
) -> list[Samples]:
    """Rows for training ``name``: one per application in the data's layouts.

    Each input port's column holds what feeds it: a data column for external inputs,
    the value computed by the (frozen) upstream slice otherwise. ``columns`` adds data
    columns by name (targets, context). Upstream slices run on ``device`` (default: where
    the data is); the rows are stored on the CPU. Returned in shards.
    """
    lay_idx = data[layout_column].tolist()
    apps: list[tuple[int, int, str]] = []  # (row, layout index, node id)
    for row, li in enumerate(lay_idx):
        for node in family[li].nodes:
            if node.module == name:
                apps.append((row, li, node.id))
    if not apps:
        raise TrainingError(
            f"module {name!r} is used by no sample of the data; check the '{layout_column}' column"
        )
    runner = Runner(kinds)
    slices: dict[tuple[int, str, str], Layout] = {}
    shards: list[Samples] = []
    with torch.no_grad():
        for start in range(0, len(apps), SHARD_ROWS):
            part = apps[start : start + SHARD_ROWS]
            rows = torch.tensor([a[0] for a in part])
            cols: dict[str, torch.Tensor] = {}
            first = family[part[0][1]].node(part[0][2])
            for port in first.inputs:
                srcs = [family[li].node(nid).inputs[port] for _, li, nid in part]
                if all(s.node is None for s in srcs):
                    cols[f"in.{port}"] = torch.stack(
                        [data[s.port][r] for s, (r, _, _) in zip(srcs, part)]
                    )
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
                        src = srcs[j]
                        assert src.node is not None  # groups[False]: fed by a node
                        key = (li, src.node, src.port)
                        if key not in slices:
                            slices[key] = _slice_value(family[li], src)
                        lays.append(slices[key])
                    need = sorted(set().union(*[set(lay.inputs) for lay in lays]))
                    sub_rows = rows[torch.tensor(groups[False])]
                    feed = {k: data[k][sub_rows] for k in need}
                    if device is not None:
                        feed = {k: v.to(device) for k, v in feed.items()}
                    out = runner(lays, feed, outputs=["value"])
                    for k, j in enumerate(groups[False]):
                        values[j] = out["value"][k].cpu()
                cols[f"in.{port}"] = torch.stack(values)  # type: ignore[arg-type]
            for new, old in columns.items():
                cols[new] = data[old][rows]
            cols["sample"] = data.ids[rows]
            ids = torch.arange(start, start + len(part), dtype=torch.int64)
            shards.append(Samples(cols, ids))
    return shards


def _register(
    registry: Any,
    name: str,
    module: Any,
    result: Mapping[str, Any],
    tag: str,
    lineage: Mapping[str, Any],
    data_digest: str,
) -> str:
    """Register ``module`` as a new version of ``kind.<tag>-<run tag>``; returns the
    reference with its version (``kind.tag@N``)."""
    entry = f"{module.kind}.{module_name_to_tag(name)}-{tag}"
    if any(p.device.type != "cpu" for p in module.parameters()):
        module = copy.deepcopy(module).to("cpu")
    card = registry.put(
        entry,
        module,
        mode=result.get("mode", ""),
        hyperparameters=result.get("hyperparameters", {}),
        metrics=result.get("metrics", {}),
        lineage=lineage,
        data_digest=data_digest,
    )
    version = getattr(card, "version", None)
    return str(getattr(card, "ref", None) or (f"{entry}@{version}" if version else entry))


RUN_FILE = "run.json"


def _canonical(x: Any) -> Any:
    return json.loads(json.dumps(x, sort_keys=True, default=str))


def _digest(x: Any) -> str:
    return hashlib.sha256(json.dumps(x, sort_keys=True, default=str).encode()).hexdigest()


def plan_digest(plan: TrainingPlan, family: Sequence[Layout]) -> str:
    """Digest of the plan and its layouts (module names, kinds, wiring)."""
    return _digest({"plan": plan.to_json(), "family": [lay.to_json() for lay in family]})


def run_split(n: int, split_seed: int, val_fraction: float) -> torch.Tensor:
    """The run-level split: a 0/1 flag per sample (1: validation). ``train_plan`` seeds it
    with ``derive_seed(seed, "run-split")`` and records that in ``run.json``.

    No module trains on a validation sample (each job validates and searches on them),
    so :func:`~brickwork.training.evaluate.evaluate` on them scores held-out samples.

    Example:
        >>> int(run_split(10, 0, 0.2).sum())
        2
    """
    flags = torch.zeros(n, dtype=torch.int64)
    k = int(round(n * val_fraction))
    if k and n - k:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
        flags[order[:k]] = 1
    return flags


def load_run_modules(family: Sequence[Layout], kinds: Kinds, folder: str | Path) -> list[str]:
    """Load the weights a run folder trained (``jobs/<module>/module``) into ``kinds``.

    Returns the names loaded. Parameter-free modules (ops) are skipped.

    Raises:
        TrainingError: a trainable module of the family has no saved weights in the run,
            or they are of another kind.
    """
    from brickwork.plan import is_trainable

    work = Path(folder)
    names = sorted(set().union(*[lay.module_names() for lay in family])) if family else []
    loaded = []
    for name in names:
        module = kinds.module(name)
        if not is_trainable(module):
            continue
        mdir = _module_dir(work, name)
        for later in sorted(
            work.glob(f"jobs/{glob.escape(_safe(name))}-round*"),
            reverse=True,
            key=lambda p: int(p.name.rsplit("round", 1)[1] or 0),
        ):
            if (later / KEPT).is_file() and (later / "module" / "config.json").is_file():
                mdir = later / "module"  # a later SGM round's weights were kept
                break
        if not (mdir / "config.json").is_file():
            raise TrainingError(
                f"{work}: module {name!r} has no trained weights in the run "
                f"(expected {mdir.relative_to(work)}/); was the run finished, "
                "and with this plan?"
            )
        trained = load_module(mdir)
        if trained.kind != module.kind:
            raise TrainingError(
                f"{mdir}: holds a module of kind {trained.kind!r}, the plan's "
                f"{name!r} is {module.kind!r}; evaluate with the plan the run "
                "was trained with"
            )
        module.load_state_dict(trained.state_dict())
        loaded.append(name)
    return loaded


def evaluate_run(
    family: Sequence[Layout],
    kinds: Kinds,
    folder: str | Path,
    *,
    split: str = "val",
    device: str | None = None,
    batch_size: int = 256,
) -> EvaluationReport:
    """Score a finished run: load its modules into ``kinds`` and evaluate ``family`` on the
    run's own data copy, on the split ``train_plan`` used (``"val"``: the held-out
    samples, ``"train"``, or ``"all"``).

    Raises:
        TrainingError: not a run folder, its data or split do not match ``run.json``.
        DataError: a bad split name, the layout column does not index the family.
    """
    if split not in ("train", "val", "all"):
        raise DataError(f"split {split!r} is not one of train, val, all")
    work = Path(folder)
    run = read_run(work)
    data_path = work / str(run.get("data", "data.safetensors"))
    data = Samples.load(data_path)
    if data.digest() != run["key"]["data_digest"]:
        raise TrainingError(
            f"{data_path}: its digest differs from the one in {work / RUN_FILE}; "
            "the run folder was altered"
        )
    info = run["split"]
    flags = run_split(len(data), int(info["seed"]), float(info["val_fraction"]))
    if tensors_digest({"split": flags}) != info["digest"]:
        raise TrainingError(
            f"{work / RUN_FILE}: the recorded split cannot be reproduced "
            "(its digest differs); the run folder was altered"
        )
    load_run_modules(family, kinds, work)
    if split == "all":
        rows = torch.arange(len(data))
    else:
        rows = torch.nonzero(flags == (1 if split == "val" else 0)).flatten()
        if len(rows) == 0:
            raise DataError(
                f"{work}: the {split!r} split is empty (val_fraction "
                f"{info['val_fraction']}); use --split all"
            )
    report = evaluate(
        family,
        kinds,
        data.select(rows),
        device=device,
        layout_column=str(run.get("layout_column", "layout")),
        batch_size=batch_size,
    )
    return EvaluationReport(report.outputs, report.samples, {"split": split, "run": str(work)})


def read_run(folder: str | Path) -> dict[str, Any]:
    """The run file (``run.json``) of a run folder.

    Raises:
        TrainingError: the folder holds no readable run file.
    """
    path = Path(folder) / RUN_FILE
    data = read_json_object(
        path,
        missing=f"not found; {folder} is not a brickwork run folder (run "
        "`brickwork train PLAN --out FOLDER` first)",
        fix="the run file is damaged; train the run again",
        error=TrainingError,
    )
    if "key" not in data:
        raise TrainingError(
            f"{path}: not a run file (no 'key'); expected the run.json that "
            "`brickwork train` writes"
        )
    return data


def _refuse_changed(work: Path, stored: Mapping[str, Any], key: Mapping[str, Any]) -> None:
    changes = key_changes(stored, key)
    raise TrainingError(
        f"cannot resume {work}: it was trained with other settings ("
        f"{'; '.join(changes)}); use --out NEW_FOLDER (out=... in Python), or "
        f"delete {work} to start fresh"
    )


def _module_dir(work: Path, name: str) -> Path:
    return work / "jobs" / _safe(name) / "module"


def export_run_metrics(work: Path, names: Sequence[str]) -> Path | None:
    """``metrics.csv`` of the run folder: one row per module and epoch, from every job
    folder's ``metrics.jsonl``."""
    rows: list[dict[str, Any]] = []
    for name in names:
        path = work / "jobs" / _safe(name) / "metrics.jsonl"
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                rows.append({"module": name, **rec})
    if not rows:
        return None
    first = ["module", "epoch", "step", "train_loss", "lr", "val_loss"]
    seen: list[str] = []
    for r in rows:
        seen.extend(k for k in r if k not in seen and k not in first and k != "time")
    cols = [c for c in first if any(c in r for r in rows)] + seen
    cols += ["time"] if any("time" in r for r in rows) else []
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: r.get(k, "") for k in cols})
    out = work / "metrics.csv"
    atomic_write_bytes(out, buf.getvalue().encode())
    return out


def check_run_folder(
    plan: TrainingPlan,
    family: Sequence[Layout],
    data: Samples,
    workdir: str | Path,
    *,
    seed: int = 0,
    hparams: Mapping[str, Any] | None = None,
    search: Mapping[str, Any] | None = None,
    trials: int = 0,
    resume: bool = False,
    val_fraction: float = 0.2,
) -> dict[str, Any]:
    """Check, writing nothing, that :func:`train_plan` may use ``workdir``; returns the run
    key (what ``run.json`` records).

    Raises:
        TrainingError: ``workdir`` is a file; holds a run and ``resume`` is False; holds a
            run trained with another key (the message lists every change: ``seed: 0 -> 1;
            data digest: 3fa2… -> 91bc…``, and how to start fresh).
        DataError: the layout column does not index the family.
    """
    work = Path(workdir)
    layout_column = plan.data.get("layout_column", "layout")
    check_layout_column(data, len(family), layout_column)
    if work.exists() and not work.is_dir():
        raise TrainingError(
            f"{work} is a file; the run folder must be a directory (choose another --out)"
        )
    if not 0.0 <= val_fraction < 1.0:
        raise TrainingError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 0:
        raise TrainingError(f"trials must be an integer >= 0, got {trials!r}")
    hparams, search = dict(hparams or {}), dict(search or {})
    flags = run_split(len(data), derive_seed(seed, "run-split"), val_fraction)
    split = {
        "by": "sample",
        "val_fraction": val_fraction,
        "seed": derive_seed(seed, "run-split"),
        "val_rows": int(flags.sum()),
        "digest": tensors_digest({"split": flags}),
    }
    run_key: dict[str, Any] = _canonical(
        {
            "seed": seed,
            "data_digest": data.digest(),
            "hparams": hparams,
            "search": search if trials else {},
            "trials": trials,
            "plan_digest": plan_digest(plan, family),
            "split": split,
            "layout_column": layout_column,
        }
    )
    if work.exists() and any(work.iterdir()):
        if not resume:
            raise TrainingError(
                f"{work} already holds a run; pass resume=True (--resume) to "
                "continue it, or choose another folder"
            )
        if (work / RUN_FILE).exists():
            stored = read_run(work)
            if stored["key"] != run_key:
                _refuse_changed(work, stored["key"], run_key)
        elif (work / "summary.json").exists() or (work / "jobs").exists():
            raise TrainingError(
                f"cannot resume {work}: it has no {RUN_FILE} (written by an older "
                f"brickwork), so what it was trained with cannot be checked; "
                f"use --out NEW_FOLDER, or delete {work} to start fresh"
            )
    return run_key


def _round_folder(name: str, round_: int) -> str:
    """The job folder of a module's SGM round (``find_red``, ``find_red-round2``, …)."""
    return _safe(name) + (f"-round{round_}" if round_ > 1 else "")


KEPT = "kept.json"


@dataclass
class _Run:
    """What every job of one ``train_plan`` call shares."""

    plan: TrainingPlan
    family: Sequence[Layout]
    kinds: Kinds
    tagged: Samples
    work: Path
    layout_column: str
    dev: torch.device | None
    device: str | None
    hparams: Mapping[str, Mapping[str, Any]]
    search: Mapping[str, Mapping[str, Any]]
    trials: int
    seed: int
    progress: bool
    tensorboard: bool
    val_fraction: float
    data_digest: str
    split_digest: str
    results: dict[str, Any]


def _hp(run: _Run, name: str) -> dict[str, Any]:
    kind = run.plan.modules[name].kind
    return {**DEFAULT_HPARAMS, **run.hparams.get(kind, {}), **run.hparams.get(name, {})}


def _target_of(run: _Run, name: str) -> str:
    """The column a module's job trains towards: its own target (``module_target``) in
    direct/cached mode, else the nearest supervised output."""
    mp = run.plan.modules[name]
    if mp.module_target is not None and mp.mode in ("direct", "cached"):
        return mp.module_target
    if not mp.targets:
        raise TrainingError(f"module {name!r}: the plan gives it no target to train towards")
    return mp.targets[0]


def _module_job(
    run: _Run, name: str, s_index: int, trained: set[str], round_: int = 1
) -> dict[str, Any]:
    """Build (or find in the cache) the table of one module and describe its job."""
    mp = run.plan.modules[name]
    kinds, work = run.kinds, run.work
    module = kinds.module(name)
    extra = {"target": _target_of(run, name), "split": _SPLIT}
    prior = _hp(run, name).get("prior") if mp.mode == "surrogate" else None
    if prior:
        if prior not in set(run.tagged):
            raise TrainingError(
                f"module {name!r}: hparams 'prior' names the column {prior!r}, "
                f"which the data does not have (columns: {sorted(run.tagged)})"
            )
        extra["prior"] = str(prior)
    context = None
    routes: list[dict[str, Any]] = []
    context_modules: list[str] = []
    if mp.mode == "surrogate":
        ctx = [c for c in mp.context if c in set(run.tagged) and run.tagged[c].dim() == 4]
        if ctx:
            extra["context"] = ctx[0]
            context = "context"
        behind = {n.module for lay in run.family if name in lay.module_names() for n in lay.nodes}
        context_modules = sorted((behind & trained) - {name} - set(mp.upstream))
    upstream = {u: kinds.module(u).fingerprint() for u in [*mp.upstream, *context_modules]}
    producers = {
        u: {"kind": kinds.module(u).kind, "config": kinds.module(u).config} for u in upstream
    }
    key = CacheKey(
        upstream=upstream,
        producers=producers,
        data_digest=run.data_digest,
        dtype="float32",
        content={
            "consumer": name,
            "columns": extra,
            "split": run.split_digest,
            "round": round_,
            "surrogate": mp.mode == "surrogate",
            "family": [lay.to_json() for lay in run.family if name in lay.module_names()],
        },
    )

    def build_table() -> list[Samples]:
        if mp.mode != "surrogate":
            return module_table(
                name,
                run.family,
                kinds,
                run.tagged,
                extra,
                layout_column=run.layout_column,
                device=run.dev,
            )
        table, found = surrogate_table(
            name,
            run.family,
            kinds,
            run.tagged,
            extra,
            trained=set(upstream),
            layout_column=run.layout_column,
            device=run.dev,
        )
        routes.extend(found)
        return [table]

    ds, hit = IntermediateDataset.get_or_build(work / "cache", key, build_table)
    if mp.mode == "surrogate":
        routes_file = ds.folder / "routes.json"
        if routes:
            atomic_write_json(routes_file, routes)
        elif routes_file.is_file():
            routes = json.loads(routes_file.read_text())
    log.info(
        "stage %d: table of %s %s (%d rows)%s",
        s_index,
        name,
        "cache hit" if hit else "built",
        len(ds),
        f" round {round_}" if round_ > 1 else "",
    )
    hp = _hp(run, name)
    loss, metric = hp.pop("loss", None), hp.pop("metric", None)
    if mp.mode != "surrogate":
        hp = {k: v for k, v in hp.items() if k not in SURROGATE_HPARAMS}
    space = run.search.get(name) or run.search.get(mp.kind)
    folder = _round_folder(name, round_)
    job = ModuleJob(
        name=name,
        kind=module.kind,
        config=module.config,
        imports=(type(module).__module__,),
        mode=mp.mode,
        data=str(ds.folder.resolve()),
        inputs={p: f"in.{p}" for p in module.inputs},
        target="target",
        context=context,
        hparams=hp,
        search=space,
        trials=run.trials if space else 0,
        seed=derive_seed(run.seed, name)
        if round_ == 1
        else derive_seed(run.seed, name, f"round{round_}"),
        workdir=str((work / "jobs" / folder).resolve()),
        progress=run.progress,
        data_digest=run.data_digest,
        tensorboard=run.tensorboard,
        device=run.device,
        upstream=upstream,
        table_digest=ds.key_digest,
        split_column="split",
        val_fraction=run.val_fraction,
        loss=loss,
        metric=metric,
        routes=tuple(routes),
        round=round_,
    )
    return job.to_json()


def _load_result(run: _Run, res: Mapping[str, Any], folder: str | None = None) -> None:
    """Load a finished job's weights into the vocabulary and record its result."""
    name = res["name"]
    mdir = run.work / "jobs" / (folder or _safe(name)) / "module"
    trained = load_module(mdir)
    run.kinds.module(name).load_state_dict(trained.state_dict())
    run.results[name] = {**res, "module_dir": str(mdir.relative_to(run.work))}
    if res.get("skipped"):
        log.info("job %s: finished before with the same key, reused", name)


def _later_rounds(
    run: _Run,
    s_index: int,
    out: Sequence[Mapping[str, Any]],
    trained: set[str],
    ex: Executor,
    progress: bool,
) -> float:
    """Run the SGM rounds after the first for the stage's modules that stayed on their
    plateau; returns the seconds spent building tables."""
    results = run.results
    stuck = {
        r["name"]
        for r in out
        if (r.get("sgm") or {}).get("plateau") and _hp(run, r["name"]).get("second_round", True)
    }
    learned = {r["name"] for r in out if r["name"] not in stuck} | set(trained)
    seen: dict[str, set[str]] = {n: set(trained) for n in stuck}
    overhead = 0.0
    round_ = 1
    while stuck:
        round_ += 1
        todo = sorted(
            n
            for n in stuck
            if round_ <= int(_hp(run, n).get("rounds", 2))
            and (round_ == 2 or learned - seen[n] - {n})
        )
        if not todo:
            break
        t0 = time.perf_counter()
        jobs = [_module_job(run, n, s_index, learned, round_=round_) for n in todo]
        overhead += time.perf_counter() - t0
        for n in todo:
            seen[n] = set(learned)
        for res in ex.map(
            run_job, jobs, progress=progress, desc=f"stage {s_index}, round {round_}"
        ):
            name = res["name"]
            before = results[name]
            kept = res["sgm"]["ratio"] < before["sgm"]["ratio"]
            history = [
                *before.get(
                    "rounds",
                    [
                        {
                            "round": before.get("round", 1),
                            "sgm": before.get("sgm"),
                            "train_time": before.get("train_time", 0.0),
                        }
                    ],
                ),
                {
                    "round": round_,
                    "sgm": res.get("sgm"),
                    "kept": kept,
                    "train_time": res.get("train_time", 0.0),
                },
            ]
            spent = float(before.get("train_time", 0.0)) + float(res.get("train_time", 0.0))
            if kept:
                _load_result(run, res, folder=_round_folder(name, round_))
                atomic_write_json(
                    run.work / "jobs" / _round_folder(name, round_) / KEPT,
                    {"kept": True, "fingerprint": res["fingerprint"]},
                )
            results[name]["rounds"] = history
            results[name]["train_time"] = spent
            if not res["sgm"]["plateau"]:
                stuck.discard(name)
                learned.add(name)
    return overhead


def train_plan(
    plan: TrainingPlan,
    family: Sequence[Layout],
    kinds: Kinds,
    data: Samples,
    *,
    workdir: str | Path,
    executor: str | Executor = "local",
    workers: int = 2,
    ray_address: str | None = None,
    registry: Any = None,
    register_tag: str = "v1",
    seed: int = 0,
    hparams: Mapping[str, Mapping[str, Any]] | None = None,
    search: Mapping[str, Mapping[str, Any]] | None = None,
    trials: int = 0,
    resume: bool = False,
    progress: bool = False,
    tensorboard: bool = False,
    end_to_end_time: float | None = None,
    config: Mapping[str, Any] | None = None,
    device: str | None = None,
    val_fraction: float = 0.2,
    evaluate_at_end: bool = True,
) -> PlanResult:
    """Train every module of ``plan`` and write ``workdir/summary.json``.

    The run folder gets ``run.json`` (the run key: seed, data digest, hyperparameters,
    search space, trials, plan digest, split), ``data.safetensors``, ``jobs/<module>/``
    (``job.json`` key, ``result.json``, ``module/``, ``metrics.jsonl``), ``cache/``,
    ``metrics.csv`` and ``summary.json`` (with ``"evaluation"``: the assembled family
    scored on the held-out samples). Paths recorded inside are relative to the folder,
    so a copied or moved run folder resumes and registers its own weights.

    Args:
        plan: from :func:`brickwork.plan.make_plan` over ``family``.
        family: the layouts; ``kinds``: their vocabulary (trained in place).
        data: the dataset (inputs, targets, the layout column).
        workdir: the run folder.
        executor: ``"local"``, ``"ray"`` or an :class:`Executor`.
        workers: parallel workers (local) or CPUs of a local Ray instance.
        registry: register every trained module here as a new version (and load reused
            ones from it).
        hparams: per kind or module name, hyperparameters (``epochs``, ``lr``, any
            :class:`FitConfig` field, ``loss``/``metric`` importable names, ...).
        search: per kind or module name, a search space; ``trials`` per module.
        resume: continue a killed run. Refused (:class:`TrainingError`, nothing written)
            when the run key differs; a job whose key changed (e.g. its upstream modules
            were retrained) trains again, the others are skipped.
        progress: tqdm bars per stage (and per epoch with one worker).
        tensorboard: TensorBoard logs per job (optional ``tensorboard`` package).
        end_to_end_time: seconds of an end-to-end baseline, for the cost report.
        config: extra configuration recorded in the summary.
        device: where jobs train, tables are computed and the family is evaluated
            (default CPU); an executor built with ``devices=`` overrides it per job.
        val_fraction: share of the samples held out (by sample) for validation and the
            final evaluation.
        evaluate_at_end: score the assembled family on the held-out samples.

    Raises:
        TrainingError: the folder holds another run (or, with ``resume``, a run with
            another key), a worker failed.
        DataError: the layout column does not index the family.
    """
    t_start = time.perf_counter()
    work = Path(workdir)
    layout_column = plan.data.get("layout_column", "layout")
    hparams, search = dict(hparams or {}), dict(search or {})
    run_key = check_run_folder(
        plan,
        family,
        data,
        work,
        seed=seed,
        hparams=hparams,
        search=search,
        trials=trials,
        resume=resume,
        val_fraction=val_fraction,
    )
    data_digest = run_key["data_digest"]
    split = dict(run_key["split"])
    flags = run_split(len(data), int(split["seed"]), val_fraction)
    work.mkdir(parents=True, exist_ok=True)
    data_path = work / "data.safetensors"
    if not data_path.exists():
        data.save(data_path)
    atomic_write_json(
        work / RUN_FILE,
        {
            "key": run_key,
            "key_digest": _digest(run_key),
            "data": "data.safetensors",
            "split": split,
            "layout_column": layout_column,
            "brickwork_version": __version__,
            "device": device or "cpu",
        },
    )
    tagged = Samples({**dict(data), _SPLIT: flags}, data.ids)
    train_rows = torch.nonzero(flags == 0).flatten()
    own_executor = isinstance(executor, str)
    ex = (
        make_executor(executor, workers=workers, address=ray_address)
        if isinstance(executor, str)
        else executor
    )
    dev = torch.device(device) if device else None
    if dev is not None:
        kinds.to(dev)
    results: dict[str, Any] = {}
    ctx_run = _Run(
        plan=plan,
        family=family,
        kinds=kinds,
        tagged=tagged,
        work=work,
        layout_column=layout_column,
        dev=dev,
        device=device,
        hparams=hparams,
        search=search,
        trials=trials,
        seed=seed,
        progress=progress and ex.workers == 1,
        tensorboard=tensorboard,
        val_fraction=val_fraction,
        data_digest=data_digest,
        split_digest=split["digest"],
        results=results,
    )
    stage_overhead: list[float] = []
    stage_times: list[float] = []
    registered: dict[str, str] = {}
    try:
        for name, mp in plan.modules.items():
            if mp.mode == "reuse":
                if registry is None:
                    raise TrainingError(
                        f"module {name!r} is planned for reuse of "
                        f"{mp.registry_entry!r} but no registry was given"
                    )
                kinds.module(name).load_state_dict(registry.load(mp.registry_entry).state_dict())
                save_module(kinds.module(name), _module_dir(work, name))
                results[name] = {
                    "name": name,
                    "mode": "reuse",
                    "registry_entry": mp.registry_entry,
                    "train_time": 0.0,
                    "module_dir": str(_module_dir(work, name).relative_to(work)),
                }
        for s_index, stage in enumerate(plan.stages, 1):
            t_stage = time.perf_counter()
            jobs: list[dict[str, Any]] = []
            joint: list[str] = []
            trained = {n for n, r in results.items()}
            for name in stage:
                mp = plan.modules[name]
                if mp.mode == "joint":
                    joint.append(name)
                    continue
                jobs.append(_module_job(ctx_run, name, s_index, trained))
            overhead = time.perf_counter() - t_stage
            out = ex.map(run_job, jobs, progress=progress, desc=f"stage {s_index}") if jobs else []
            for res in out:
                _load_result(ctx_run, res)
            # later rounds: a module that stayed on its SGM plateau trains again from fresh
            # weights, with the modules that learned as context (their outputs merged into
            # its own through the layout's ops, on the rows that merge them), and keeps the
            # weights that end further below their start; a round's learners are the next
            # round's context, up to ``rounds`` rounds, while some stuck module gains context
            overhead += _later_rounds(ctx_run, s_index, out, trained, ex, progress)
            if joint:
                t_joint = time.perf_counter()
                for group in dict.fromkeys(plan.modules[n].group or (n,) for n in joint):
                    _train_joint(
                        plan,
                        list(group),
                        family,
                        kinds,
                        tagged.select(train_rows),
                        hparams,
                        seed,
                        layout_column,
                    )
                for name in joint:
                    module = kinds.module(name)
                    save_module(module, _module_dir(work, name))  # weights saved on the CPU
                    results[name] = {
                        "name": name,
                        "mode": "joint",
                        "train_time": (time.perf_counter() - t_joint) / len(joint),
                        "fingerprint": module.fingerprint(),
                        "seed": seed,
                        "data_digest": data_digest,
                        "module_dir": str(_module_dir(work, name).relative_to(work)),
                    }
            if registry is not None:
                for name in stage:
                    mp = plan.modules[name]
                    lineage = {
                        "upstream": {u: kinds.module(u).fingerprint() for u in mp.upstream},
                        "intermediate_dataset": mp.reads or "",
                    }
                    registered[name] = _register(
                        registry,
                        name,
                        kinds.module(name),
                        results[name],
                        register_tag,
                        lineage,
                        results[name].get("data_digest", data_digest),
                    )
            stage_overhead.append(overhead)
            stage_times.append(time.perf_counter() - t_stage)
    finally:
        if own_executor:
            ex.close()
    per_module = {
        n: float(r.get("train_time", 0.0))
        for n, r in results.items()
        if plan.modules[n].mode != "reuse"
    }
    cost = CostReport(
        per_module,
        [list(s) for s in plan.stages],
        end_to_end=end_to_end_time,
        workers=ex.workers,
        overhead=stage_overhead,
    )
    csv_path = export_run_metrics(work, list(results))
    evaluation = None
    if evaluate_at_end:
        held = torch.nonzero(flags == 1).flatten()
        which, rows = ("val", held) if len(held) else ("all", torch.arange(len(data)))
        try:
            report = evaluate(
                family, kinds, data.select(rows), device=dev, layout_column=layout_column
            )
            evaluation = {"split": which, **report.to_json()}
        except DataError as exc:
            log.warning("the assembled family could not be evaluated: %s", exc)
            evaluation = {"split": which, "error": str(exc)}
    summary = {
        "brickwork_version": __version__,
        "seed": seed,
        "data_digest": data_digest,
        "config": {
            **dict(config or {}),
            "executor": getattr(ex, "name", str(executor)),
            "workers": ex.workers,
            "trials": trials,
            "hparams": hparams,
            "search": search,
            "register_tag": register_tag,
            "device": device or "cpu",
            "val_fraction": val_fraction,
        },
        "run": RUN_FILE,
        "data": "data.safetensors",
        "plan": plan.to_json(),
        "modules": results,
        "registered": registered,
        "wall_time": {
            "total": time.perf_counter() - t_start,
            "stages": stage_times,
            "intermediate_datasets": stage_overhead,
        },
        "metrics": {n: r.get("metrics", {}) for n, r in results.items()},
        "metrics_csv": "metrics.csv" if csv_path else None,
        "evaluation": evaluation,
        "cost": cost.to_json(),
    }
    atomic_write_json(work / "summary.json", summary)
    return PlanResult(summary)


def _train_joint(
    plan: TrainingPlan,
    names: Sequence[str],
    family: Sequence[Layout],
    kinds: Kinds,
    data: Samples,
    hparams: Mapping[str, Mapping[str, Any]],
    seed: int,
    layout_column: str,
) -> None:
    """Train a joint group end-to-end over the layouts that use it, towards their
    supervised outputs. The group holds, besides the codependent (or cyclic) modules,
    every not yet trained module between them and those outputs (``make_plan`` puts them
    in), so the gradient the group gets comes from modules that learn with it; modules
    outside the group (trained before, or with targets of their own) stay frozen."""
    use = [i for i, lay in enumerate(family) if lay.module_names() & set(names)]
    keep = torch.tensor([i for i, li in enumerate(data[layout_column].tolist()) if li in set(use)])
    if len(keep) == 0:
        raise TrainingError(f"joint group {list(names)}: no sample uses it")
    targets = sorted({t for n in names for t in plan.modules[n].targets})
    kind = plan.modules[names[0]].kind
    hp = {**DEFAULT_HPARAMS, **hparams.get(kind, {}), **hparams.get(names[0], {})}
    cfg = FitConfig(
        epochs=int(hp["epochs"]),
        batch_size=int(hp["batch_size"]),
        lr=float(hp["lr"]),
        seed=derive_seed(seed, "joint", *names),
    )
    device = next((p.device for p in kinds.parameters()), None)
    train_end_to_end(
        family,
        kinds,
        data.select(keep),
        targets=targets,
        config=cfg,
        trainable=list(names),
        layout_column=layout_column,
        device=device if device is not None and device.type != "cpu" else None,
    )
