"""Benchmark: PCFG SET with independently trained modules vs a Transformer seq2seq.

Generates productivity and systematicity splits in the official format (train inputs
≤ 8 functions / test ≥ 9; held-out function pairs never nested directly in training),
trains the ten function modules in parallel (each alone, single-function examples,
strings ≤ 10 symbols), composes them by layout over the test files, probes length
(each module alone on strings of 1–500 symbols; single functions and depth-3
compositions on strings of 100 = 10× and 500 = 50× symbols), and trains a Transformer
baseline on the productivity training file (composed examples, ≤ 8 functions) for a
wall budget, scoring it on the same test files.

Prints progress on stderr and one JSON object on the last line: ``productivity``,
``systematicity``, ``length_extrapolation`` (exact-match fractions), ``train_seconds``,
``per_function``, ``baseline`` and the run's config, versions, digests and load.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import torch


def _figure(ours: dict, base: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from brickwork.modules import atomic_write_figure

    fig, ax = plt.subplots(figsize=(7, 3.6))
    for name, rep, style in (
        ("brickwork modules (ours)", ours, "o-"),
        ("Transformer seq2seq", base, "s--"),
    ):
        bins = list(rep)
        ax.plot(range(len(bins)), [rep[b] for b in bins], style, label=name)
    ax.set_xticks(range(len(bins)))
    ax.set_xticklabels(bins, rotation=30)
    ax.set_xlabel("target length (symbols)")
    ax.set_ylabel("exact match")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title("PCFG SET productivity + systematicity tests, by target length")
    ax.grid(alpha=0.3)
    ax.legend(loc="center right")
    atomic_write_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (about 2 minutes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="folder (default runs/bench_pcfg[_quick])")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--baseline-seconds",
        type=float,
        default=None,
        help="baseline training budget (default: 300 s; quick 30 s)",
    )
    parser.add_argument("--figure", default=None, help="also write the accuracy-vs-length PNG here")
    parser.add_argument(
        "--device", default="cpu", help="where our modules train and run (cpu, cuda, cuda:N)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr
    )
    log = logging.getLogger("bench.pcfg")
    from brickwork._version import __version__
    from brickwork.modules import atomic_write_json
    from brickwork.registry import Registry
    from brickwork.studies.pcfg import (
        FUNCTIONS,
        Composer,
        load_run,
        parse_program,
        productivity_split,
        read_pcfg,
        systematicity_split,
        train_all,
        write_pcfg,
    )
    from brickwork.studies.pcfg.baseline import predict_baseline, train_baseline
    from brickwork.studies.pcfg.data import examples_digest
    from brickwork.studies.pcfg.evaluate import (
        extrapolation_examples,
        score,
        single_function_examples,
    )

    q = args.quick
    out = Path(args.out or ("runs/bench_pcfg_quick" if q else "runs/bench_pcfg"))
    n_test = 300 if q else 1000
    n_base_train = 3000 if q else 20000
    base_seconds = args.baseline_seconds or (30.0 if q else 300.0)
    per_fn_lengths = list(range(1, 501, 7 if q else 1))
    started = time.perf_counter()

    # ---- data in the official format
    files = {}
    for split, make in (
        ("productivity", productivity_split),
        ("systematicity", systematicity_split),
    ):
        train, test = make(n_base_train if split == "productivity" else 0, n_test, seed=args.seed)
        if train:
            write_pcfg(out / "data" / split / "train", train)
        files[split] = write_pcfg(out / "data" / split / "test", test)
    log.info("data written under %s", out / "data")

    # ---- ours: train every module alone, in parallel, registered
    summary = train_all(
        out / "run",
        seed=args.seed,
        workers=args.workers,
        examples=1000 if q else 2000,
        max_time=40.0 if q else 120.0,
        registry=Registry(out / "registry"),
        device=args.device,
    )
    train_seconds = summary["train_seconds"]
    log.info("modules trained in %.1f s wall", train_seconds)
    composer = Composer(load_run(out / "run"), device=args.device)

    def ours_on(examples):
        progs = [parse_program(e.source) for e in examples]
        return score(examples, composer(progs), progs)

    reports = {}
    for split, (src, tgt) in files.items():
        t0 = time.perf_counter()
        reports[split] = ours_on(read_pcfg(src, tgt))
        log.info(
            "%s: exact %.4f (%d examples, %.1f s)",
            split,
            reports[split]["accuracy"],
            reports[split]["n"],
            time.perf_counter() - t0,
        )
    extrap = {}
    for factor, length in (("10x", 100), ("50x", 500)):
        ex = extrapolation_examples(
            length, 50 if q else 100, 50 if q else 200, seed=args.seed + length
        )
        extrap[factor] = ours_on(ex)
        log.info("length %s: exact %.4f", factor, extrap[factor]["accuracy"])
    n_extrap = sum(r["n"] for r in extrap.values())
    length_extrapolation = sum(r["accuracy"] * r["n"] for r in extrap.values()) / n_extrap
    per_function = {}
    for k, f in enumerate(FUNCTIONS):
        per_function[f] = ours_on(
            single_function_examples(f, per_fn_lengths, seed=args.seed + 1000 + k)
        )["accuracy"]
    log.info("per function (lengths 1-500): %s", per_function)

    # ---- baseline: a Transformer on composed examples (≤ 8 functions), same machine
    base_train = read_pcfg(
        out / "data" / "productivity" / "train.src", out / "data" / "productivity" / "train.tgt"
    )
    model, base_info = train_baseline(base_train, seconds=base_seconds, seed=args.seed)
    base_reports = {}
    for split, (src, tgt) in files.items():
        ex = read_pcfg(src, tgt)
        base_reports[split] = score(ex, predict_baseline(model, ex))
        log.info("baseline %s: exact %.4f", split, base_reports[split]["accuracy"])
    in_dist = base_train[:300]
    base_in = score(in_dist, predict_baseline(model, in_dist))["accuracy"]

    def pooled(reps):
        acc: dict[str, list[float]] = {}
        for r in reps:
            for b, a in r["by_target_length"].items():
                n = r["counts_by_target_length"][b]
                acc.setdefault(b, [0.0, 0])
                acc[b][0] += a * n
                acc[b][1] += n
        order = sorted(acc, key=lambda b: int(b.split("-")[0].rstrip("+")))
        return {b: acc[b][0] / acc[b][1] for b in order}

    ours_len = pooled(reports.values())
    base_len = pooled(base_reports.values())
    if args.figure:
        _figure(ours_len, base_len, Path(args.figure))
    _figure(ours_len, base_len, out / "pcfg-accuracy-vs-length.png")

    result = {
        "productivity": reports["productivity"]["accuracy"],
        "systematicity": reports["systematicity"]["accuracy"],
        "length_extrapolation": length_extrapolation,
        "length_extrapolation_by_factor": {k: v["accuracy"] for k, v in extrap.items()},
        "train_seconds": train_seconds,
        "per_function": per_function,
        "baseline": {
            "productivity": base_reports["productivity"]["accuracy"],
            "systematicity": base_reports["systematicity"]["accuracy"],
            "train_accuracy_300": base_in,
            **base_info,
            "by_target_length": base_len,
        },
        "by_target_length": ours_len,
        "by_functions": {k: r["by_functions"] for k, r in reports.items()},
        "errors": {k: r["errors"][:20] for k, r in {**reports, **extrap}.items()},
        "ratios": {
            f"{k}_minus_baseline": reports[k]["accuracy"] - base_reports[k]["accuracy"]
            for k in reports
        },
        "thresholds": {
            "productivity>=0.99": reports["productivity"]["accuracy"] >= 0.99,
            "systematicity>=0.99": reports["systematicity"]["accuracy"] >= 0.99,
            "length_extrapolation>=0.99": length_extrapolation >= 0.99,
            "train_seconds<=" + ("120" if q else "600"): train_seconds <= (120 if q else 600),
        },
        "config": {
            "quick": q,
            "seed": args.seed,
            "workers": args.workers,
            "n_test": n_test,
            "baseline_train_examples": n_base_train,
            "baseline_seconds": base_seconds,
            "per_function_lengths": [per_fn_lengths[0], per_fn_lengths[-1], len(per_fn_lengths)],
        },
        "data_digests": {k: examples_digest(read_pcfg(*v)) for k, v in files.items()},
        "version": __version__,
        "torch": torch.__version__,
        "load_average_1min": os.getloadavg()[0],
        "seconds": time.perf_counter() - started,
    }
    atomic_write_json(out / "bench.json", result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
