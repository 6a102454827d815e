"""``brickwork clevr ask`` and ``brickwork clevr answer``: question text to answers with a
trained NMN study's registered modules and a registered program generator.

``ask`` parses one question (or a questions file) about one image, runs the typed NMN
on the program, prints the program and the answer with its probability, and writes a
PNG of the image with every find/relate mask of the layout. ``answer`` answers every
question of a CLEVR-format questions file and reports accuracy overall, by depth, by
family and by template.
"""

from __future__ import annotations

import argparse
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

from brickwork.cli.common import (
    UsageError,
    check_writable_dir,
    check_writable_file,
    existing_dir,
    existing_file,
    nonneg_int,
)
from brickwork.errors import DataError

log = logging.getLogger(__name__)
_DEFAULT_GENERATOR_REGISTRIES = (
    "runs/clevr_parse/full/registry",
    "runs/clevr_parse/quick/registry",
)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, type=existing_dir, help="a finished NMN study run")
    p.add_argument("--cache", type=existing_dir, help="that study's --cache folder")
    p.add_argument(
        "--generator",
        help="registry name of the program generator (default: the newest "
        "program_generator.transducer-n270-*, else pointer-n270-*, else any other but "
        "the seq2seq baseline)",
    )
    p.add_argument(
        "--generator-registry",
        metavar="PATH",
        help="registry holding the generator (default: runs/clevr_parse/full/registry, "
        "then runs/clevr_parse/quick/registry)",
    )
    p.add_argument("--interface", choices=["typed", "classic"], default="typed")
    p.add_argument("--supervision", choices=["answers", "targets"], default="answers")
    p.add_argument("--seed", type=nonneg_int, help="the run's module seed (default: its config's)")


def register(group: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``clevr ask`` and ``clevr answer``."""
    p = group.add_parser("ask", help="answer a question about an image (program, answer, masks)")
    _common(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--image", type=existing_file, help="an image (PNG/JPEG, 96x64)")
    src.add_argument(
        "--scene", type=nonneg_int, help="an image of the run's dataset, by index (see --split)"
    )
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    qs = p.add_mutually_exclusive_group(required=True)
    qs.add_argument("--question", help="the question text")
    qs.add_argument("--questions", type=existing_file, help="a text file, one question a line")
    p.add_argument("--out", default="runs/clevr-ask", help="folder for the PNGs")
    p.add_argument("--json", help="write the answers as JSON here")
    p.set_defaults(func=run_ask)

    a = group.add_parser(
        "answer", help="answer a CLEVR-format questions file; accuracy by depth/family/template"
    )
    _common(a)
    a.add_argument("--questions", required=True, type=existing_file, help="questions JSON")
    a.add_argument(
        "--images",
        type=existing_dir,
        help="the questions' images (default: the run's cached features of --split)",
    )
    a.add_argument("--split", default="test", choices=["train", "val", "test"])
    a.add_argument("--programs", choices=["given", "generated"], default="generated")
    a.add_argument("--json", help="write the report (and every answer) here")
    a.add_argument("--limit", type=nonneg_int, help="answer only the first N questions")
    a.set_defaults(func=run_answer)


def _generator(args: argparse.Namespace) -> Any:
    from brickwork.registry import Registry
    from brickwork.studies.clevr.parse.parser import REGISTRY_KIND, load_generator

    paths = (
        [args.generator_registry]
        if args.generator_registry
        else [p for p in _DEFAULT_GENERATOR_REGISTRIES if Path(p).is_dir()]
    )
    if not paths:
        raise UsageError(
            "no program generator registry found; train one (python bench/clevr_parse.py "
            "--quick) or pass --generator-registry PATH"
        )
    reg = Registry(paths[0])
    ref = args.generator
    if ref is None:
        names: list[str] = []
        for pattern in ("transducer-n270-*", "pointer-n270-*", "transducer-*", "pointer-*"):
            names = names or reg.names(f"{REGISTRY_KIND}.{pattern}")
        if not names:
            raise DataError(
                f"{paths[0]}: no program generator registered (transducer-… or pointer-…)"
            )
        ref = names[-1]
    return load_generator(reg, ref), ref


def _program_text(program: Any) -> str:
    return " ".join(str(n) for n in program)


def _save_masks_png(path: Path, image: Any, masks: list[tuple[str, Any]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from brickwork.modules import atomic_write_bytes

    n = 1 + len(masks)
    fig, axes = plt.subplots(1, n, figsize=(2.4 * n, 2.2), squeeze=False)
    axes[0][0].imshow(image)
    axes[0][0].set_title("image", fontsize=7)
    h, w = image.shape[:2]
    for ax, (name, m) in zip(axes[0][1:], masks):
        up = np.kron(m, np.ones((h // m.shape[0], w // m.shape[1])))
        ax.imshow(image)
        ax.imshow(up, alpha=0.6, cmap="magma", vmin=0, vmax=max(1e-6, float(m.max())))
        ax.set_title(name, fontsize=7)
    for ax in axes[0]:
        ax.axis("off")
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def run_ask(args: argparse.Namespace) -> int:
    import torch

    from brickwork.studies.clevr.data import render_scene
    from brickwork.studies.clevr.parse.answering import (
        StudyRun,
        answer_programs,
        attention_masks,
        image_features,
        rebuild_encoder,
    )
    from brickwork.studies.clevr.parse.parser import parse_question

    torch.set_num_threads(1)
    out = Path(check_writable_dir(args.out))
    if args.json:
        check_writable_file(args.json)
    questions = (
        [args.question]
        if args.question is not None
        else [
            line.strip()
            for line in Path(args.questions).read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
    )
    if not questions:
        raise UsageError(f"--questions {args.questions}: no question in the file")
    run = StudyRun.open(args.run, args.cache)
    gen, gen_ref = _generator(args)
    nmn = run.load_nmn(args.interface, args.supervision, args.seed)
    tok = run.tokenizer()
    if args.scene is not None:
        scenes = run.dataset(args.split).scenes
        if args.scene >= len(scenes):
            raise UsageError(
                f"--scene {args.scene}: the run's {args.split} split has {len(scenes)} "
                f"images (0..{len(scenes) - 1})"
            )
        feats = run.features(args.split)[args.scene]
        image = render_scene(scenes[args.scene])
        label = scenes[args.scene].image_filename
    else:
        from brickwork.registry import Registry

        gen_registry = Registry(Path(args.generator_registry or _DEFAULT_GENERATOR_REGISTRIES[0]))
        encoder = rebuild_encoder(run, gen_registry)
        feats, image, warning = image_features(encoder, args.image)
        if warning:
            print(f"warning: {warning}")
        label = Path(args.image).name
    results = []
    for k, text in enumerate(questions):
        parsed = parse_question(gen, text, check_layout=nmn.kinds)
        if parsed.unknown_words:
            print(f"unknown words (read as <unk>): {', '.join(parsed.unknown_words)}")
        ans = answer_programs(nmn, tok, feats[None], [0], [text], [parsed.program])
        masks = attention_masks(nmn, parsed.program, feats)
        png = out / f"ask_{k:03d}.png"
        _save_masks_png(png, image, masks, f"{text}  ->  {ans.answers[0]} ({ans.probs[0]:.2f})")
        print(f"Q: {text}")
        print(f"program: {_program_text(parsed.program)}")
        print(
            f"answer: {ans.answers[0]}  (p = {ans.probs[0]:.3f}; parse confidence "
            f"{parsed.confidence:.2f})"
        )
        print(f"masks: {png}")
        results.append(
            {
                "question": text,
                "image": label,
                "program": parsed.program.to_clevr_json(),
                "answer": ans.answers[0],
                "probability": ans.probs[0],
                "unknown_words": parsed.unknown_words,
                "parse_confidence": parsed.confidence,
                "png": str(png),
            }
        )
    if args.json:
        from brickwork.modules import atomic_write_json

        atomic_write_json(args.json, {"generator": gen_ref, "run": args.run, "answers": results})
        print(f"wrote {args.json}")
    return 0


def _accuracy(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    groups: dict[str, list[int]] = defaultdict(list)
    for r in rows:
        if r.get(key) is not None:
            groups[str(r[key])].append(int(r["correct"]))
    return {k: sum(v) / len(v) for k, v in sorted(groups.items(), key=lambda kv: _sort_key(kv[0]))}


def _sort_key(text: str) -> tuple[int, Any]:
    return (0, int(text)) if text.lstrip("-").isdigit() else (1, text)


def run_answer(args: argparse.Namespace) -> int:
    import torch

    from brickwork.studies.clevr.data import load_questions
    from brickwork.studies.clevr.parse.answering import (
        StudyRun,
        answer_programs,
        image_features,
        questions_rows,
        rebuild_encoder,
    )
    from brickwork.studies.clevr.parse.parser import parse_question

    torch.set_num_threads(1)
    if args.json:
        check_writable_file(args.json)
    questions = load_questions(args.questions)
    if args.limit is not None:
        questions = questions[: args.limit]
    if not questions:
        raise UsageError(f"--questions {args.questions}: no question in the file")
    run = StudyRun.open(args.run, args.cache)
    nmn = run.load_nmn(args.interface, args.supervision, args.seed)
    tok = run.tokenizer()
    scenes = run.dataset(args.split).scenes
    known = {s.image_filename for s in scenes}
    feats = run.features(args.split)
    missing = [q for q in questions if q.image_filename not in known]
    if missing:
        if args.images is None:
            raise DataError(
                f"{args.questions}: {len(missing)} questions are about images not in the run's "
                f"{args.split} split (e.g. {missing[0].image_filename}); pass --images DIR"
            )
        from brickwork.registry import Registry

        encoder = rebuild_encoder(
            run, Registry(Path(args.generator_registry or _DEFAULT_GENERATOR_REGISTRIES[0]))
        )
        extra = {}
        for name in sorted({q.image_filename for q in missing}):
            path = Path(args.images) / name
            if not path.is_file():
                raise DataError(f"{path}: image not found (question image {name!r})")
            f, _img, warning = image_features(encoder, path)
            if warning:
                log.warning(warning)
            extra[name] = f
        names = list(extra)
        feats = torch.cat([feats, torch.stack([extra[n] for n in names])])
        rows_by_name = {s.image_filename: i for i, s in enumerate(scenes)}
        rows_by_name.update({n: len(scenes) + i for i, n in enumerate(names)})
        rows = [rows_by_name[q.image_filename] for q in questions]
    else:
        rows = questions_rows(questions, scenes, args.questions)
    programs: list[Any] = []
    failures: list[dict[str, Any]] = []
    unknown: dict[str, int] = defaultdict(int)
    gen_ref = None
    if args.programs == "generated":
        gen, gen_ref = _generator(args)
        for k, q in enumerate(questions):
            try:
                parsed = parse_question(gen, q.question)
                programs.append(parsed.program)
                for w in parsed.unknown_words:
                    unknown[w] += 1
            except DataError as exc:
                programs.append(None)
                failures.append({"question": k, "error": str(exc)})
    else:
        if any(len(q.program) == 0 for q in questions):
            raise DataError(f"{args.questions}: --programs given needs every question's program")
        programs = [q.program for q in questions]
    ok = [i for i, p in enumerate(programs) if p is not None]
    ans = answer_programs(
        nmn,
        tok,
        feats,
        [rows[i] for i in ok],
        [questions[i].question for i in ok],
        [programs[i] for i in ok],
    )
    got = dict(zip(ok, zip(ans.answers, ans.probs)))
    rows_out = []
    for i, q in enumerate(questions):
        a, p = got.get(i, (None, 0.0))
        depth = q.depth if len(q.program) else (programs[i].depth if programs[i] else None)
        rows_out.append(
            {
                "question_index": q.question_index,
                "answer": a,
                "probability": p,
                "expected": q.answer,
                "correct": a is not None and a == q.answer,
                "depth": depth,
                "family": q.question_family_index if q.question_family_index >= 0 else None,
                "template": q.extra.get("template_filename", q.extra.get("template_id")),
                "program_exact": (
                    programs[i] == q.program if programs[i] is not None and len(q.program) else None
                ),
            }
        )
    scored = [r for r in rows_out if r["expected"] is not None]
    report: dict[str, Any] = {
        "questions": len(questions),
        "answered": len(ok),
        "programs": args.programs,
        "generator": gen_ref,
        "run": args.run,
        "accuracy": sum(r["correct"] for r in scored) / max(1, len(scored)),
        "accuracy_by_depth": _accuracy(scored, "depth"),
        "accuracy_by_family": _accuracy(scored, "family"),
        "accuracy_by_template": _accuracy(scored, "template"),
        "parse_failures": failures,
        "unknown_words": dict(sorted(unknown.items(), key=lambda kv: -kv[1])),
    }
    exact = [r["program_exact"] for r in rows_out if r["program_exact"] is not None]
    if exact and args.programs == "generated":
        report["program_exact"] = sum(exact) / len(exact)
    print(
        f"{len(ok)} of {len(questions)} questions answered ({args.programs} programs); "
        f"accuracy {report['accuracy']:.3f}"
    )
    for name in ("depth", "family", "template"):
        table = report[f"accuracy_by_{name}"]
        if table:
            print(f"by {name}: " + ", ".join(f"{k}: {v:.3f}" for k, v in table.items()))
    if failures:
        print(f"{len(failures)} questions could not be parsed (e.g. {failures[0]['error']})")
    if unknown:
        print("unknown words: " + ", ".join(f"{w} ({n})" for w, n in list(unknown.items())[:10]))
    if args.json:
        from brickwork.modules import atomic_write_json

        atomic_write_json(args.json, {**report, "answers": rows_out}, indent=1)
        print(f"wrote {args.json}")
    return 0
