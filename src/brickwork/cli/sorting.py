"""``brickwork sorting train|evaluate|compare``: the list-sorting study (thesis ch. 3)."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from brickwork.errors import DataError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("sorting", help="the list-sorting study (thesis ch. 3)")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, help_text in (("train", "train the modules (modular in parallel, monolithic)"),
                            ("evaluate", "evaluate trained modules closed loop"),
                            ("compare", "train, evaluate and print the comparison table")):
        q = sub.add_parser(name, help=help_text)
        q.add_argument("--quick", action="store_true", help="few-minute smoke configuration")
        q.add_argument("--seed", type=int, default=0, help="first seed")
        q.add_argument("--out", default="runs/sorting", help="output folder")
        q.add_argument("--json", default=None, help="also write the summary JSON here")
        q.add_argument("--workers", type=int, default=2, help="parallel processes")
        q.add_argument("--monolithic-cap", type=float, default=None,
                       help="monolithic wall-time cap in seconds (default 1800; quick 60)")
        q.add_argument("--variants", default=None,
                       help="comma-separated variants (default: all; quick: addressed + monolithic)")
        q.set_defaults(func=run, action_name=name)


def config_from_args(args: argparse.Namespace) -> Any:
    from brickwork.studies.sorting import VARIANTS, StudyConfig
    cfg = StudyConfig.quick_config(args.seed) if args.quick else StudyConfig().with_seed(args.seed)
    cfg = replace(cfg, workers=max(1, args.workers))
    if args.monolithic_cap is not None:
        cfg = replace(cfg, monolithic=replace(cfg.monolithic, cap_seconds=args.monolithic_cap))
    if args.variants:
        chosen = tuple(v.strip() for v in args.variants.split(",") if v.strip())
        bad = [v for v in chosen if v not in VARIANTS]
        if bad:
            raise DataError(f"--variants: unknown {bad}; choose from {', '.join(VARIANTS)}")
        cfg = replace(cfg, variants=chosen)
    return cfg


def table(summary: dict[str, Any]) -> str:
    """The comparison as a text table."""
    lines = []
    if "modular_seconds" in summary:
        lines.append(f"modular ({summary.get('modular_reference')}): "
                     f"{summary['modular_seconds']:.1f} s to criterion (parallel)")
    if summary.get("monolithic_seconds") is not None:
        mono = summary.get("monolithic", {})
        bound = " (cap hit: speedup is a lower bound)" if summary.get("speedup_is_lower_bound") else ""
        lines.append(f"monolithic: {summary['monolithic_seconds']:.1f} s, {mono.get('stop_reason')}, "
                     f"episode error {mono.get('full_length_error', float('nan')):.3f}{bound}")
        lines.append(f"speedup: {summary['speedup']:.1f}x wall, "
                     f"{summary.get('speedup_cpu', float('nan')):.1f}x CPU time "
                     f"(modular {summary.get('modular_cpu_seconds', float('nan')):.1f} s, "
                     f"monolithic {summary.get('monolithic_cpu_seconds', float('nan')):.1f} s CPU)")
    variants = summary.get("variants", {})
    if variants:
        lengths = summary["eval_lengths"]
        head = f"{'variant':30s} {'max ver.':>8s} {'factor':>6s}  " + " ".join(f"{n:>5d}" for n in lengths)
        lines += ["", f"exact-match accuracy by list length (max train {summary['max_train_length']})",
                  head, "-" * len(head)]
        for name, v in variants.items():
            accs = " ".join("    -" if v["accuracy_by_length"].get(str(n)) is None
                            else f"{v['accuracy_by_length'][str(n)]:5.2f}" for n in lengths)
            lines.append(f"{name:30s} {v['max_verified_length']:8d} "
                         f"{v['extrapolation_factor']:6.1f}  {accs}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from brickwork.modules import atomic_write_json
    from brickwork.studies.sorting import run_study
    cfg = config_from_args(args)
    action = args.action_name
    summary = run_study(cfg, args.out, train=action in ("train", "compare"),
                        evaluate=action in ("evaluate", "compare"))
    print(table(summary))
    print(f"\nwrote {Path(args.out) / 'summary.json'}"
          + (f" and plots {', '.join(summary.get('plots', []))}" if summary.get("plots") else ""))
    if args.json:
        atomic_write_json(args.json, summary)
    return 0


