"""``brickwork train PLAN``: train every module of a plan file, stage by stage.

Writes the run folder (``--out``): ``run.json`` (what the run trains with), a copy of the
data, intermediate datasets, one folder per job (checkpoints, HPO journal, saved module,
``metrics.jsonl``), ``metrics.csv``, ``summary.json`` (with the assembled family's
metrics on the held-out samples), ``hpo.png``, ``cost.png``. Trained modules are
registered as new versions. After a crash, run the same command with ``--resume``; a
resume with another seed, data, hyperparameters or search space is refused.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from brickwork.cli.common import (
    bounded_float,
    check_writable_dir,
    device_arg,
    existing_file,
    nonneg_int,
    positive_int,
    require_tensorboard,
)
from brickwork.errors import DataError, TrainingError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("train", help="train a plan file's modules", description=__doc__)
    p.add_argument("plan", type=existing_file, help="plan file (see `brickwork plan`)")
    p.add_argument("--out", help="run folder (default: runs/<plan name>)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue a run that was interrupted "
        "(refused when the seed, data, hyperparameters or search space changed)",
    )
    p.add_argument("--executor", choices=["local", "ray"], default="local")
    p.add_argument("--ray-address", help="address of an existing Ray cluster (with --executor ray)")
    p.add_argument(
        "--workers", type=positive_int, help="parallel workers (default: the plan file's, else 2)"
    )
    p.add_argument(
        "--registry",
        metavar="PATH",
        help="register trained modules here (default: $BRICKWORK_REGISTRY or the user data dir)",
    )
    p.add_argument("--no-register", action="store_true", help="do not register trained modules")
    p.add_argument("--reuse", action="store_true", help="reuse matching registry entries")
    p.add_argument("--trials", type=nonneg_int, help="HPO trials per module with a search space")
    p.add_argument("--seed", type=int, help="run seed (default: the plan file's, else 0)")
    p.add_argument(
        "--tag",
        help="registry tag suffix (default: v1); every run adds a new "
        "version of kind.<module>-<tag>",
    )
    p.add_argument(
        "--val-fraction",
        type=bounded_float(0.0, 1.0, hi_open=True),
        default=None,
        help="share of the samples held out for validation and the final "
        "evaluation (default: the plan file's, else 0.2)",
    )
    p.add_argument(
        "--tensorboard",
        action="store_true",
        help="TensorBoard logs per job under "
        "<out>/jobs/<module>/tensorboard (needs the 'tensorboard' extra)",
    )
    device_arg(p, help="where jobs train and the family is evaluated: cpu, cuda, cuda:N or mps")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from brickwork.plan import load_plan_file, make_plan
    from brickwork.training import Samples
    from brickwork.training.hpo import SearchResult, hpo_table, plot_hpo
    from brickwork.training.trainer import check_run_folder, train_plan

    if args.ray_address and args.executor != "ray":
        raise TrainingError("--ray-address needs --executor ray")
    if args.tensorboard:
        require_tensorboard()
    spec = load_plan_file(args.plan)
    if spec.data_path is None:
        raise DataError(f"{args.plan}: data.path is missing; training needs the dataset file")
    if spec.data_path.is_dir():
        raise DataError(
            f"{args.plan}: data.path {spec.data_path} is a folder; expected a "
            "safetensors file written by Samples.save"
        )
    opts = dict(spec.train)  # types checked by load_plan_file
    out = Path(args.out or f"runs/{spec.name}")
    check_writable_dir(out)
    data = Samples.load(spec.data_path)
    seed = args.seed if args.seed is not None else int(opts.get("seed", 0))
    val_fraction = (
        args.val_fraction if args.val_fraction is not None else float(opts.get("val_fraction", 0.2))
    )
    trials = args.trials if args.trials is not None else int(opts.get("trials", 0))
    # the run's settings: the folder is checked against them, then trained with them
    settings: dict[str, Any] = {
        "seed": seed,
        "hparams": opts.get("hparams"),
        "search": opts.get("search"),
        "trials": trials,
        "resume": args.resume,
        "val_fraction": val_fraction,
    }
    registry = None
    if args.reuse:  # the plan depends on the registry
        from brickwork.registry import Registry

        registry = Registry(args.registry)
    plan = make_plan(
        spec.family, spec.data, registry=registry, reuse=args.reuse, **spec.plan_options()
    )
    # refuse a bad run folder or a changed resume before anything is written
    check_run_folder(plan, spec.family, data, out, **settings)
    if registry is None and not args.no_register:
        from brickwork.registry import Registry

        registry = Registry(args.registry)
    print(plan.table())
    if args.verbose or args.debug:
        logging.getLogger("brickwork").setLevel(logging.INFO)
    result = train_plan(
        plan,
        spec.family,
        spec.kinds,
        data,
        workdir=out,
        executor=args.executor,
        workers=args.workers or int(opts.get("workers", 2)),
        ray_address=args.ray_address,
        registry=None if args.no_register else registry,
        register_tag=args.tag or str(opts.get("register_tag", "v1")),
        progress=True,
        tensorboard=args.tensorboard,
        config={"plan_file": str(spec.path), "plan_name": spec.name},
        device=args.device,
        **settings,
    )
    studies = {n: SearchResult(**r["hpo"]) for n, r in result.modules.items() if r.get("hpo")}
    if studies:
        print(hpo_table(studies))
        plot_hpo(studies, out / "hpo.png")
    result.cost.plot(out / "cost.png")
    print(result.cost_table())
    for name, entry in result.summary["registered"].items():
        print(f"registered {name} as {entry}")
    evaluation = result.summary.get("evaluation")
    if evaluation and "outputs" in evaluation:
        from brickwork.training.evaluate import EvaluationReport

        print(f"evaluation of the assembled family ({evaluation['split']} samples):")
        print(EvaluationReport.from_json(evaluation).table())
    elif evaluation:
        print(f"evaluation skipped: {evaluation.get('error')}")
    print(f"summary: {out / 'summary.json'}")
    return 0
