"""The program-generator study behind ``bench/clevr_parse.py``: data, training for every
N, the seq2seq baseline, and the NMN answering from generated vs given programs.

Data (phrasing ``v2``, generated into ``OUT/data``): training questions of depth 1–5
on training scenes, every template but :data:`~brickwork.studies.clevr.data.phrasing.
HELD_OUT`; test questions on other scenes at depth 1–5, 6–10 and 11–20 with the same
templates; and depth 1–5 questions written *only* with the held-out templates.

Example:
    >>> ParseStudyConfig.quick().ns
    (90, 270)
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

import brickwork
from brickwork.modules import atomic_write_json
from brickwork.registry import Registry
from brickwork.studies.clevr.data import ClevrDataset, Question, Scene, generate_dataset
from brickwork.studies.clevr.data.phrasing import HELD_OUT, template_ids
from brickwork.studies.clevr.parse.grammar import from_prefix
from brickwork.studies.clevr.parse.model import ProgramGenerator
from brickwork.studies.clevr.parse.parser import register_generator
from brickwork.studies.clevr.parse.train import (
    ParseConfig,
    data_digest,
    evaluate_programs,
    train_program_generator,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ParseStudyConfig:
    """Data sizes, the N settings and the training budgets of the study."""

    train_scenes: int = 1000
    questions_per_scene: int = 10
    test_scenes: int = 200
    test_questions: int = 3
    ns: tuple[int | None, ...] = (90, 270, 1000, None)
    baseline_n: int = 270
    #: also train the previous architecture (the pointer decoder) at ``baseline_n``
    compare_pointer: bool = True
    parse: ParseConfig = ParseConfig()
    seed: int = 0
    answer_n: int = 270
    answer_questions: int = 2000

    @classmethod
    def quick(cls, seed: int = 0) -> ParseStudyConfig:
        return cls(
            train_scenes=300,
            test_scenes=60,
            ns=(90, 270),
            compare_pointer=False,
            parse=ParseConfig(
                sup_steps=500,
                rl_steps=60,
                recombine=1000,
                recombine_steps=100,
                self_rounds=1,
                self_steps=100,
                seed=seed,
            ),
            seed=seed,
            answer_questions=500,
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


SETS = ("train", "test", "deep", "deeper", "heldout")


def make_data(
    root: Path, cfg: ParseStudyConfig
) -> dict[str, tuple[list[Question], dict[int, Scene]]]:
    """Generate (if absent) and load the study's question sets."""
    seen = [t for t in template_ids() if t not in HELD_OUT]
    spec: dict[str, dict[str, Any]] = {
        "train": dict(n=cfg.train_scenes, q=cfg.questions_per_scene, lo=1, hi=5, t=seen),
        "test": dict(n=cfg.test_scenes, q=cfg.test_questions, lo=1, hi=5, t=seen),
        "deep": dict(n=cfg.test_scenes, q=cfg.test_questions, lo=6, hi=10, t=seen),
        "deeper": dict(n=cfg.test_scenes, q=cfg.test_questions, lo=11, hi=20, t=seen),
        "heldout": dict(n=cfg.test_scenes, q=cfg.test_questions, lo=1, hi=5, t=sorted(HELD_OUT)),
    }
    out = {}
    for k, (name, s) in enumerate(spec.items()):
        if not (root / "questions" / f"CLEVR_{name}_questions.json").exists():
            generate_dataset(
                root,
                s["n"],
                s["q"],
                s["hi"],
                seed=cfg.seed * 100 + k,
                min_depth=s["lo"],
                split=name,
                render=False,
                processes=1,
                phrasing="v2",
                templates=s["t"],
            )
        ds = ClevrDataset(root, name)
        out[name] = (ds.questions, {sc.image_index: sc for sc in ds.scenes})
    return out


def _exact(
    gen: ProgramGenerator, data: dict[str, tuple[list[Question], dict[int, Scene]]]
) -> dict[str, Any]:
    by: dict[str, Any] = {}
    for name, bucket in (("test", "1-5"), ("deep", "6-10"), ("deeper", "11-20")):
        r = evaluate_programs(gen, *data[name])
        by[bucket] = r.get(bucket, 0.0)
        by[f"{bucket}_executor_answer"] = r.get("executor_answer_accuracy")
    held = evaluate_programs(gen, *data["heldout"])
    return {"by_depth": by, "heldout": held.get("all", 0.0)}


def answer_from_text(
    gen: ProgramGenerator, run: str | Path, cache: str | Path | None, limit: int, max_depth: int = 5
) -> dict[str, Any]:
    """The run's typed NMN on its test split (depth ≤ ``max_depth``): accuracy from the
    generator's programs vs from the given programs."""
    from brickwork.studies.clevr.parse.answering import StudyRun, answer_programs, questions_rows

    sr = StudyRun.open(run, cache)
    nmn = sr.load_nmn("typed")
    tok = sr.tokenizer()
    ds = sr.dataset("test")
    qs = [q for q in ds.questions if q.depth <= max_depth][:limit]
    rows = questions_rows(qs, ds.scenes, "test")
    feats = sr.features("test")
    with torch.no_grad():
        dec = gen.decode(gen.encode_texts([q.question for q in qs]))
    generated = [from_prefix(t) for t in dec.tokens]
    texts = [q.question for q in qs]
    a_gen = answer_programs(nmn, tok, feats, rows, texts, generated)
    a_giv = answer_programs(nmn, tok, feats, rows, texts, [q.program for q in qs])
    n = len(qs)
    return {
        "generated": sum(a == q.answer for a, q in zip(a_gen.answers, qs)) / n,
        "given": sum(a == q.answer for a, q in zip(a_giv.answers, qs)) / n,
        "program_exact": sum(g == q.program for g, q in zip(generated, qs)) / n,
        "n": n,
        "run": str(run),
    }


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _train_job(job: dict[str, Any]) -> dict[str, Any]:
    """One setting (an N, or the baseline) in a worker: train, evaluate, save the weights
    (safetensors) and config next to the results; returns the report."""
    from safetensors.torch import save as st_save

    from brickwork.modules import atomic_write_bytes

    torch.set_num_threads(1)
    cfg = ParseStudyConfig(**{**job["cfg"], "parse": ParseConfig(**job["cfg"]["parse"])})
    data = make_data(Path(job["data"]), cfg)
    train, scenes = data["train"]
    pc = ParseConfig(**job["parse"])
    # each stage is scored on 200 test questions of depth 1-5 (programs and answers)
    # and, programs only, 100 of depth 6-10 and 100 of 11-20
    val = (data["test"][0][:200], data["test"][1])
    deep = [*data["deep"][0][:100], *data["deeper"][0][:100]]
    gen, rep = train_program_generator(train, scenes, pc, val=val, val_deep=deep)
    ev = _exact(gen, data)
    path = Path(job["weights"])
    atomic_write_bytes(path, st_save({k: v.contiguous() for k, v in gen.state_dict().items()}))
    atomic_write_json(path.with_suffix(".json"), {"config": gen.config, "report": rep, "eval": ev})
    return {"key": job["key"], "report": rep, "eval": ev, "weights": str(path)}


def _load_weights(path: str | Path) -> ProgramGenerator:
    import json

    from safetensors.torch import load_file

    meta = json.loads(Path(path).with_suffix(".json").read_text(encoding="utf-8"))
    gen = ProgramGenerator(**meta["config"])
    gen.load_state_dict(load_file(str(path)))
    gen.eval()
    return gen


def run_parse_study(
    out: str | Path,
    cfg: ParseStudyConfig,
    *,
    run: str | Path | None = None,
    cache: str | Path | None = None,
    workers: int = 2,
) -> dict[str, Any]:
    """Train and evaluate every setting (``workers`` at a time, through the library's
    executor); writes ``OUT/results.json``, the weights under ``OUT/generators/`` and
    registers the generators in ``OUT/registry``; returns the results."""
    from brickwork.training import make_executor

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    load_start = _load()
    data = make_data(out / "data", cfg)
    train, _scenes = data["train"]
    registry = Registry(out / "registry")
    res: dict[str, Any] = {
        "brickwork": brickwork.__version__,
        "config": cfg.to_json(),
        "data_digest": data_digest(train),
        "n_questions": {k: len(v[0]) for k, v in data.items()},
        "program_exact": {},
        "program_exact_heldout_templates": {},
        "stages": {},
        "train_seconds": {},
    }
    jobs: list[dict[str, Any]] = []
    extra = ("baseline", "pointer") if cfg.compare_pointer else ("baseline",)
    for n in (*cfg.ns, *extra):
        if n == "baseline":
            key = "baseline"
            pc = replace(
                cfg.parse,
                n_programs=cfg.baseline_n,
                arch="seq2seq",
                rl_steps=0,
                prev_dropout=0.0,
                self_train=False,
            )
        elif n == "pointer":  # the previous architecture, as it was trained
            key = "pointer"
            pc = replace(
                cfg.parse,
                n_programs=cfg.baseline_n,
                arch="pointer",
                context="both",
                prev_dropout=0.0,
                sup_steps=2400,
                rl_steps=600,
                self_train=False,
            )
        else:
            key = "all" if n is None else str(n)
            pc = replace(cfg.parse, n_programs=n)
            if n is None or int(n) >= len(train):
                pc = replace(pc, rl_steps=0)
        jobs.append(
            {
                "key": key,
                "cfg": cfg.to_json(),
                "parse": replace(pc, seed=cfg.seed).to_json(),
                "data": str(out / "data"),
                "weights": str(out / "generators" / f"{key}.safetensors"),
            }
        )
    (out / "generators").mkdir(exist_ok=True)
    # the acceptance settings first (N = 270 and its baseline), then the others
    first = {str(cfg.answer_n): 0, "baseline": 1}
    jobs.sort(key=lambda j: first.get(j["key"], 2))
    done: dict[str, Any] = {}

    def keep(_i: int, result: dict[str, Any]) -> None:  # partial results as they come
        done[result["key"]] = {"report": result["report"], "eval": result["eval"]}
        atomic_write_json(out / "partial.json", done, indent=1)

    if workers > 1 and len(jobs) > 1:
        with make_executor("local", workers=min(workers, len(jobs))) as ex:
            results = ex.map(_train_job, jobs, desc="clevr parse", on_result=keep)
    else:
        results = []
        for i, j in enumerate(jobs):
            results.append(_train_job(j))
            keep(i, results[-1])
    by_key = {r["key"]: r for r in results}
    gens: dict[str, ProgramGenerator] = {}
    for n in cfg.ns:
        key = "all" if n is None else str(n)
        r = by_key[key]
        rep, ev = r["report"], r["eval"]
        res["program_exact"][key] = {k: v for k, v in ev["by_depth"].items() if "_" not in k}
        res["program_exact_heldout_templates"][key] = ev["heldout"]
        res["stages"][key] = {
            "labelled": rep["labelled"],
            "answers_only": rep["answers_only"],
            "labelled_words": rep["labelled_words"],
            "words": rep["words"],
            "supervised": rep["supervised"],
            "recombined": rep.get("recombined"),
            "answers": rep.get("answers"),
            "self": rep.get("self"),
            "final": ev,
        }
        res["train_seconds"][key] = rep["seconds"]
        gens[key] = _load_weights(r["weights"])
        register_generator(
            registry, gens[key], f"{cfg.parse.arch}-n{key}-s{cfg.seed}", rep, ev["by_depth"]
        )
    b = by_key["baseline"]
    res["baseline"] = {
        "arch": "seq2seq (BiGRU encoder, GRU decoder with attention), same constraint",
        "n": cfg.baseline_n,
        "program_exact": {k: v for k, v in b["eval"]["by_depth"].items() if "_" not in k},
        "program_exact_heldout_templates": b["eval"]["heldout"],
        "train_seconds": b["report"]["seconds"],
        "supervised": b["report"]["supervised"],
    }
    register_generator(
        registry,
        _load_weights(b["weights"]),
        f"seq2seq-n{cfg.baseline_n}-s{cfg.seed}",
        b["report"],
        b["eval"]["by_depth"],
    )
    if "pointer" in by_key:
        p = by_key["pointer"]
        res["pointer"] = {
            "arch": "pointer (local encoder, Markov location-aware decoder; the previous "
            "generator), same data, labelled questions and constraint",
            "n": cfg.baseline_n,
            "program_exact": {k: v for k, v in p["eval"]["by_depth"].items() if "_" not in k},
            "program_exact_heldout_templates": p["eval"]["heldout"],
            "train_seconds": p["report"]["seconds"],
        }
    akey = str(cfg.answer_n) if str(cfg.answer_n) in gens else next(iter(gens))
    if run is not None:
        res["answer_accuracy_from_text"] = answer_from_text(
            gens[akey], run, cache, cfg.answer_questions
        )
        res["answer_accuracy_from_text"]["generator_n"] = akey
    else:
        res["answer_accuracy_from_text"] = {
            "generated": None,
            "given": None,
            "reason": "no --run: pass a finished NMN study run (brickwork clevr study --out RUN)",
        }
    res["registry"] = {"path": str(out / "registry"), "names": registry.names()}
    res["machine"] = {
        "cpus": os.cpu_count(),
        "workers": workers,
        "load_average_start": load_start,
        "load_average_end": _load(),
    }
    res["wall_seconds"] = time.perf_counter() - t0
    atomic_write_json(out / "results.json", res, indent=1)
    try:
        plot_results(res, out / "clevr-parse-accuracy.png")
    except Exception as exc:  # noqa: BLE001 - a figure must not lose the results
        log.warning("figure not written: %s", exc)
    return res


def plot_results(res: dict[str, Any], path: str | Path) -> None:
    """Program accuracy by depth bucket, one line per N (and the baselines); and by N,
    one line per depth bucket and the held-out templates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    buckets = ["1-5", "6-10", "11-20"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9, 3.4))
    ns = sorted(res["program_exact"], key=lambda k: float("inf") if k == "all" else int(k))
    for key in ns:
        by = res["program_exact"][key]
        ax.plot(buckets, [by.get(b, 0) for b in buckets], marker="o", label=f"N = {key}")
    base = res["baseline"]
    ax.plot(
        buckets,
        [base["program_exact"].get(b, 0) for b in buckets],
        "k--",
        marker="x",
        label=f"seq2seq, N = {base['n']}",
    )
    if "pointer" in res:
        ax.plot(
            buckets,
            [res["pointer"]["program_exact"].get(b, 0) for b in buckets],
            "k:",
            marker="+",
            label=f"pointer (previous), N = {res['pointer']['n']}",
        )
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("program depth (training: 1-5)")
    ax.set_ylabel("exact program")
    ax.legend(fontsize=7, loc="lower left")
    for b, mark in zip(buckets, "o^v"):
        bx.plot(
            ns, [res["program_exact"][k].get(b, 0) for k in ns], marker=mark, label=f"depth {b}"
        )
    bx.plot(
        ns,
        [res["program_exact_heldout_templates"][k] for k in ns],
        marker="s",
        label="held-out templates",
    )
    bx.set_ylim(0, 1.02)
    bx.set_xlabel("labelled programs N")
    bx.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(str(path), dpi=110)
    plt.close(fig)


def results_table(res: dict[str, Any]) -> str:
    """A markdown table of the results (docs)."""
    rows = [
        "| N | depth 1-5 | 6-10 | 11-20 | held-out templates | train s |",
        "|---|---|---|---|---|---|",
    ]
    keys = sorted(res["program_exact"], key=lambda k: (k == "all", int(k) if k != "all" else 0))
    for k in keys:
        by = res["program_exact"][k]
        rows.append(
            f"| {k} | {by['1-5']:.3f} | {by['6-10']:.3f} | {by['11-20']:.3f} | "
            f"{res['program_exact_heldout_templates'][k]:.3f} | {res['train_seconds'][k]:.0f} |"
        )
    for name in ("pointer", "baseline"):
        if name not in res:
            continue
        b = res[name]
        label = "seq2seq" if name == "baseline" else "pointer (previous)"
        rows.append(
            f"| {label} {b['n']} | {b['program_exact']['1-5']:.3f} | "
            f"{b['program_exact']['6-10']:.3f} | "
            f"{b['program_exact']['11-20']:.3f} | {b['program_exact_heldout_templates']:.3f} | "
            f"{b['train_seconds']:.0f} |"
        )
    return "\n".join(rows)


__all__ = [
    "ParseStudyConfig",
    "answer_from_text",
    "make_data",
    "plot_results",
    "results_table",
    "run_parse_study",
]
