"""Answering question text with a trained NMN study's registered modules.

A study run folder (``brickwork clevr study --out RUN``) holds ``summary.json`` (its
configuration) and ``registry/`` (every trained module); its data cache holds the
generated splits and the frozen encoder's features. :class:`StudyRun` opens both
(read only), rebuilds the typed (or classic) NMN from the registry — each module under
the layout name its card's lineage records (``find[red]``) — and answers questions from
their programs: the file's own (``given``) or the program generator's (``generated``).

Example:
    >>> from brickwork.studies.clevr.parse.answering import module_tag
    >>> module_tag("typed", "answers", 0)
    'typed-answers-s0'
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from brickwork.errors import DataError
from brickwork.registry import Registry
from brickwork.studies.clevr.data import (
    ANSWERS,
    ClevrDataset,
    Program,
    Question,
    Scene,
    load_questions,
)
from brickwork.studies.clevr.nmn import NMN, StudyConfig, Tokenizer
from brickwork.studies.clevr.nmn.layouts import program_layout

log = logging.getLogger(__name__)
#: question length (words) of the study's question encoder input
QUESTION_TOKENS = 48
SPLITS = ("train", "val", "test")


def module_tag(interface: str, supervision: str, seed: int) -> str:
    """The suffix a study run gives its registered modules' names."""
    return f"{interface}-{supervision}-s{seed}"


def _data_digest(cfg: StudyConfig) -> str:
    """The study's cache folder key (as ``prepare_data`` names it)."""
    return hashlib.sha256(json.dumps(cfg.data_json(), sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class StudyRun:
    """A finished study run (its summary and registry) and its data cache.

    Example:
        >>> import tempfile
        >>> try:
        ...     StudyRun.open(tempfile.mkdtemp())
        ... except DataError as exc:
        ...     "expected a study run folder" in str(exc)
        True
    """

    root: Path
    config: StudyConfig
    data_root: Path

    @classmethod
    def open(cls, run: str | Path, cache: str | Path | None = None) -> StudyRun:
        """Open ``run``; ``cache`` is its ``--cache`` folder (default: ``clevr-cache``
        next to the run, or the one holding this run's data digest)."""
        root = Path(run)
        summary = root / "summary.json"
        if not summary.is_file():
            raise DataError(
                f"{summary}: not found; expected a study run folder (brickwork clevr study "
                "--out RUN), with summary.json and registry/"
            )
        try:
            raw = json.loads(summary.read_text(encoding="utf-8"))
            fields = set(StudyConfig.__dataclass_fields__)
            cfg = StudyConfig(**{k: v for k, v in raw["config"].items() if k in fields})
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{summary}: no readable 'config' ({exc})") from None
        key = f"clevr-{_data_digest(cfg)}"
        candidates = (
            [Path(cache)]
            if cache is not None
            else [
                root.parent / "clevr-cache",
                root.parent.parent / "clevr-cache",
                *sorted(root.parent.glob("clevr-cache*")),
                *sorted(root.parent.parent.glob("clevr-cache*")),
            ]
        )
        for c in candidates:
            if (c / key / "features.safetensors").is_file():
                return cls(root, cfg, c / key)
        raise DataError(
            f"{root}: its data cache {key}/ was not found in "
            f"{', '.join(str(c) for c in candidates) or 'nothing'}; pass the study's --cache "
            "folder (CLI: --cache DIR)"
        )

    @property
    def registry(self) -> Registry:
        path = self.root / "registry"
        if not path.is_dir():
            raise DataError(f"{path}: not found; the run registered no modules")
        return Registry(path)

    def dataset(self, split: str) -> ClevrDataset:
        return ClevrDataset(self.data_root, split)

    def tokenizer(self) -> Tokenizer:
        """The study's question tokenizer (fitted on its training questions)."""
        qs = load_questions(self.data_root / "questions" / "CLEVR_train_questions.json")
        return Tokenizer.fit(q.question for q in qs)

    def features(self, split: str) -> torch.Tensor:
        """The frozen encoder's features of one split ``[n_images, C, 8, 12]``."""
        from safetensors import safe_open

        with safe_open(str(self.data_root / "features.safetensors"), "pt") as fh:
            name = f"features.{split}"
            if name not in fh.keys():  # noqa: SIM118 - safe_open has no __contains__
                raise DataError(
                    f"{self.data_root}/features.safetensors: no features of split {split!r}; "
                    f"expected one of {', '.join(SPLITS)}"
                )
            return fh.get_tensor(name)

    def load_nmn(
        self, interface: str = "typed", supervision: str = "answers", seed: int | None = None
    ) -> NMN:
        """The NMN rebuilt from the run's registered modules (``seed``: the config's)."""
        seed = self.config.seed if seed is None else seed
        tag = module_tag(interface, supervision, seed)
        reg = self.registry
        names = reg.names(f"*-{tag}")
        if not names:
            raise DataError(
                f"{reg.root}: no module registered for {tag!r} (e.g. find.red-…-{tag}); "
                "the run has: " + ", ".join(sorted({n.rsplit("-", 3)[-3] for n in reg.names()})[:5])
            )
        tok = self.tokenizer()
        nmn = NMN(interface, vocab=len(tok), channels=self.config.channels)
        for name in names:
            card = reg.card(name)
            module_name = card.lineage.get("module")
            module = reg.load(name)
            if module_name == "question_encoder":
                nmn.question = module  # type: ignore[assignment]
            elif isinstance(module_name, str):
                nmn.kinds.add(module_name, module)
        nmn.layouts.anchor = nmn.question
        nmn.eval()
        log.info("loaded %d modules of %s from %s", len(names), tag, reg.root)
        return nmn


#: image size the study's encoder reads (the dataset's default render size)
IMAGE_SIZE = (96, 64)


def rebuild_encoder(run: StudyRun, registry: Registry | None = None) -> Any:
    """The run's frozen image encoder, for images outside its cached features.

    The study trains its encoder inside ``prepare_data`` from its seed with a fixed
    thread count and keeps only the features; this retrains it the same way (the run's
    training scenes rendered again) and checks that it reproduces the cached features
    of the first test images (max difference ≤ 1e-3), else refuses. With ``registry``
    the result is stored there (``nmn_image_encoder.<data key>``) and reused.

    Raises:
        DataError: the rebuilt encoder does not reproduce the cached features.
    """
    from brickwork.studies.clevr.data import render_batch
    from brickwork.studies.clevr.nmn import cell_targets, encode, train_encoder
    from brickwork.studies.clevr.nmn.data import ENCODER_THREADS
    from brickwork.studies.clevr.nmn.encoder import images_tensor

    name = f"nmn_image_encoder.{run.data_root.name}"
    if registry is not None and name in registry:
        return registry.load(name)
    cfg = run.config
    train = run.dataset("train").scenes
    threads = torch.get_num_threads()
    torch.set_num_threads(ENCODER_THREADS)
    try:
        images = images_tensor(render_batch(train, processes=1))
        enc, _acc = train_encoder(
            images,
            cell_targets(train),
            channels=cfg.channels,
            epochs=cfg.encoder_epochs,
            seed=cfg.seed,
        )
    finally:
        torch.set_num_threads(threads)
    test = run.dataset("test").scenes[:8]
    got = encode(enc, images_tensor(render_batch(test, processes=1)))
    want = run.features("test")[: len(test)]
    diff = float((got - want).abs().max())
    if diff > 1e-3:
        raise DataError(
            f"{run.root}: the rebuilt image encoder does not reproduce the run's cached "
            f"features (max difference {diff:.3g}, expected <= 1e-3); answer questions "
            "about the run's own images (--scene, or --images of its test split)"
        )
    if registry is not None:
        registry.put(
            name,
            enc,
            mode="direct",
            lineage={"study": "clevr-nmn", "rebuilt_from": str(run.root)},
            metrics={"max_feature_difference": diff},
        )
    return enc


def image_features(encoder: Any, path: str | Path) -> tuple[torch.Tensor, Any, str | None]:
    """Features ``[C, 8, 12]`` of one PNG/JPEG, the image as read (uint8 ``h w 3``), and
    a warning when it had to be resized to the encoder's 96×64."""
    import numpy as np
    from PIL import Image

    from brickwork.studies.clevr.nmn import encode
    from brickwork.studies.clevr.nmn.encoder import images_tensor

    try:
        img = Image.open(path).convert("RGB")
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable image ({exc}); expected a PNG or JPEG") from None
    warning = None
    if img.size != IMAGE_SIZE:
        ratio = img.size[0] / img.size[1]
        warning = (
            f"{path}: image is {img.size[0]}x{img.size[1]}, the encoder reads "
            f"{IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}; resized"
            + (
                " (aspect ratio differs from 3:2: objects are stretched)"
                if abs(ratio - 1.5) > 0.05
                else ""
            )
        )
        img = img.resize(IMAGE_SIZE, Image.Resampling.BILINEAR)
    arr = np.array(img, dtype=np.uint8)  # a writable copy for torch
    feats = encode(encoder, images_tensor(arr[None]))[0]
    return feats, arr, warning


@dataclass
class Answered:
    """Answers of a batch of questions: the answer, its probability, the program used."""

    answers: list[str]
    probs: list[float]


def answer_programs(
    nmn: NMN,
    tokenizer: Tokenizer,
    features: torch.Tensor,
    rows: Sequence[int],
    questions: Sequence[str],
    programs: Sequence[Program],
    batch: int = 256,
) -> Answered:
    """The NMN's answers to ``questions`` run as ``programs`` on feature ``rows``."""
    answers: list[str] = []
    probs: list[float] = []
    with torch.no_grad():
        for a in range(0, len(programs), batch):
            lays = [nmn.layouts(p) for p in programs[a : a + batch]]
            feats = features[list(rows[a : a + batch])]
            toks = tokenizer.encode_all(questions[a : a + batch], QUESTION_TOKENS)
            logp = nmn(lays, feats, tokens=toks)
            best = logp.argmax(-1)
            answers += [ANSWERS[int(i)] for i in best]
            probs += logp.exp().gather(1, best[:, None]).squeeze(1).tolist()
    return Answered(answers, probs)


def attention_masks(nmn: NMN, program: Program, features: torch.Tensor) -> list[tuple[str, Any]]:
    """``(node, mask [h, w])`` for every find (filter) and relate node of the program:
    what the network attended after that node (the layout of the program cut there)."""
    out: list[tuple[str, Any]] = []
    with torch.no_grad():
        for i, node in enumerate(program):
            fn = node.function
            if not (fn.startswith("filter_") or fn == "relate" or fn.startswith("same_")):
                continue
            sub = _subprogram(program, i)
            lay = program_layout(sub, nmn.kinds, name=f"cut{i}")
            res = nmn.runner([lay], {"features": features[None]})
            mask = next(iter(res.values()))[0, 0]
            out.append((str(node), mask.float().cpu().numpy()))
    return out


def _subprogram(program: Program, last: int) -> Program:
    keep: set[int] = set()

    def walk(i: int) -> None:
        if i not in keep:
            keep.add(i)
            for j in program[i].inputs:
                walk(j)

    walk(last)
    order = sorted(keep)
    pos = {old: new for new, old in enumerate(order)}
    from brickwork.studies.clevr.data import ProgramNode

    return Program(
        [
            ProgramNode(
                program[i].function,
                tuple(pos[j] for j in program[i].inputs),
                program[i].value_inputs,
            )
            for i in order
        ]
    )


def scene_rows(scenes: Sequence[Scene]) -> dict[str, int]:
    """image file name → row of the split's features."""
    return {s.image_filename: i for i, s in enumerate(scenes)}


def questions_rows(questions: Sequence[Question], scenes: Sequence[Scene], where: str) -> list[int]:
    """The feature row of each question's image (by file name, else by index)."""
    by_name = scene_rows(scenes)
    by_index = {s.image_index: i for i, s in enumerate(scenes)}
    rows = []
    for k, q in enumerate(questions):
        r = by_name.get(q.image_filename, by_index.get(q.image_index))
        if r is None:
            raise DataError(
                f"{where}: question {k}: image {q.image_filename!r} (index {q.image_index}) is "
                "not among the run's scenes of that split; answer questions about the "
                "study's own images (its test split) or give --images of those"
            )
        rows.append(r)
    return rows


__all__ = [
    "Answered",
    "StudyRun",
    "answer_programs",
    "attention_masks",
    "module_tag",
    "questions_rows",
]
