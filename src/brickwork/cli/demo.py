"""``brickwork demo``: the main job on embedded defaults (what ``make demo`` runs).

Runs the sorting study in quick mode: trains the modular addressed agents, compares them
against a capped monolithic run, prints a table, writes plots and JSON under ``--out``.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="run the main job on embedded defaults")
    p.add_argument("--out", default="runs/demo", help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from brickwork.cli import sorting
    ns = argparse.Namespace(quick=True, seed=args.seed, out=args.out, json=None, workers=2,
                            monolithic_cap=None, variants=None, action_name="compare")
    print("brickwork demo: list-sorting study, quick mode (a few minutes on 2 cores)")
    return sorting.run(ns)
