"""The study's data: CLEVR-format splits generated into a cache folder, loaded back
through the data package's loaders, rendered, and encoded once by the frozen image
encoder (the features are the intermediate dataset every model reads).

Question sets (program depth as defined in ``docs/nmn-study.md``):

- ``train``: training images, depth 1..``train_max_depth`` (the training questions);
- ``val``: held-out validation images, same depths;
- ``test``: held-out test images, depth 1..``max_depth`` (every report uses it);
- ``train_deep``: training images, depth 1..``max_depth`` (Fig. 4.12 "training images");
- ``train_all``: training images, depth 1..``max_depth`` (the "trained on all depths"
  models; disjoint questions from ``train_deep``).

Example:
    >>> cfg = StudyConfig.quick(seed=3)
    >>> cfg.train_max_depth, cfg.max_depth, cfg.seed
    (5, 20, 3)
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, final

import numpy as np
import torch
from safetensors.torch import load_file
from safetensors.torch import save as st_save

from brickwork.errors import DataError
from brickwork.modules import atomic_write_bytes, atomic_write_json
from brickwork.studies.clevr.data import (
    ATTRIBUTES,
    ClevrDataset,
    Question,
    Scene,
    generate_dataset,
    generate_questions,
    load_questions,
    render_batch,
    write_questions,
)
from brickwork.studies.clevr.nmn.encoder import (
    GRID,
    cell_targets,
    encode,
    images_tensor,
    object_cell_masks,
    train_encoder,
)
from brickwork.studies.clevr.nmn.vocab import ANSWER_INDEX, Tokenizer

log = logging.getLogger(__name__)
SETS = ("train", "val", "test", "train_deep", "train_all")
#: find module values: every attribute value
FIND_VALUES = tuple(v for vals in ATTRIBUTES.values() for v in vals)
TOKENS = 48
#: torch threads of the image encoder's training and encoding in :func:`prepare_data`:
#: fixed, not the study's worker count, because the thread count changes the features'
#: floating-point sums (shape cell accuracy 0.853 with 1 thread, 0.879 with 2) and the
#: cached features are keyed by the data configuration only. The encoder runs alone,
#: before any worker starts.
ENCODER_THREADS = 2


@final
@dataclass(frozen=True)
class StudyConfig:
    """Sizes, budgets and seed of one study run (``quick()`` and ``full()`` presets).

    ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"`` …): where every job trains and
    evaluates its models (the data is prepared and cached on the CPU, then moved there
    with :func:`data_on`); it does not change the data (not in :meth:`data_json`).
    """

    train_scenes: int = 4000
    val_scenes: int = 300
    test_scenes: int = 500
    questions_train: int = 20
    questions_eval: int = 8
    train_max_depth: int = 5
    max_depth: int = 20
    channels: int = 32
    encoder_epochs: int = 10
    seconds_e2e: float = 300.0
    seconds_downstream: float = 200.0
    seconds_film: float = 300.0
    seconds_all_depths: float = 200.0
    sgm_epochs: int = 4
    sgm_steps: int = 1500
    #: trials of each stage-1 module's search, and of the end-to-end model's learning-rate
    #: search (the cost report counts both): enough that few finds stay on the SGM
    #: plateau (measured per run in docs/history/nmn-study-runs.md "Trials per module")
    sgm_hpo_trials: int = 5
    sgm_study_points: int = 8
    seconds_sgm_study: float = 60.0
    seeds: int = 3
    workers: int = 2
    seed: int = 0
    #: Adam learning rate of every jointly trained stage (end-to-end, FiLM, the modular
    #: downstream stage, the all-depth models, the SGM study's rest-of-model): the best
    #: of the end-to-end typed model's search (docs/history/nmn-study-runs.md "Learning rate")
    lr: float = 1e-3
    device: str = "cpu"

    @classmethod
    def quick(cls, seed: int = 0) -> StudyConfig:
        return cls(
            train_scenes=1200,
            val_scenes=150,
            test_scenes=250,
            questions_train=12,
            questions_eval=6,
            encoder_epochs=12,
            seconds_e2e=40.0,
            seconds_downstream=35.0,
            seconds_film=30.0,
            seconds_all_depths=15.0,
            sgm_epochs=2,
            sgm_steps=600,
            sgm_hpo_trials=1,
            sgm_study_points=4,
            seconds_sgm_study=8.0,
            seeds=1,
            seed=seed,
        )

    @classmethod
    def full(cls, seed: int = 0) -> StudyConfig:
        return cls(seed=seed)

    def with_seed(self, seed: int) -> StudyConfig:
        return replace(self, seed=seed)

    def data_json(self) -> dict[str, Any]:
        keys = (
            "train_scenes",
            "val_scenes",
            "test_scenes",
            "questions_train",
            "questions_eval",
            "train_max_depth",
            "max_depth",
            "channels",
            "encoder_epochs",
            "seed",
        )
        return {k: getattr(self, k) for k in keys}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@final
@dataclass
class QuestionSet:
    """One question set as tensors (plus the questions themselves)."""

    questions: list[Question]
    image: torch.Tensor  # row into the split's features
    split: str
    tokens: torch.Tensor
    answer: torch.Tensor
    depth: torch.Tensor

    def __len__(self) -> int:
        return len(self.questions)


@final
@dataclass
class StudyData:
    """Features per split, question sets, tokenizer and find targets (for the second
    supervision setting)."""

    features: dict[str, torch.Tensor]
    sets: dict[str, QuestionSet]
    tokenizer: Tokenizer
    find_targets: dict[str, torch.Tensor]  # split -> [n_images, n_values, rows, cols]
    digest: str
    encoder_accuracy: dict[str, float]

    def set_features(self, name: str) -> torch.Tensor:
        return self.features[self.sets[name].split]


def data_on(data: StudyData, device: torch.device | str) -> StudyData:
    """``data`` with every tensor (features, question sets, find targets) on ``device``;
    the same object when it is there already.

    Example:
        >>> data = StudyData({"train": torch.zeros(1, 2, 3, 3)}, {}, None, {}, "d", {})
        >>> data_on(data, "cpu") is data
        True
    """
    device = torch.device(device)
    tensors = [*data.features.values(), *data.find_targets.values()]
    for qs in data.sets.values():
        tensors += [qs.image, qs.tokens, qs.answer, qs.depth]
    if all(t.device == device for t in tensors):
        return data
    sets = {
        name: replace(
            qs,
            image=qs.image.to(device),
            tokens=qs.tokens.to(device),
            answer=qs.answer.to(device),
            depth=qs.depth.to(device),
        )
        for name, qs in data.sets.items()
    }
    return replace(
        data,
        features={k: v.to(device) for k, v in data.features.items()},
        sets=sets,
        find_targets={k: v.to(device) for k, v in data.find_targets.items()},
    )


def data_device(data: StudyData) -> torch.device:
    """Where ``data``'s features are (the device its models train on)."""
    return next(iter(data.features.values())).device if data.features else torch.device("cpu")


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def _find_targets(
    scenes: list[Scene], masks: list[np.ndarray], threshold: float = 0.3
) -> torch.Tensor:
    out = np.zeros((len(scenes), len(FIND_VALUES), *GRID), dtype=np.float32)
    for i, (s, m) in enumerate(zip(scenes, masks)):
        for j, v in enumerate(FIND_VALUES):
            attr = next(a for a, vals in ATTRIBUTES.items() if v in vals)
            sel = [k for k, o in enumerate(s.objects) if o.attribute(attr) == v]
            if sel:
                out[i, j] = (m[sel].max(0) >= threshold).astype(np.float32)
    return torch.from_numpy(out)


def _extra_questions(
    path: Path, scenes: list[Scene], n: int, max_depth: int, seed: int, split: str
) -> list[Question]:
    if not path.exists():
        qs: list[Question] = []
        for s in scenes:
            qs += generate_questions(
                s, n, min_depth=1, max_depth=max_depth, seed=seed, first_question_index=len(qs)
            )
        write_questions(path, qs, {"split": split, "seed": seed, "max_depth": max_depth})
    return load_questions(path)


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    atomic_write_bytes(
        path, st_save({k: v.contiguous() for k, v in tensors.items()}, metadata=meta)
    )


def prepare_data(cache: str | Path, cfg: StudyConfig) -> StudyData:
    """Generate (if absent), load, render and encode the study's data.

    Raises:
        DataError: a split's scenes or questions file is malformed (the loaders'
            messages name the file and the record).
    """
    root = Path(cache) / f"clevr-{_digest(cfg.data_json())}"
    root.mkdir(parents=True, exist_ok=True)
    spec = {
        "train": (cfg.train_scenes, cfg.questions_train, cfg.train_max_depth),
        "val": (cfg.val_scenes, cfg.questions_train, cfg.train_max_depth),
        "test": (cfg.test_scenes, cfg.questions_eval, cfg.max_depth),
    }
    for split, (n, q, depth) in spec.items():
        if not (root / "questions" / f"CLEVR_{split}_questions.json").exists():
            log.info("generating %s split: %d scenes", split, n)
            generate_dataset(
                root, n, q, depth, seed=cfg.seed, split=split, render=False, processes=2
            )
    scenes = {s: ClevrDataset(root, s).scenes for s in spec}
    questions = {s: ClevrDataset(root, s).questions for s in spec}
    questions["train_deep"] = _extra_questions(
        root / "questions" / "train_deep.json",
        scenes["train"],
        max(1, cfg.questions_eval // 3),
        cfg.max_depth,
        cfg.seed + 1001,
        "train",
    )
    questions["train_all"] = _extra_questions(
        root / "questions" / "train_all.json",
        scenes["train"],
        cfg.questions_train,
        cfg.max_depth,
        cfg.seed + 2002,
        "train",
    )
    for name, qs in questions.items():
        if not qs:
            raise DataError(
                f"{root}: question set '{name}' is empty; delete the folder to regenerate it"
            )
    feat_path = root / "features.safetensors"
    digest = _digest(
        {
            "data": cfg.data_json(),
            "files": sorted(
                (p.name, p.stat().st_size) for p in (root / "questions").glob("*.json")
            ),
        }
    )
    enc_acc: dict[str, float] = {}
    if feat_path.exists():
        from safetensors import safe_open

        with safe_open(str(feat_path), "pt") as fh:
            meta = fh.metadata() or {}
        if meta.get("digest") != digest:
            feat_path.unlink()
    if feat_path.exists():
        tensors = load_file(str(feat_path))
        with open(root / "encoder.json", encoding="utf-8") as fh:
            enc_acc = json.load(fh)
    else:
        log.info("rendering and encoding %d images", sum(len(v) for v in scenes.values()))
        images = {s: images_tensor(render_batch(scenes[s], processes=2)) for s in spec}
        threads = torch.get_num_threads()
        torch.set_num_threads(ENCODER_THREADS)
        try:
            enc, enc_acc = train_encoder(
                images["train"],
                cell_targets(scenes["train"]),
                channels=cfg.channels,
                epochs=cfg.encoder_epochs,
                seed=cfg.seed,
            )
            tensors = {f"features.{s}": encode(enc, images[s]) for s in spec}
        finally:
            torch.set_num_threads(threads)
        for s in spec:
            tensors[f"find.{s}"] = _find_targets(scenes[s], object_cell_masks(scenes[s]))
        _save_tensors(feat_path, tensors, {"digest": digest})
        atomic_write_json(root / "encoder.json", enc_acc)
    tok = Tokenizer.fit(q.question for q in questions["train"])
    sets: dict[str, QuestionSet] = {}
    for name, qs in questions.items():
        split = name if name in spec else "train"
        pos = {s.image_index: i for i, s in enumerate(scenes[split])}
        try:
            image = torch.tensor([pos[q.image_index] for q in qs])
            answer = torch.tensor([ANSWER_INDEX[q.answer or ""] for q in qs])
        except KeyError as exc:
            raise DataError(
                f"{root}: question set '{name}' refers to image or answer {exc} "
                "that the split does not have; delete the folder to regenerate"
            ) from None
        sets[name] = QuestionSet(
            qs,
            image,
            split,
            tok.encode_all((q.question for q in qs), TOKENS),
            answer,
            torch.tensor([q.depth for q in qs]),
        )
    return StudyData(
        {s: tensors[f"features.{s}"] for s in spec},
        sets,
        tok,
        {s: tensors[f"find.{s}"] for s in spec},
        digest,
        enc_acc,
    )
