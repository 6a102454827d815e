"""``brickwork compose TASK.json --registry R``: solve a task by composing registry modules.

The typed search enumerates programs over the registry's modules (found by signature),
the library functions (``as_count``, ``expect``, ``add`` …), the combinators ``map``,
``fold``, ``conv`` and ``compose``, and at most two new modules; it ranks them with a
short training, fully trains the best on the executor, keeps the best on validation and
registers its new modules with lineage. ``brickwork compose sequence SEQ.json`` solves
every task of a sequence in order, each reusing what the earlier ones registered.
See docs/compose.md for the task file format.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from brickwork.cli.common import device_arg, positive_int
from brickwork.errors import DataError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compose",
        help="solve a task (or a sequence) by composing registry modules",
        description=__doc__,
    )
    p.add_argument(
        "target",
        nargs="+",
        metavar="TASK.json | sequence SEQ.json",
        help="a task file, or the word 'sequence' and a sequence file",
    )
    p.add_argument(
        "--registry",
        metavar="PATH",
        help="registry to search and register into "
        "(default: $BRICKWORK_REGISTRY or the user data dir); an empty one works: "
        "every module is then new",
    )
    p.add_argument("--out", help="run folder (default: runs/compose-<task or sequence name>)")
    p.add_argument("--workers", type=positive_int, default=2, help="parallel training workers")
    p.add_argument("--no-register", action="store_true", help="do not register the new modules")
    p.add_argument("--json", metavar="FILE", help="also write the solutions as JSON here")
    device_arg(p, help="where candidates train and run: cpu, cuda, cuda:N or mps")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from brickwork.compose import load_sequence_file, load_task_file, solve
    from brickwork.compose.solve import solution_json
    from brickwork.modules import atomic_write_json
    from brickwork.registry import Registry
    from brickwork.training import LocalExecutor

    target = list(args.target)
    if target[0] == "sequence":
        if len(target) != 2:
            raise DataError(
                "compose sequence: expected one sequence file, e.g. "
                "`brickwork compose sequence seq.json --registry reg`"
            )
        path = Path(target[1])
        out = Path(args.out or f"runs/compose-{path.stem}")
        tasks = load_sequence_file(path, out / "data")
    else:
        if len(target) != 1:
            raise DataError(
                f"compose: expected one task file, got {target}; for a sequence "
                "write `brickwork compose sequence SEQ.json`"
            )
        path = Path(target[0])
        out = Path(args.out or f"runs/compose-{path.stem}")
        tasks = [load_task_file(path, out / "data")]
    registry = Registry(args.registry)
    solutions = []
    with LocalExecutor(workers=args.workers) as executor:
        for task, config in tasks:
            sol = solve(
                task,
                registry,
                workdir=out / task.name,
                executor=executor,
                config=config,
                register=not args.no_register,
                progress=lambda text: print(text, flush=True),
                device=args.device,
            )
            print(sol.table())
            tests = (sol.winner.result or {}).get("tests") or {}
            for name, metrics in tests.items():
                shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "score")
                print(f"test {name}: {shown}")
            solutions.append(solution_json(sol))
    if args.json:
        atomic_write_json(args.json, solutions if len(solutions) > 1 else solutions[0])
    print(f"run folder: {out}")
    print(
        json.dumps(
            {"solved": [s["task"] for s in solutions], "winners": [s["winner"] for s in solutions]},
            ensure_ascii=False,
        )
    )
    return 0
