"""``brickwork pcfg train|evaluate|generate``: PCFG SET with independently trained modules.

``train`` trains the ten function modules in parallel (each alone, on single-function
examples over strings of ≤ 10 symbols) and registers them as ``pcfg.<function>``;
``evaluate`` composes them by layout over a ``.src`` file and scores against its
``.tgt`` (with ``--run DIR`` the modules of that run, else the latest registered);
``generate`` writes productivity / systematicity splits in the official format.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from brickwork.cli.common import (
    UsageError,
    bounded_float,
    bounded_int,
    check_writable_dir,
    device_arg,
    existing_dir,
    existing_file,
    workers_arg,
    writable_out_dir,
    writable_out_file,
)

_seed = bounded_int(0, 2**31 - 1)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "pcfg", help="PCFG SET: string-edit functions as trained modules", description=__doc__
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    t = sub.add_parser("train", help="train every function module in parallel and register it")
    t.add_argument("--out", required=True, type=writable_out_dir, help="run folder")
    t.add_argument(
        "--registry",
        metavar="PATH",
        help="register here (default: $BRICKWORK_REGISTRY or the user data dir)",
    )
    t.add_argument("--no-register", action="store_true", help="do not register the modules")
    t.add_argument("--seed", type=_seed, default=0, help="run seed")
    workers_arg(t)
    t.add_argument(
        "--examples",
        type=bounded_int(10, 100000),
        default=2000,
        help="single-function training examples per module",
    )
    t.add_argument(
        "--max-time",
        type=bounded_float(0, 3600, lo_open=True),
        default=120.0,
        help="wall-time cap per module (seconds)",
    )
    t.add_argument("--quick", action="store_true", help="1,000 examples, 40 s cap per module")
    device_arg(t, help="where the workers train: cpu, cuda, cuda:N or mps")
    t.set_defaults(func=run_train)

    e = sub.add_parser(
        "evaluate", help="compose the trained modules over a .src file, score against its .tgt"
    )
    e.add_argument("--src", required=True, type=existing_file, help="inputs, one per line")
    e.add_argument("--tgt", required=True, type=existing_file, help="targets, one per line")
    e.add_argument("--json", type=writable_out_file, default=None, help="write the report here")
    e.add_argument(
        "--run",
        type=existing_dir,
        default=None,
        help="a 'pcfg train' run folder (default: the latest registered modules)",
    )
    e.add_argument("--registry", metavar="PATH", help="registry to load from (without --run)")
    device_arg(e, help="where to run: cpu, cuda, cuda:N or mps")
    e.set_defaults(func=run_evaluate)

    g = sub.add_parser("generate", help="write train/test files of a split in the official format")
    g.add_argument("--out", required=True, type=writable_out_dir, help="folder for the files")
    g.add_argument("--split", choices=("productivity", "systematicity"), default="productivity")
    g.add_argument("--train", type=bounded_int(0, 10**6), default=1000, help="training examples")
    g.add_argument("--test", type=bounded_int(1, 10**6), default=1000, help="test examples")
    g.add_argument("--seed", type=_seed, default=0, help="generator seed")
    g.set_defaults(func=run_generate)


def run_train(args: argparse.Namespace) -> int:
    from brickwork.registry import Registry
    from brickwork.studies.pcfg import train_all

    check_writable_dir(args.out, flag="--out")
    registry = None if args.no_register else Registry(args.registry)
    examples, max_time = (1000, 40.0) if args.quick else (args.examples, args.max_time)
    summary = train_all(
        args.out,
        seed=args.seed,
        workers=args.workers,
        examples=examples,
        max_time=max_time,
        registry=registry,
        device=None if args.device == "cpu" else args.device,
    )
    for r in summary["modules"]:
        print(
            f"{r['function']:16s} {r['seconds']:6.1f} s  {r['epochs']:3d} epochs  "
            f"val exact {r['metrics']['exact']:.3f}  "
            f"{summary['registered'].get(r['function'], '(not registered)')}"
        )
    print(
        f"trained {len(summary['modules'])} modules in {summary['train_seconds']:.1f} s wall; "
        f"wrote {Path(args.out) / 'train.json'}"
    )
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from brickwork._version import __version__
    from brickwork.modules import atomic_write_json
    from brickwork.registry import Registry
    from brickwork.studies.pcfg import Composer, load_registry, load_run, parse_program, read_pcfg
    from brickwork.studies.pcfg.data import examples_digest
    from brickwork.studies.pcfg.evaluate import score
    from brickwork.studies.pcfg.parse import parse_target

    examples = read_pcfg(args.src, args.tgt)
    programs = []
    for i, e in enumerate(examples, 1):
        programs.append(parse_program(e.source, where=f"{args.src}:{i}: "))
        parse_target(e.target, where=f"{args.tgt}:{i}: ")
    if args.run is not None:
        modules = load_run(args.run)
        source = str(args.run)
    else:
        reg = Registry(args.registry)
        try:
            modules = load_registry(reg)
        except Exception as exc:  # noqa: BLE001 - say what to do instead of a bare lookup error
            raise UsageError(
                f"no trained pcfg modules in the registry {reg.root} ({exc}); run "
                "'brickwork pcfg train --out DIR' first, or pass --run DIR"
            ) from None
        source = f"registry {reg.root}"
    start = time.perf_counter()
    preds = Composer(modules, device=args.device)(programs)
    report = score(examples, preds, programs)
    report.update(
        {
            "seconds": time.perf_counter() - start,
            "modules": source,
            "src": str(args.src),
            "tgt": str(args.tgt),
            "data_digest": examples_digest(examples),
            "version": __version__,
        }
    )
    print(
        f"exact match {report['accuracy']:.4f} on {report['n']} examples "
        f"({len(report['errors'])} errors) in {report['seconds']:.1f} s"
    )
    print(
        "by number of functions: "
        + ", ".join(f"{k}: {v:.3f}" for k, v in report["by_functions"].items())
    )
    print(
        "by target length:       "
        + ", ".join(f"{k}: {v:.3f}" for k, v in report["by_target_length"].items())
    )
    for err in report["errors"][:5]:
        print(
            f"  line {err['line']}: first mismatch at position {err['first_mismatch']} "
            f"(expected {err['expected']}, got {err['got']})"
        )
    if args.json:
        atomic_write_json(args.json, report)
        print(f"wrote {args.json}")
    return 0


def run_generate(args: argparse.Namespace) -> int:
    from brickwork.studies.pcfg import productivity_split, systematicity_split, write_pcfg

    check_writable_dir(args.out, flag="--out")
    make = productivity_split if args.split == "productivity" else systematicity_split
    train, test = make(args.train, args.test, seed=args.seed)
    out = Path(args.out)
    for name, ex in (("train", train), ("test", test)):
        if ex:
            src, tgt = write_pcfg(out / name, ex)
            print(f"wrote {src} and {tgt} ({len(ex)} examples)")
    return 0
