"""``brickwork demo``: the main job on embedded defaults (what ``make demo`` runs)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="run the main job on embedded defaults")
    p.add_argument("--out", default="runs/demo", help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from brickwork.cli.core_demo import print_summary, run_core_demo

    print("brickwork demo: training exist(find[c]) layouts through the autobatched runner")
    out = Path(args.out)
    summary = run_core_demo(out, seed=args.seed)
    print_summary(summary, out)
    return 0 if summary["test_accuracy"] > 0.9 else 1
