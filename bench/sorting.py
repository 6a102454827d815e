"""Benchmark: the list-sorting study (thesis ch. 3), modular vs monolithic, generalization.

Full run (default): 3 seeds, every variant, monolithic capped at 900 s (``--monolithic-cap``),
500 lists per evaluation length (fewer for whole-list variants at long lengths, see
``docs/sorting.md``). ``--quick``: the demo's smoke configuration.

Prints progress lines, then the summary as JSON on the last line: ``modular_seconds``,
``monolithic_seconds``, ``speedup`` (monolithic ÷ modular wall time to criterion, same run,
modules in parallel), ``speedup_is_lower_bound``, ``max_train_length`` and ``variants``
(per variant ``max_verified_length``, ``extrapolation_factor``, ``accuracy_by_length``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import replace

import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (a few minutes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", default=None, help="output folder (default runs/bench_sorting[_quick])"
    )
    parser.add_argument(
        "--monolithic-cap",
        type=float,
        default=900.0,
        help="monolithic wall cap in seconds for the full run (quick: 60)",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--device", default="cpu", help="where modules train and run (cpu, cuda, cuda:N)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr
    )
    from brickwork.studies.sorting import StudyConfig, run_study

    if args.quick:
        cfg = StudyConfig.quick_config(args.seed)
    else:
        cfg = StudyConfig().with_seed(args.seed)
        cfg = replace(cfg, monolithic=replace(cfg.monolithic, cap_seconds=args.monolithic_cap))
    cfg = replace(cfg, workers=args.workers)
    out = args.out or ("runs/bench_sorting_quick" if args.quick else "runs/bench_sorting")
    t0 = time.perf_counter()
    summary = run_study(cfg, out, device=args.device)
    keys = (
        "modular_seconds",
        "modular_reference",
        "modular_seconds_summed",
        "modular_addressed_seconds",
        "monolithic_seconds",
        "speedup",
        "speedup_summed",
        "speedup_addressed",
        "speedup_is_lower_bound",
        "modular_cpu_seconds",
        "modular_addressed_cpu_seconds",
        "monolithic_cpu_seconds",
        "speedup_cpu",
        "cpu_seconds_to_criterion_by_unit",
        "max_train_length",
        "seeds",
        "quick",
        "brickwork_version",
        "data_digests",
        "time_to_criterion_by_unit",
        "steps_to_criterion_by_unit",
        "eval_policy",
    )
    result = {k: summary.get(k) for k in keys}
    result["monolithic"] = {
        k: summary.get("monolithic", {}).get(k)
        for k in (
            "stop_reason",
            "iterations",
            "val_error",
            "full_length_error",
            "curriculum_length",
        )
    }
    result["variants"] = {
        name: {
            k: v[k]
            for k in (
                "max_verified_length",
                "extrapolation_factor",
                "accuracy_by_length",
                "lists_by_length",
                "seeds",
            )
        }
        for name, v in summary.get("variants", {}).items()
    }
    result["out"] = out
    result["bench_seconds"] = time.perf_counter() - t0
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
