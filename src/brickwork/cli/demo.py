"""``brickwork demo``: the main job on embedded defaults (what ``make demo`` runs).

Runs the sorting study in quick mode: trains the modular addressed agents, compares them
against a capped monolithic run, prints a table, writes plots and JSON under ``--out``.
``--core`` runs the small core demo instead (typed layouts trained through the
autobatched runner, seconds).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="run the main job on embedded defaults")
    p.add_argument("--out", default="runs/demo", help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--core", action="store_true",
                   help="run the small typed-layout demo instead of the sorting study")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.core:
        from brickwork.cli.core_demo import print_summary, run_core_demo

        print("brickwork demo --core: training exist(find[c]) layouts through the runner")
        summary = run_core_demo(Path(args.out), seed=args.seed)
        print_summary(summary, Path(args.out))
        return 0 if summary["test_accuracy"] > 0.9 else 1
    from brickwork.cli import sorting

    ns = argparse.Namespace(quick=True, seed=args.seed, out=args.out, json=None, workers=2,
                            monolithic_cap=None, variants=None, action_name="compare")
    print("brickwork demo: list-sorting study, quick mode (a few minutes on 2 cores)")
    return sorting.run(ns)
