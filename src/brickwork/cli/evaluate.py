"""``brickwork evaluate PLAN --run DIR``: score the modules a run trained.

Loads the trained weights from the run folder (``jobs/<module>/module``, not the
registry), runs the plan's family over the run's copy of the data with the autobatched
runner, and prints per-output metrics (accuracy for answers, MSE for values), overall and
per layout. ``--split val`` (default) scores the samples the run held out.
"""

from __future__ import annotations

import argparse

from brickwork.cli.common import device_arg, existing_dir, existing_file, positive_int


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "evaluate", help="score a trained run's assembled family", description=__doc__
    )
    p.add_argument("plan", type=existing_file, help="the plan file the run was trained with")
    p.add_argument(
        "--run",
        required=True,
        type=existing_dir,
        metavar="DIR",
        help="run folder written by `brickwork train`",
    )
    p.add_argument(
        "--split",
        choices=["train", "val", "all"],
        default="val",
        help="which samples to score (the run's own split)",
    )
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON here")
    p.add_argument("--batch-size", type=positive_int, default=256, help="samples per runner call")
    device_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from brickwork.cli.common import check_writable_file
    from brickwork.modules import atomic_write_json
    from brickwork.plan import load_plan_file
    from brickwork.training.trainer import evaluate_run

    if args.json:
        check_writable_file(args.json)
    spec = load_plan_file(args.plan)
    report = evaluate_run(
        spec.family,
        spec.kinds,
        Path(args.run),
        split=args.split,
        device=args.device,
        batch_size=args.batch_size,
    )
    print(f"{spec.name}: {report.samples} {args.split} samples of {args.run}")
    print(report.table())
    if args.json:
        atomic_write_json(args.json, report.to_json())
        print(f"report: {args.json}")
    return 0
