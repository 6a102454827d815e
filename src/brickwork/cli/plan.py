"""``brickwork plan FILE``: print the training plan of a layout family (Table 4.1 + JSON).

FILE is a plan file; its format is documented in :mod:`brickwork.plan.spec_file` and
``docs/engine.md``.
"""

from __future__ import annotations

import argparse
import json

from brickwork.cli.common import existing_dir, existing_file, writable_out_file
from brickwork.plan import load_plan_file, make_plan


def _json_out(text: str) -> str:
    """``-`` (print) or a file path that can be written."""
    return text if text == "-" else writable_out_file(text)


_json_out.__name__ = "path"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "plan", help="derive the training plan of a layout family", description=__doc__
    )
    p.add_argument("file", type=existing_file, help="plan file (JSON: kinds, layouts, data)")
    p.add_argument(
        "--json",
        dest="json_out",
        metavar="PATH",
        type=_json_out,
        help="also write the plan as JSON here ('-' prints it)",
    )
    p.add_argument(
        "--by",
        choices=["module", "kind"],
        default="module",
        help="one row per module, or per kind like Table 4.1",
    )
    p.add_argument(
        "--cycles",
        choices=["error", "joint"],
        default=None,
        help="refuse dependency cycles (default) or train them jointly",
    )
    p.add_argument(
        "--codependent",
        choices=["surrogate", "joint"],
        default=None,
        help="how modules whose outputs meet in a codependent op train: one "
        "surrogate gradient module each (the file's setting, else surrogate) "
        "or jointly",
    )
    p.add_argument(
        "--reuse",
        action="store_true",
        help="reuse registry entries with a matching kind, tag and signature",
    )
    p.add_argument(
        "--registry",
        metavar="PATH",
        type=existing_dir,
        help="registry folder (default: $BRICKWORK_REGISTRY or the user data dir)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spec = load_plan_file(args.file)
    registry = None
    if args.reuse:
        from brickwork.registry import Registry

        registry = Registry(args.registry)
    options = {**spec.plan_options(), "cycles": args.cycles or spec.cycles}
    if args.codependent:
        options["codependent"] = args.codependent
    plan = make_plan(spec.family, spec.data, registry=registry, reuse=args.reuse, **options)
    print(plan.table(by=args.by))
    text = json.dumps(plan.to_json(), indent=2, sort_keys=True)
    if args.json_out == "-":
        print(text)
    elif args.json_out:
        from brickwork.modules import atomic_write_bytes

        atomic_write_bytes(args.json_out, (text + "\n").encode())
        print(f"plan JSON written to {args.json_out}")
    return 0
