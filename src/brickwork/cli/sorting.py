"""``brickwork sorting train|evaluate|compare``: the list-sorting study (thesis ch. 3)."""

from __future__ import annotations

import argparse
import inspect
from dataclasses import replace
from pathlib import Path
from typing import Any

from brickwork.cli.common import (
    UsageError,
    bounded_float,
    bounded_int,
    check_writable_dir,
    device_arg,
    heartbeat,
    writable_out_dir,
    writable_out_file,
)

#: largest --workers accepted (more processes than this is a typo on any machine)
MAX_WORKERS = 256
#: largest --monolithic-cap in seconds (a week)
MAX_CAP_SECONDS = 7 * 24 * 3600.0
_seed = bounded_int(0, 2**31 - 1)


def _variants(text: str) -> tuple[str, ...]:
    from brickwork.studies.sorting import VARIANTS

    chosen = tuple(v.strip() for v in text.split(",") if v.strip())
    bad = [v for v in chosen if v not in VARIANTS]
    if bad or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown variant(s) {bad or [text]}; choose from {', '.join(VARIANTS)}"
        )
    return chosen


_variants.__name__ = "variants"


def add_study_arguments(q: argparse.ArgumentParser) -> None:
    """The options every ``brickwork sorting`` action (and ``brickwork demo``) takes."""
    q.add_argument("--quick", action="store_true", help="few-minute smoke configuration")
    q.add_argument("--seed", type=_seed, default=0, help="first seed")
    q.add_argument("--out", default="runs/sorting", type=writable_out_dir, help="output folder")
    q.add_argument(
        "--json", default=None, type=writable_out_file, help="also write the summary JSON here"
    )
    q.add_argument(
        "--workers", type=bounded_int(1, MAX_WORKERS), default=2, help="parallel processes"
    )
    q.add_argument(
        "--monolithic-cap",
        type=bounded_float(0, MAX_CAP_SECONDS, lo_open=True),
        default=None,
        help="monolithic wall-time cap in seconds (default 1800; quick 60)",
    )
    q.add_argument(
        "--variants",
        type=_variants,
        default=None,
        help="comma-separated variants (default: all; quick: addressed + monolithic)",
    )
    device_arg(q, help="where the workers train and evaluate: cpu, cuda, cuda:N or mps")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "sorting", help="the list-sorting study (thesis ch. 3)", description=__doc__
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, help_text in (
        ("train", "train the modules (modular in parallel, monolithic)"),
        ("evaluate", "evaluate trained modules closed loop (needs a train run in --out)"),
        ("compare", "train, evaluate and print the comparison table"),
    ):
        q = sub.add_parser(name, help=help_text)
        add_study_arguments(q)
        q.set_defaults(func=run, action_name=name)


def config_from_args(args: argparse.Namespace) -> Any:
    from brickwork.studies.sorting import StudyConfig

    cfg = StudyConfig.quick_config(args.seed) if args.quick else StudyConfig().with_seed(args.seed)
    if args.workers < 1:
        raise UsageError(f"--workers {args.workers}: need at least 1 worker process")
    cfg = replace(cfg, workers=args.workers)
    if args.monolithic_cap is not None:
        cfg = replace(cfg, monolithic=replace(cfg.monolithic, cap_seconds=args.monolithic_cap))
    if args.variants:
        chosen = args.variants if isinstance(args.variants, tuple) else _variants(args.variants)
        cfg = replace(cfg, variants=chosen)
    return cfg


def table(summary: dict[str, Any]) -> str:
    """The comparison as a text table."""
    lines = []
    if "modular_seconds" in summary:
        lines.append(
            f"modular ({summary.get('modular_reference')}): "
            f"{summary['modular_seconds']:.1f} s to criterion (parallel)"
        )
    if summary.get("monolithic_seconds") is not None:
        mono = summary.get("monolithic", {})
        bound = (
            " (cap hit: speedup is a lower bound)" if summary.get("speedup_is_lower_bound") else ""
        )
        lines.append(
            f"monolithic: {summary['monolithic_seconds']:.1f} s, {mono.get('stop_reason')}, "
            f"episode error {mono.get('full_length_error', float('nan')):.3f}{bound}"
        )
        lines.append(
            f"speedup: {summary['speedup']:.1f}x wall, "
            f"{summary.get('speedup_cpu', float('nan')):.1f}x CPU time "
            f"(modular {summary.get('modular_cpu_seconds', float('nan')):.1f} s, "
            f"monolithic {summary.get('monolithic_cpu_seconds', float('nan')):.1f} s CPU)"
        )
    variants = summary.get("variants", {})
    if variants:
        lengths = summary["eval_lengths"]
        head = f"{'variant':30s} {'max ver.':>8s} {'factor':>6s}  " + " ".join(
            f"{n:>5d}" for n in lengths
        )
        lines += [
            "",
            f"exact-match accuracy by list length (max train {summary['max_train_length']})",
            head,
            "-" * len(head),
        ]
        for name, v in variants.items():
            accs = " ".join(
                "    -"
                if v["accuracy_by_length"].get(str(n)) is None
                else f"{v['accuracy_by_length'][str(n)]:5.2f}"
                for n in lengths
            )
            lines.append(
                f"{name:30s} {v['max_verified_length']:8d} {v['extrapolation_factor']:6.1f}  {accs}"
            )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from brickwork.modules import atomic_write_json
    from brickwork.studies.sorting import run_study

    cfg = config_from_args(args)
    action = args.action_name
    out = Path(args.out)
    check_writable_dir(out, flag="--out")
    if action == "evaluate" and not (out / "train.json").is_file():
        raise UsageError(
            f"--out {out}: no trained study there ({out / 'train.json'} is "
            f"missing); run 'brickwork sorting train --out {out}' first, or "
            "'brickwork sorting compare' to train and evaluate"
        )
    kwargs: dict[str, Any] = {
        "train": action in ("train", "compare"),
        "evaluate": action in ("evaluate", "compare"),
    }
    params = inspect.signature(run_study).parameters
    device = getattr(args, "device", "cpu")
    if "device" in params:
        kwargs["device"] = device
    elif device != "cpu":
        raise UsageError(
            f"--device {device}: this version's sorting study runs on the CPU "
            "only; use --device cpu"
        )
    if "progress" in params:
        kwargs["progress"] = True
        summary = run_study(cfg, out, **kwargs)
    else:  # the study shows no progress of its own: a line every 30 s

        def saved() -> str:
            folders = [p for p in (out / "modules").glob("*/*") if p.is_dir()]
            return f"{len(folders)} module folders saved under {out / 'modules'}"

        with heartbeat(f"sorting {action}", interval=30.0, count=saved):
            summary = run_study(cfg, out, **kwargs)
    print(table(summary))
    print(
        f"\nwrote {out / 'summary.json'}"
        + (f" and plots {', '.join(summary.get('plots', []))}" if summary.get("plots") else "")
    )
    if args.json:
        atomic_write_json(args.json, summary)
    return 0
