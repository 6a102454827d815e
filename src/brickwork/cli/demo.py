"""``brickwork demo``: the main job on embedded defaults (what ``make demo`` runs).

Runs the sorting study in quick mode: trains the modular addressed agents, compares them
against a capped monolithic run, prints a table, writes plots and JSON under ``--out``.
``--core`` runs the small core demo instead (typed layouts trained through the
autobatched runner, seconds).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from brickwork.cli.common import (
    bounded_int,
    check_writable_dir,
    device_arg,
    workers_arg,
    writable_out_dir,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "demo", help="run the main job on embedded defaults", description=__doc__
    )
    p.add_argument("--out", default="runs/demo", type=writable_out_dir, help="output folder")
    p.add_argument("--seed", type=bounded_int(0, 2**31 - 1), default=0)
    workers_arg(p, help="parallel processes of the sorting study")
    p.add_argument(
        "--core",
        action="store_true",
        help="run the small typed-layout demo instead of the sorting study",
    )
    device_arg(p, help="where modules train and run: cpu, cuda, cuda:N or mps")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    check_writable_dir(out, flag="--out")
    device = getattr(args, "device", "cpu")
    if args.core:
        from brickwork.cli.core_demo import print_summary, run_core_demo

        print("brickwork demo --core: training exist(find[c]) layouts through the runner")
        summary = run_core_demo(out, seed=args.seed, device=device, progress=True)
        print_summary(summary, out)
        return 0 if summary["test_accuracy"] > 0.9 else 1
    from brickwork.cli import sorting

    ns = argparse.Namespace(
        quick=True,
        seed=args.seed,
        out=str(out),
        json=None,
        workers=getattr(args, "workers", 2),
        monolithic_cap=None,
        variants=None,
        action_name="compare",
        device=device,
    )
    print("brickwork demo: list-sorting study, quick mode (a few minutes on 2 cores)")
    return sorting.run(ns)
