"""The composition benchmark: HOUDINI's task sequences on 8×8 digits.

Sequences (digits ``d1``, ``d2`` change with the seed):

* ``cs1``: recognise d1, recognise d2, count d1, count d2;
* ``cs2``: recognise d1, count d1, count d2, recognise d2;
* ``summing``: classify digits, sum a list;
* ``mixed``: recognise d1, classify, count d1, sum, count d2, recognise d2.

Each task is solved by :func:`brickwork.compose.solve` over a registry that grows
task after task. Count and sum tasks are solved at every data fraction (only the 100 %
run registers), beside three baselines trained in the same run on the same data: the
winner's program with every module new (standalone, same architecture), a generic
CNN+LSTM over the list, and low-level transfer (the standalone program with its CNN
initialised from the previous task's image module). Lists have lengths 2–5 in training
and are tested at 2–5, 6–8, 20, 40 and 80.

Example:
    >>> sorted(SEQUENCES)
    ['cs1', 'cs2', 'mixed', 'summing']
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from brickwork._version import __version__
from brickwork.compose import ListOf, SolveConfig, Task, solve, standalone_term
from brickwork.compose.jobs import ensemble_options, run_candidate
from brickwork.compose.program import hole_term, term_str
from brickwork.errors import DataError
from brickwork.modules import atomic_write_json
from brickwork.studies.compose.data import (
    classify_samples,
    digit_pools,
    list_samples,
    recognise_samples,
)
from brickwork.types import Bool, Count, Features, Probs

log = logging.getLogger(__name__)

IMAGE = Features("b 1 8 8")
SEQUENCES: dict[str, list[tuple[str, str]]] = {
    "cs1": [("recognise", "d1"), ("recognise", "d2"), ("count", "d1"), ("count", "d2")],
    "cs2": [("recognise", "d1"), ("count", "d1"), ("count", "d2"), ("recognise", "d2")],
    "summing": [("classify", ""), ("sum", "")],
    "mixed": [
        ("recognise", "d1"),
        ("classify", ""),
        ("count", "d1"),
        ("sum", ""),
        ("count", "d2"),
        ("recognise", "d2"),
    ],
}
DIGITS = [(3, 7), (1, 4), (5, 8)]
TEST_LENGTHS = {"2-5": (2, 5), "6-8": (6, 8), "20": (20, 20), "40": (40, 40), "80": (80, 80)}


@dataclass
class StudyConfig:
    """Sizes of the benchmark (``quick()`` for the smoke run)."""

    sequences: tuple[str, ...] = ("cs1", "cs2", "summing", "mixed")
    seeds: tuple[int, ...] = (0, 1, 2)
    fractions: tuple[float, ...] = (0.02, 0.1, 1.0)
    n_train_lists: int = 600
    n_val_lists: int = 150
    n_test_lists: int = 300
    n_long_lists: int = 60
    workers: int = 2
    device: str = "cpu"
    search: dict[str, Any] = field(
        default_factory=lambda: {
            "rank_limit": 24,
            "rank_steps": 30,
            "top_k": 7,
            "structured_k": 4,
            "reuse_k": 1,
        }
    )
    fit: dict[str, Any] = field(
        default_factory=lambda: {
            "epochs": 20,
            "batch_size": 32,
            "lr": 3e-3,
            "keep_best": "val_loss",
            "max_train_time": 20.0,
            "train_clock": "process",
            "min_steps": 200,
            "pos_weight": "balanced",
            "ensemble": 3,
            "ensemble_scope": "winner",
        }
    )

    @classmethod
    def quick(cls) -> StudyConfig:
        return cls(
            sequences=("cs1", "summing"),
            seeds=(0,),
            n_train_lists=300,
            n_val_lists=150,
            n_test_lists=150,
            n_long_lists=40,
            search={
                "rank_limit": 10,
                "rank_steps": 20,
                "top_k": 4,
                "structured_k": 3,
                "reuse_k": 0,
            },
            fit={
                "epochs": 12,
                "batch_size": 32,
                "lr": 3e-3,
                "keep_best": "val_loss",
                "max_train_time": 8.0,
                "train_clock": "process",
                "min_steps": 150,
                "pos_weight": "balanced",
                "ensemble": 3,
                "ensemble_scope": "winner",
            },
        )


def _task(kind: str, digit: int | None, name: str) -> Task:
    if kind == "recognise":
        return Task(name, IMAGE, Bool("b 1"))
    if kind == "classify":
        return Task(name, IMAGE, Probs("b 10"))
    return Task(name, ListOf(IMAGE), Count("b 1"))


def _write_data(
    folder: Path,
    kind: str,
    digit: int | None,
    pools: dict[str, Any],
    cfg: StudyConfig,
    seed: int,
    fraction: float,
) -> tuple[str, str, dict[str, str]]:
    folder.mkdir(parents=True, exist_ok=True)
    if kind in ("recognise", "classify"):
        target = -1 if digit is None else digit  # a recognise task names its digit
        make = (
            (lambda pool, s, f: recognise_samples(pool, target, seed=s, fraction=f, negatives=None))
            if kind == "recognise"
            else (lambda pool, s, f: classify_samples(pool, seed=s, fraction=f))
        )
        paths = {}
        for split, f in (("train", fraction), ("val", 1.0), ("test", 1.0)):
            paths[split] = str(
                make(pools[split], seed * 7 + len(split), f).save(folder / f"{split}.st")
            )
        return paths["train"], paths["val"], {"test": paths["test"]}
    n_train = max(8, int(round(cfg.n_train_lists * fraction)))
    train = list_samples(kind, pools["train"], digit, n=n_train, lengths=(2, 5), seed=seed * 11 + 1)
    val = list_samples(
        kind, pools["val"], digit, n=cfg.n_val_lists, lengths=(2, 5), seed=seed * 11 + 2
    )
    tests = {}
    for name, lengths in TEST_LENGTHS.items():
        n = cfg.n_test_lists if lengths[1] <= 8 else cfg.n_long_lists
        s = list_samples(
            kind, pools["test"], digit, n=n, lengths=lengths, seed=seed * 11 + 3 + len(name)
        )
        tests[name] = str(s.save(folder / f"test-{name}.st"))
    return str(train.save(folder / "train.st")), str(val.save(folder / "val.st")), tests


def _leaves(term: Any) -> list[Any]:
    if term[0] in ("compose", "map", "fold", "conv"):
        return [x for t in term[1:] for x in _leaves(t)]
    return [term]


def program_correct(term: Any, kind: str, right_refs: list[str]) -> bool:
    """Whether a count/sum winner is ``fold(step) ∘ map(f)`` (structure, not names) where
    ``f`` reads each image through the registry's recogniser or classifier for the task
    (one of ``right_refs``) when the registry holds one, else through a new image module;
    ``step`` is the library's ``add`` or a learned step."""
    try:
        op, first, second = term
        if op != "compose" or first[0] != "map" or second[0] != "fold":
            return False
    except (ValueError, TypeError, IndexError):
        return False
    leaves = _leaves(first[1])
    if right_refs:
        return any(x[0] == "reg" and x[1] in right_refs for x in leaves)
    return any(x[0] == "hole" and '"b 1 8 8"' in x[1] for x in leaves)


def run_sequence(
    name: str,
    seed: int,
    cfg: StudyConfig,
    workdir: Path,
    executor: Any,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run one task sequence with one seed; returns its records (see :func:`summarise`)."""
    from brickwork.registry import Registry

    say = progress or (lambda text: log.info("%s", text))
    start = time.perf_counter()
    d1, d2 = DIGITS[seed % len(DIGITS)]
    pools = digit_pools(seed)
    folder = workdir / f"{name}-s{seed}"
    if (folder / "registry").exists() and Registry(folder / "registry").cards():
        raise DataError(
            f"compose study: {folder / 'registry'} already holds modules from an earlier run "
            "(found), but every sequence starts from an empty registry (expected); fix: "
            "choose a new or empty output folder"
        )
    registry = Registry(folder / "registry")
    roles: dict[str, list[str]] = {}  # "digit3" / "classify" -> registry refs trained for it
    last_image_ref: str | None = None
    learned: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    search = SolveConfig(**{**cfg.search, "fit": cfg.fit, "seed": seed})
    for i, (kind, which) in enumerate(SEQUENCES[name]):
        digit = {"d1": d1, "d2": d2}.get(which)
        tname = f"{kind}_{digit}" if digit is not None else kind
        role = f"digit{digit}" if digit is not None else "classify"
        fractions = cfg.fractions if kind in ("count", "sum") else (1.0,)
        for fraction in sorted(fractions):
            tag = f"{i}-{tname}-f{fraction:g}"
            train, val, tests = _write_data(
                folder / "data" / tag, kind, digit, pools, cfg, seed, fraction
            )
            task = _task(kind, digit, tname)
            task.train, task.val, task.tests = train, val, tests
            right = list(roles.get(role, [])) + (
                list(roles.get("classify", [])) if kind == "count" else []
            )
            final = fraction == 1.0
            sol = solve(
                task,
                registry,
                workdir=folder / "runs" / tag,
                executor=executor,
                config=search,
                register=final,
                progress=say,
                device=cfg.device,
            )
            rec: dict[str, Any] = {
                "sequence": name,
                "seed": seed,
                "task": tname,
                "kind": kind,
                "fraction": fraction,
                "winner": sol.winner.text,
                "counts": sol.counts,
                "spearman": sol.ranking_spearman,
                "trained": sum(1 for c in sol.candidates if c.stage == "trained"),
                "seconds": sol.seconds,
                "composition": (sol.winner.result or {}).get("tests", {}),
                "members": int((sol.winner.result or {}).get("members", 1)),
            }
            first_fit = (sol.winner.result or {}).get("first_fit")
            if first_fit is not None:  # the winner ensembled after selection
                rec["composition_first_fit"] = first_fit.get("tests", {})
            if kind in ("count", "sum"):
                rec["correct"] = program_correct(sol.winner.term, kind, right)
                rec.update(
                    _baselines(sol, task, registry, last_image_ref, executor, search, cfg.device)
                )
            records.append(rec)
            say(f"{name} seed {seed} {tname} {fraction:.0%}: {sol.winner.text}")
            if final:
                roles.setdefault(role, []).extend(sol.registered)
                if sol.winner.holes == 0 and kind in ("recognise", "classify"):
                    pass
                for ref in sol.registered:
                    if kind in ("recognise", "classify") or "b 1 8 8" in json.dumps(
                        registry.card(ref).signature
                    ):
                        if "x" in registry.card(ref).signature.get("inputs", {}):
                            last_image_ref = ref
                learned.append(
                    {
                        "task": tname,
                        "program": sol.program,
                        "tests": task.tests,
                        "score": _test_score(sol.winner.result, kind),
                    }
                )
    # forgetting: every earlier task's program, rebuilt from the registry, on its test set
    jobs = [
        {
            "term": item["program"],
            "registry": str(registry.root),
            "train": _first(item["tests"]),
            "val": _first(item["tests"]),
            "tests": item["tests"],
            "seed": seed,
            "device": cfg.device,
        }
        for item in learned
    ]
    after = (
        executor.map(run_candidate, jobs)
        if executor is not None
        else [run_candidate(j) for j in jobs]
    )
    drops = []
    for item, res in zip(learned, after):
        kind = "count" if "2-5" in item["tests"] else "single"
        drops.append(
            {
                "task": item["task"],
                "before": item["score"],
                "after": _test_score(res, kind),
                "drop": item["score"] - _test_score(res, kind),
            }
        )
    return {
        "records": records,
        "forgetting": drops,
        "seconds": time.perf_counter() - start,
        "digits": [d1, d2],
    }


def _first(tests: dict[str, str]) -> str:
    return tests.get("2-5") or tests["test"]


def _test_score(result: dict[str, Any] | None, kind: str) -> float:
    tests = (result or {}).get("tests", {})
    t = tests.get("2-5") or tests.get("test") or {}
    return float(t.get("score", float("nan")))


def baseline_jobs(
    sol: Any,
    task: Task,
    registry: Any,
    last_image_ref: str | None,
    search: SolveConfig,
    device: str,
) -> dict[str, dict[str, Any]]:
    """The :func:`brickwork.compose.run_candidate` jobs of a count/sum solve's baselines,
    by name: ``standalone`` (the winner's program with every module new), ``lstm`` (one
    list → output hole) and, when an image module was registered before, ``transfer``
    (the standalone program, its CNN initialised from that module).

    With ``fit.ensemble`` K > 1 the standalone is the ensemble of K fits whatever the
    scope, as the winner is: the same architecture, trained the same way, so an
    ensembled winner is never compared with a single-fit standalone. With
    ``ensemble_scope="winner"`` the LSTM and transfer baselines stay single fits (with
    ``"all"``, every baseline fits K times, as every candidate does).
    """
    members, scope = ensemble_options(search.fit)
    single = {**search.fit, "ensemble": 1} if scope == "winner" else search.fit
    base = {
        "registry": str(registry.root),
        "train": task.train,
        "val": task.val,
        "tests": task.tests,
        "fit": single,
        "seed": search.seed,
        "device": device,
        "select_split": search.select_split,  # keep-best on the same validation part
    }
    standalone = standalone_term(sol.winner.term, registry)
    lstm = hole_term({"x": task.input}, task.output)
    jobs = {
        "standalone": {**base, "term": standalone, "fit": {**search.fit, "ensemble": members}},
        "lstm": {**base, "term": lstm},
    }
    if last_image_ref is not None:
        jobs["transfer"] = {**base, "term": standalone, "init": {"0": last_image_ref}}
    return jobs


def _baselines(
    sol: Any,
    task: Task,
    registry: Any,
    last_image_ref: str | None,
    executor: Any,
    search: SolveConfig,
    device: str,
) -> dict[str, Any]:
    jobs = baseline_jobs(sol, task, registry, last_image_ref, search, device)
    names = list(jobs)
    todo = [jobs[n] for n in names]
    results = (
        executor.map(run_candidate, todo)
        if executor is not None
        else [run_candidate(j) for j in todo]
    )
    out: dict[str, Any] = {n: r["tests"] for n, r in zip(names, results)}
    out["standalone_program"] = term_str(jobs["standalone"]["term"])
    out["baseline_members"] = {n: int(r.get("members", 1)) for n, r in zip(names, results)}
    return out


def _median(values: list[float | None]) -> float | None:
    xs = [x for x in values if x is not None and x == x]
    return round(statistics.median(xs), 4) if xs else None


def _mean(values: list[float | None]) -> float | None:
    xs = [x for x in values if x is not None and x == x]
    return round(sum(xs) / len(xs), 4) if xs else None


def summarise(runs: list[dict[str, Any]], cfg: StudyConfig) -> dict[str, Any]:
    """The benchmark's JSON (the keys of the issue's acceptance, plus detail)."""
    recs = [r for run in runs for r in run["records"]]
    lists = [r for r in recs if r["kind"] in ("count", "sum")]

    def rmse(r: dict[str, Any], who: str) -> float | None:
        t = (r.get(who) or {}).get("2-5")
        return t.get("rmse") if t else None

    ratio: dict[float, Any] = {}
    table: dict[str, Any] = {}
    detail: dict[str, Any] = {
        "note": "extra figures, not acceptance keys: mean of per-task ratios by task kind; "
        "ratio of the mean RMSEs; mean of per-task ratios against the CNN+LSTM baseline",
        "by_kind": {},
        "ratio_of_mean_rmse": {},
        "vs_cnn_lstm": {},
    }
    for f in cfg.fractions:
        at = [r for r in lists if r["fraction"] == f]
        pairs = [(rmse(r, "composition"), rmse(r, "standalone")) for r in at]
        ratio[f] = _mean([c / s for c, s in pairs if c is not None and s])
        key = f"{f:g}"
        detail["by_kind"][key] = {
            kind: _mean(
                [
                    c / s
                    for r in at
                    if r["kind"] == kind
                    for c, s in [(rmse(r, "composition"), rmse(r, "standalone"))]
                    if c is not None and s
                ]
            )
            for kind in ("count", "sum")
        }
        comp_mean = _mean([c for c, _ in pairs])
        stand_mean = _mean([s for _, s in pairs])
        detail["ratio_of_mean_rmse"][key] = (
            round(comp_mean / stand_mean, 4) if comp_mean is not None and stand_mean else None
        )
        lstm_pairs = [(rmse(r, "composition"), rmse(r, "lstm")) for r in at]
        detail["vs_cnn_lstm"][key] = _mean([c / s for c, s in lstm_pairs if c is not None and s])
        table[f"{f:g}"] = {
            who: _mean([rmse(r, who) for r in at])
            for who in ("composition", "standalone", "transfer", "lstm")
        }

    def by_length(who: str) -> dict[str, Any]:
        full = [r for r in lists if r["fraction"] == 1.0]
        return {
            name: _median(
                [((r.get(who) or {}).get(name) or {}).get("mae_per_element") for r in full]
            )
            for name in TEST_LENGTHS
        }

    comp, lstm = by_length("composition"), by_length("lstm")

    def ratio80(d: dict[str, Any]) -> float | None:
        return round(d["80"] / d["6-8"], 4) if d.get("80") is not None and d.get("6-8") else None

    full = [r for r in lists if r["fraction"] == 1.0]
    drops = [d["drop"] for run in runs for d in run["forgetting"]]
    return {
        "programs_correct": _mean([1.0 if r["correct"] else 0.0 for r in lists]),
        "rmse_ratio_2pct": ratio.get(0.02),
        "rmse_ratio_10pct": ratio.get(0.1),
        "rmse_ratio_detail": detail,
        "extrapolation": {
            "per_element_error_ratio_80": ratio80(comp),
            "by_length": comp,
            "per_image_error_floor": _median(
                [
                    1.0 - ((r.get("composition") or {}).get("test") or {}).get("acc", float("nan"))
                    for r in recs
                    if r["kind"] in ("recognise", "classify")
                ]
            ),
            "standalone": {"per_element_error_ratio_80": ratio80(lstm), "by_length": lstm},
        },
        "search": {
            "typed": _median([r["counts"]["typed"] for r in full]),
            "shape_only": _median([r["counts"]["shape_only"] for r in full]),
            "untyped": _median([r["counts"]["untyped"] for r in full]),
            "trained_per_task": max([r["trained"] for r in recs] or [0]),
            "ranking_spearman": _median([r["spearman"] for r in recs]),
            "ranking_spearman_mean": _mean([r["spearman"] for r in recs]),
            "size_bound": int(cfg.search.get("size_bound", SolveConfig().size_bound)),
            "typed_fewer_than_shape_only": _median(
                [
                    r["counts"]["shape_only"] / r["counts"]["typed"]
                    for r in full
                    if r["counts"]["typed"]
                ]
            ),
        },
        "forgetting": {"max_drop": round(max(drops), 6) if drops else None},
        "seconds_per_sequence": _median([run["seconds"] for run in runs]),
        "rmse_by_fraction": table,
        "rmse_by_length": {
            name: {
                who: _mean([((r.get(who) or {}).get(name) or {}).get("rmse") for r in full])
                for who in ("composition", "standalone", "transfer", "lstm")
            }
            for name in TEST_LENGTHS
        },
        "per_element_error_by_length": {
            who: by_length(who) for who in ("composition", "standalone", "transfer", "lstm")
        },
        "winners": sorted({f"{r['task'].split('_')[0]}: {r['winner']}" for r in lists}),
    }


def counts_by_bound(
    registry_path: str | Path, bounds: tuple[int, ...] = (5, 6, 7, 8, 9, 10), max_holes: int = 2
) -> dict[str, dict[str, int]]:
    """Programs for ``count : List[image] -> Count`` over a registry's functions at several
    size bounds, typed vs shape-only vs untyped (the gap grows with the bound)."""
    from brickwork.compose import count_space, functions, registry_functions, standard_library
    from brickwork.registry import Registry

    task = Task("count", ListOf(IMAGE), Count("b 1"))
    fns = functions(standard_library()) + registry_functions(Registry(registry_path), task)
    return {str(b): count_space(task, fns, b, max_holes) for b in bounds}


def run_study(
    cfg: StudyConfig,
    workdir: str | Path,
    *,
    executor: Any = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run every sequence × seed, write ``results.json`` (config, version, records,
    summary) and the RMSE-vs-fraction figure; returns the summary."""
    from brickwork.training import LocalExecutor

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    own = executor is None
    ex = executor or LocalExecutor(workers=cfg.workers)
    runs: list[dict[str, Any]] = []
    try:
        for seed in cfg.seeds:
            for name in cfg.sequences:
                runs.append(run_sequence(name, seed, cfg, workdir, ex, progress))
                # what is done so far, so that a run stopped early still reports it
                atomic_write_json(
                    workdir / "partial.json",
                    {
                        "config": asdict(cfg),
                        "version": __version__,
                        "done": [
                            f"{r['records'][0]['sequence']}-s{r['records'][0]['seed']}"
                            for r in runs
                        ],
                        "summary": summarise(runs, cfg),
                        "runs": runs,
                    },
                )
    finally:
        if own:
            ex.close()
    summary = summarise(runs, cfg)
    first = workdir / f"{cfg.sequences[0]}-s{cfg.seeds[0]}" / "registry"
    summary["search"]["by_bound"] = counts_by_bound(first)
    atomic_write_json(
        workdir / "results.json",
        {"config": asdict(cfg), "version": __version__, "summary": summary, "runs": runs},
    )
    return summary


def markdown_tables(summary: dict[str, Any]) -> str:
    """The benchmark's tables (RMSE by data fraction; RMSE and per-element error by list
    length at 100 %) as Markdown."""
    who = ("composition", "standalone", "transfer", "lstm")
    head = "| | " + " | ".join(who) + " |\n|---|" + "---|" * len(who) + "\n"

    def cell(v: Any) -> str:
        return "—" if v is None else f"{v:.3f}"

    out = [
        "Test RMSE on count/sum tasks (lists of 2–5), mean over tasks and seeds, by data "
        "fraction:\n\n",
        head,
    ]
    for f, row in sorted(summary["rmse_by_fraction"].items(), key=lambda kv: float(kv[0])):
        out.append(
            f"| {100 * float(f):g} % | " + " | ".join(cell(row.get(w)) for w in who) + " |\n"
        )
    out.append(
        "\nAt 100 % data, by list length (trained on 2–5): test RMSE / absolute error per "
        "list element (median):\n\n"
    )
    out.append(head)
    per = summary["per_element_error_by_length"]
    for name in TEST_LENGTHS:  # in length order (a JSON round trip may sort the keys)
        row = summary["rmse_by_length"].get(name, {})
        out.append(
            f"| {name} | "
            + " | ".join(f"{cell(row.get(w))} / {cell(per.get(w, {}).get(name))}" for w in who)
            + " |\n"
        )
    return "".join(out)
