"""``brickwork clevr …``: generate, render, execute and inspect CLEVR-format data.

Each subcommand is one ``_register_<name>(group)`` function listed in ``_COMMANDS``;
adding a subcommand (e.g. ``study``) means writing one more such function and
listing it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from brickwork.cli.common import (
    UsageError,
    bounded_float,
    bounded_int,
    check_writable_dir,
    check_writable_file,
    device_arg,
    existing_file,
    positive_int,
    safe_name,
    workers_arg,
    writable_out_dir,
    writable_out_file,
)
from brickwork.errors import DataError
from brickwork.studies.clevr.data.generate import (
    MAX_IMAGE_SIDE,
    MAX_QUESTIONS_PER_SCENE,
    MAX_SCENES,
    MAX_SUPERSAMPLE,
)
from brickwork.studies.clevr.data.question_generator import FAMILIES, MAX_DEPTH

_MAX_PROCESSES = 256
_side = bounded_int(8, MAX_IMAGE_SIDE)
_processes = bounded_int(1, _MAX_PROCESSES)
_seed = bounded_int(0, 2**63 - 1)


def _depth(text: str) -> int:
    """A program depth the question generator can reach: 1..MAX_DEPTH."""
    value = bounded_int(1)(text)
    if value > MAX_DEPTH:
        raise argparse.ArgumentTypeError(
            f"{value} is deeper than the question generator reaches; the reachable maximum is "
            f"{MAX_DEPTH}"
        )
    return value


_depth.__name__ = "depth"


def _input_path(text: str) -> str:
    """An existing dataset folder or questions file."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(
            f"{text} does not exist; expected a dataset folder or a questions JSON file"
        )
    if path.is_dir():
        return text
    return existing_file(text)


_input_path.__name__ = "path"


# ----------------------------------------------------------------------------- generate


def _register_generate(group: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = group.add_parser(
        "generate",
        help="generate scenes, images and questions (release layout)",
        description="Generate scenes, images and questions in the CLEVR v1.0 release layout "
        "(OUT/images/SPLIT/, OUT/scenes/, OUT/questions/, OUT/splits.json).\n\n"
        "A folder that already holds SPLIT is refused unless --force is given; "
        "with --force its scenes and questions files are replaced and its old "
        "images that the new dataset does not have are deleted (with --no-images: "
        "all of the split's old images), so no stale PNG stays behind.",
    )
    p.add_argument(
        "--scenes", type=bounded_int(1, MAX_SCENES), required=True, help="number of scenes/images"
    )
    p.add_argument(
        "--questions-per-scene",
        type=bounded_int(1, MAX_QUESTIONS_PER_SCENE),
        default=10,
        help="questions per scene (fewer when a scene admits no more)",
    )
    p.add_argument(
        "--max-depth",
        type=_depth,
        default=10,
        help=f"largest program depth (the generator reaches {MAX_DEPTH})",
    )
    p.add_argument("--min-depth", type=_depth, default=1, help="smallest program depth")
    p.add_argument(
        "--out",
        required=True,
        type=writable_out_dir,
        help="dataset folder (images/, scenes/, questions/)",
    )
    p.add_argument(
        "--split",
        default="train",
        type=safe_name,
        help="split name used in file names (letters, digits, _ and -)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace the split if OUT already holds it (its stale images are removed)",
    )
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--width", type=_side, default=96)
    p.add_argument("--height", type=_side, default=64)
    p.add_argument(
        "--supersample", type=bounded_int(1, MAX_SUPERSAMPLE), default=2, help="antialiasing factor"
    )
    p.add_argument("--processes", type=_processes, default=2)
    p.add_argument("--families", help="comma-separated family names (default: all)")
    p.add_argument("--cogent", choices=["A", "B"], help="CoGenT shape-colour condition")
    p.add_argument(
        "--condition", type=existing_file, help="JSON file mapping shapes to allowed colours"
    )
    p.add_argument("--no-images", action="store_true", help="write scenes and questions only")
    p.add_argument(
        "--ood-depth",
        type=_depth,
        default=None,
        help="in splits.json, questions deeper than this go to <split>_ood",
    )
    p.set_defaults(func=_run_generate)


def _run_generate(args: argparse.Namespace) -> int:
    from brickwork.studies.clevr.data import (
        COGENT_A,
        COGENT_B,
        SceneConfig,
        generate_dataset,
        make_splits,
    )
    from brickwork.studies.clevr.data.generate import split_files
    from brickwork.studies.clevr.data.io import load_questions, read_json
    from brickwork.studies.clevr.data.scene import check_condition

    if args.min_depth > args.max_depth:
        raise UsageError(
            f"--min-depth {args.min_depth} is larger than --max-depth "
            f"{args.max_depth}; choose --min-depth <= --max-depth"
        )
    families = None
    if args.families:
        families = [f.strip() for f in args.families.split(",") if f.strip()]
        bad = [f for f in families if f not in FAMILIES]
        if bad or not families:
            raise UsageError(
                f"--families: unknown {bad or args.families!r}; choose from {', '.join(FAMILIES)}"
            )
    if args.cogent and args.condition:
        raise UsageError("--cogent and --condition both set a shape-colour condition; use one")
    condition = None
    if args.cogent:
        condition = COGENT_A if args.cogent == "A" else COGENT_B
    if args.condition:
        condition = check_condition(read_json(args.condition), where=args.condition)
    old = split_files(args.out, args.split)
    if old and not args.force:
        raise UsageError(
            f"--out {args.out} already holds split {args.split!r} ({len(old)} "
            f"files, e.g. {old[0]}); add --force to replace it (its old images "
            "are removed) or choose another --out or --split"
        )
    try:
        summary = generate_dataset(
            args.out,
            args.scenes,
            args.questions_per_scene,
            args.max_depth,
            args.seed,
            min_depth=args.min_depth,
            split=args.split,
            families=families,
            width=args.width,
            height=args.height,
            supersample=args.supersample,
            render=not args.no_images,
            scene_config=SceneConfig(condition=condition),
            processes=args.processes,
            progress=True,
            overwrite=True,
        )
    except ValueError as exc:
        raise DataError(f"clevr generate: {exc}") from None
    splits = make_splits(
        load_questions(summary["questions_file"]),
        seed=args.seed,
        max_depth=args.ood_depth,
        path=Path(args.out) / "splits.json",
    )
    print(
        f"wrote {summary['scenes']} scenes and {summary['questions']} questions to {args.out} "
        f"in {summary['seconds']:.1f} s"
    )
    print(f"  {summary['scenes_file']}\n  {summary['questions_file']}")
    if summary["images_dir"]:
        print(f"  {summary['images_dir']}/")
    sizes = ", ".join(f"{k} {len(v)}" for k, v in splits.question_indices.items() if v)
    print(f"  {Path(args.out) / 'splits.json'} (questions: {sizes})")
    return 0


# ----------------------------------------------------------------------------- render


def _register_render(group: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = group.add_parser("render", help="render a CLEVR-format scenes file and a contact sheet")
    p.add_argument("scenes", type=existing_file, help="scenes JSON (ours or the CLEVR release's)")
    p.add_argument(
        "--out",
        required=True,
        type=writable_out_dir,
        help="folder for the images and contact_sheet.png",
    )
    p.add_argument("--width", type=_side, default=96)
    p.add_argument("--height", type=_side, default=64)
    p.add_argument("--supersample", type=bounded_int(1, MAX_SUPERSAMPLE), default=2)
    p.add_argument("--processes", type=_processes, default=2)
    p.add_argument(
        "--limit", type=positive_int, default=None, help="render only the first N scenes"
    )
    p.add_argument(
        "--sheet",
        type=bounded_int(0, 10_000),
        default=24,
        help="images on the contact sheet (0: no sheet)",
    )
    p.add_argument(
        "--sheet-scale", type=bounded_int(1, 16), default=2, help="enlargement on the sheet"
    )
    p.set_defaults(func=_run_render)


def _run_render(args: argparse.Namespace) -> int:
    from brickwork.studies.clevr.data import contact_sheet, load_scenes, render_batch
    from brickwork.studies.clevr.data.render import save_png

    scenes = load_scenes(args.scenes)
    if args.limit is not None:
        scenes = scenes[: args.limit]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    images = render_batch(
        scenes,
        args.width,
        args.height,
        supersample=args.supersample,
        processes=args.processes,
        progress=True,
    )
    seconds = time.perf_counter() - t0
    for scene, image in zip(scenes, images):
        save_png(image, out / scene.image_filename)
    sheet = None
    if args.sheet > 0 and len(scenes):
        sheet = contact_sheet(
            list(images[: args.sheet]), out / "contact_sheet.png", scale=args.sheet_scale
        )
    rate = len(scenes) / seconds if seconds > 0 else float("inf")
    print(
        f"rendered {len(scenes)} images ({args.width}x{args.height}) to {out} in {seconds:.1f} s "
        f"({rate:.0f} images/s)"
    )
    if sheet is not None:
        print(f"  contact sheet: {sheet}")
    return 0


# ----------------------------------------------------------------------------- execute


def _register_execute(group: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = group.add_parser(
        "execute", help="answer every question with the executor; report agreement"
    )
    p.add_argument("--scenes", required=True, type=existing_file, help="scenes JSON")
    p.add_argument(
        "--questions",
        required=True,
        type=existing_file,
        help="questions JSON (release or CLEVR-generator format)",
    )
    p.add_argument("--json", type=writable_out_file, help="write the report here")
    p.set_defaults(func=_run_execute)


def check_agreement(scenes_path: str | Path, questions_path: str | Path) -> dict[str, Any]:
    """Execute every question on its scene and compare with the stored answers."""
    from brickwork.studies.clevr.data import SceneIndex, load_questions, load_scenes
    from brickwork.studies.clevr.data.executor import execute
    from brickwork.studies.clevr.data.vocabulary import INVALID

    scenes = {s.image_index: s for s in load_scenes(scenes_path)}
    questions = load_questions(questions_path)
    index: dict[int, SceneIndex] = {}
    disagree: list[int] = []
    ill_posed: list[int] = []
    details: list[dict[str, Any]] = []
    unanswered = 0
    for pos, q in enumerate(questions):
        if q.image_index not in scenes:
            raise DataError(
                f"{questions_path}: question {pos}: field 'image_index': {q.image_index} is not "
                f"an image_index of {scenes_path} ({len(scenes)} scenes)"
            )
        if q.answer is None:
            unanswered += 1
            continue
        ix = index.get(q.image_index)
        if ix is None:
            ix = index[q.image_index] = SceneIndex(scenes[q.image_index])
        try:
            got = execute(q.program, ix)
        except DataError:
            got = INVALID
            ill_posed.append(pos)
        if got != q.answer:
            disagree.append(pos)
            if len(details) < 50:
                details.append({"question": pos, "expected": q.answer, "executor": got})
    n = len(questions) - unanswered
    return {
        "agreement": (n - len(disagree)) / n if n else 1.0,
        "n_questions": len(questions),
        "n_answered": n,
        "n_agree": n - len(disagree),
        "disagreements": disagree,
        "ill_posed": ill_posed,
        "examples": details,
        "scenes": str(scenes_path),
        "questions": str(questions_path),
    }


def _run_execute(args: argparse.Namespace) -> int:
    from brickwork.modules import atomic_write_json

    t0 = time.perf_counter()
    report = check_agreement(args.scenes, args.questions)
    report["seconds"] = time.perf_counter() - t0
    print(
        f"agreement {report['agreement']:.4%}: {report['n_agree']} of {report['n_answered']} "
        f"answered questions ({report['n_questions']} in the file) in {report['seconds']:.1f} s"
    )
    if report["ill_posed"]:
        print(
            f"  ill-posed on their scene: {len(report['ill_posed'])} "
            f"(first: {report['ill_posed'][:10]})"
        )
    for ex in report["examples"][:10]:
        print(
            f"  question {ex['question']}: file says {ex['expected']!r}, "
            f"executor says {ex['executor']!r}"
        )
    if args.json:
        atomic_write_json(args.json, report, indent=1)
        print(f"  report: {args.json}")
    return 0 if not report["disagreements"] else 1


# ----------------------------------------------------------------------------- stats


def _register_stats(group: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = group.add_parser("stats", help="depth and answer histograms of a dataset, with a plot")
    p.add_argument(
        "dir", type=_input_path, help="dataset folder (release layout) or a questions JSON"
    )
    p.add_argument("--split", default="train", type=safe_name)
    p.add_argument(
        "--plot", type=writable_out_file, help="PNG to write (default: DIR/stats_<split>.png)"
    )
    p.add_argument(
        "--json", type=writable_out_file, help="JSON to write (default: DIR/stats_<split>.json)"
    )
    p.set_defaults(func=_run_stats)


def _run_stats(args: argparse.Namespace) -> int:
    from brickwork.modules import atomic_write_json
    from brickwork.studies.clevr.data import dataset_stats, load_questions, plot_stats
    from brickwork.studies.clevr.data.io import release_paths

    target = Path(args.dir)
    if target.is_dir():
        qpath = release_paths(target, args.split)["questions"]
        base = target
    else:
        qpath, base = target, target.parent
    plot = Path(args.plot) if args.plot else base / f"stats_{args.split}.png"
    jpath = Path(args.json) if args.json else base / f"stats_{args.split}.json"
    check_writable_file(plot, flag="--plot")
    check_writable_file(jpath, flag="--json")
    if not Path(qpath).is_file():
        raise UsageError(
            f"{target}: no questions file for split {args.split!r} ({qpath} is "
            "missing); pass --split with a split of that folder, or a questions JSON"
        )
    stats = dataset_stats(load_questions(qpath))
    plot_stats(stats, plot)
    atomic_write_json(jpath, stats, indent=1)
    print(f"{stats['n_questions']} questions on {stats['n_images']} images ({qpath})")
    total = max(stats["n_questions"], 1)
    for key in ("depth", "family", "answer"):
        print(f"{key}:")
        for k, v in stats[key].items():
            print(f"  {k:>16} {v:8d} {100 * v / total:6.2f}% {'#' * round(60 * v / total)}")
    print(f"plot: {plot}\nstats: {jpath}")
    return 0


def _register_study(group: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = group.add_parser("study", help="the NMN study (thesis ch. 4): JSON summary and PNG reports")
    p.add_argument(
        "--out", required=True, type=writable_out_dir, help="folder for summary.json and the PNGs"
    )
    p.add_argument("--quick", action="store_true", help="10-minute smoke version")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument(
        "--cache",
        default=None,
        type=writable_out_dir,
        help="data cache folder (default: OUT/../clevr-cache); generated if absent",
    )
    workers_arg(
        p,
        default=None,
        help="worker processes running the study's jobs (default: 2); a rerun with "
        "the same OUT resumes from the jobs already done",
    )
    p.add_argument(
        "--lr",
        type=bounded_float(),
        default=None,
        help="Adam learning rate of every jointly trained stage (end-to-end, FiLM, "
        "modular downstream; default 1e-3)",
    )
    device_arg(p, help="where the study's jobs train and evaluate: cpu, cuda, cuda:N or mps")
    p.set_defaults(func=_run_study)


def _run_study(args: argparse.Namespace) -> int:
    import logging

    from brickwork.studies.clevr.nmn import StudyConfig, run_study

    # the study's steps (data generation, encoder, job starts) log at INFO: show them
    # (main() has configured logging already, so basicConfig would do nothing here)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if not args.debug:
        logging.getLogger("brickwork").setLevel(logging.INFO)
    cfg = StudyConfig.quick(args.seed) if args.quick else StudyConfig.full(args.seed)
    if args.workers is not None:
        cfg = replace(cfg, workers=args.workers)
    if args.lr is not None:
        if not 0 < args.lr < 1:
            raise UsageError(f"--lr {args.lr}: a learning rate in (0, 1) is needed, e.g. --lr 1e-3")
        cfg = replace(cfg, lr=args.lr)
    if "device" in {f.name for f in fields(cfg)}:
        cfg = replace(cfg, device=args.device)
    elif args.device != "cpu":
        raise UsageError(
            f"--device {args.device}: this version's NMN study runs on the CPU "
            "only; use --device cpu"
        )
    out = Path(args.out)
    cache = Path(args.cache) if args.cache else out.resolve().parent / "clevr-cache"
    check_writable_dir(cache, flag="--cache")
    summary = run_study(out, cfg, cache, progress=True)
    for key in ("accuracy", "seen_error", "unseen_error"):
        print(f"{key}:")
        for v, ms in summary[key].items():
            std = f" ± {ms['std']:.3f}" if "std" in ms else ""
            print(f"  {v:>16} {ms['mean']:.3f}{std}")
    print(
        f"sgm pearson r {summary['sgm_pearson_r']:.3f} (p {summary['sgm_p_value']:.3g}); "
        f"cost ratio sequential {summary['cost_ratio_sequential']:.2f}, "
        f"parallel {summary['cost_ratio_parallel']:.2f}"
    )
    search = ", ".join(
        f"lr {t['lr']:g}: {t['best_val_accuracy']:.3f}" for t in summary["cost"]["e2e_search"]
    )
    print(f"end-to-end typed learning-rate search (best val accuracy): {search}")
    for name, check in summary["acceptance"].items():
        value = check["value"]
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(
            f"  target {name}: {shown} ({check['target']}) {'met' if check['met'] else 'NOT met'}"
        )
    print(f"summary: {out / 'summary.json'}")
    return 0


# subcommands of `brickwork clevr`; add one by writing a _register_<name> and listing it
_COMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    _register_generate,
    _register_render,
    _register_execute,
    _register_stats,
    _register_study,
    __import__("brickwork.cli.clevr_ask", fromlist=["register"]).register,  # ask, answer
]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``brickwork clevr`` and its subcommands."""
    p = subparsers.add_parser("clevr", help="CLEVR-format data: generate, render, execute, stats")
    group = p.add_subparsers(dest="clevr_command", metavar="SUBCOMMAND")
    for add in _COMMANDS:
        add(group)

    def show_help(args: argparse.Namespace) -> int:
        p.print_help()
        return 0

    p.set_defaults(func=show_help)
