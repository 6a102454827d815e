"""``brickwork train PLAN``: train every module of a plan file, stage by stage.

Writes the run folder (``--out``): intermediate datasets, one folder per job
(checkpoints, HPO journal, saved module), ``summary.json``, ``hpo.png``, ``cost.png``.
After a crash, run the same command with ``--resume``.
"""

from __future__ import annotations

import argparse
import logging

from brickwork.errors import DataError, TrainingError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a plan file's modules", description=__doc__)
    p.add_argument("plan", help="plan file (see `brickwork plan`)")
    p.add_argument("--out", help="run folder (default: runs/<plan name>)")
    p.add_argument("--resume", action="store_true", help="continue a run that was interrupted")
    p.add_argument("--executor", choices=["local", "ray"], default="local")
    p.add_argument("--ray-address", help="address of an existing Ray cluster (with --executor ray)")
    p.add_argument("--workers", type=int, help="parallel workers (default: the plan file's, else 2)")
    p.add_argument("--registry", metavar="PATH", help="register trained modules here "
                   "(default: $BRICKWORK_REGISTRY or the user data dir)")
    p.add_argument("--no-register", action="store_true", help="do not register trained modules")
    p.add_argument("--reuse", action="store_true", help="reuse matching registry entries")
    p.add_argument("--trials", type=int, help="HPO trials per module with a search space")
    p.add_argument("--seed", type=int, help="run seed (default: the plan file's, else 0)")
    p.add_argument("--tag", help="registry tag suffix (default: v1)")
    p.add_argument("--tensorboard", action="store_true", help="TensorBoard logs per job under "
                   "<out>/jobs/<module>/tensorboard (needs the 'tensorboard' extra)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from brickwork.plan import load_plan_file, make_plan
    from brickwork.training import Samples
    from brickwork.training.hpo import StudyResult, hpo_table, plot_hpo
    from brickwork.training.trainer import train_plan

    if args.ray_address and args.executor != "ray":
        raise TrainingError("--ray-address needs --executor ray")
    spec = load_plan_file(args.plan)
    if spec.data_path is None:
        raise DataError(f"{args.plan}: data.path is missing; training needs the dataset file")
    opts = dict(spec.train)
    registry = None
    if not args.no_register or args.reuse:
        from brickwork.registry import Registry

        registry = Registry(args.registry)
    plan = make_plan(spec.family, spec.data, registry=registry, reuse=args.reuse,
                     cycles=spec.cycles)
    print(plan.table())
    data = Samples.load(spec.data_path)
    out = Path(args.out or f"runs/{spec.name}")
    seed = args.seed if args.seed is not None else int(opts.get("seed", 0))
    if args.verbose or args.debug:
        logging.getLogger("brickwork").setLevel(logging.INFO)
    result = train_plan(
        plan, spec.family, spec.kinds, data, workdir=out, executor=args.executor,
        workers=args.workers or int(opts.get("workers", 2)), ray_address=args.ray_address,
        registry=None if args.no_register else registry,
        register_tag=args.tag or str(opts.get("register_tag", "v1")), seed=seed,
        hparams=opts.get("hparams"), search=opts.get("search"),
        trials=args.trials if args.trials is not None else int(opts.get("trials", 0)),
        resume=args.resume, progress=True, tensorboard=args.tensorboard,
        config={"plan_file": str(spec.path), "plan_name": spec.name})
    studies = {n: StudyResult(**r["hpo"]) for n, r in result.modules.items() if r.get("hpo")}
    if studies:
        print(hpo_table(studies))
        plot_hpo(studies, out / "hpo.png")
    result.cost.plot(out / "cost.png")
    print(result.cost_table())
    for name, entry in result.summary["registered"].items():
        print(f"registered {name} as {entry}")
    print(f"summary: {out / 'summary.json'}")
    return 0
