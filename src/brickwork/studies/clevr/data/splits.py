"""Splits by image, by program depth and by family, saved to disk.

Images are partitioned into ``train``/``val``/``test`` (no image in two splits), so no
question about a test image is ever trained on. Within each image split, questions
deeper than ``max_depth`` or of a held-out family go to ``<split>_ood`` (out of
distribution): e.g. train on depth ≤ 5 and evaluate on ``test_ood`` up to depth 25,
or on ``train_ood`` (deeper questions about training images, as in thesis Fig. 4.12).
The JSON file also keeps every question's depth, so experiments need not recompute it.

Example:
    >>> from brickwork.studies.clevr.data.program import Program, ProgramNode
    >>> from brickwork.studies.clevr.data.question import Question
    >>> p = Program([ProgramNode("scene"), ProgramNode("exist", (0,))])
    >>> qs = [
    ...     Question(i // 2, f"CLEVR_train_{i // 2:06d}.png", "Any?", p, "yes") for i in range(40)
    ... ]
    >>> s = make_splits(qs, fractions=(0.5, 0.25, 0.25), seed=0)
    >>> sorted(len(v) for v in s.image_indices.values())
    [5, 5, 10]
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, final

from brickwork._version import __version__
from brickwork.errors import DataError
from brickwork.modules import atomic_write_json
from brickwork.studies.clevr.data.io import read_json
from brickwork.studies.clevr.data.question import Question

SPLITS = ("train", "val", "test")


@final
@dataclass(frozen=True)
class Splits:
    """Image and question indices per split.

    Attributes:
        image_indices: ``{"train"|"val"|"test": sorted image indices}``.
        question_indices: positions in the questions file, per split and per
            ``<split>_ood`` (deeper than ``max_depth`` or a held-out family).
        question_depths: the depth of every question, by position.
        config: how the split was made (fractions, seed, max_depth, families).

    Example:
        >>> s = Splits({"train": [0, 2], "val": [1], "test": []},
        ...            {"train": [0], "val": [1]}, [3, 4], {})
        >>> s.to_json()["question_depths"]
        [3, 4]
    """

    image_indices: dict[str, list[int]]
    question_indices: dict[str, list[int]]
    question_depths: list[int]
    config: dict[str, Any]

    def __post_init__(self) -> None:
        seen: dict[int, str] = {}
        for name, idx in self.image_indices.items():
            for i in idx:
                if i in seen:
                    raise DataError(f"splits: image {i} is in both '{seen[i]}' and '{name}'")
                seen[i] = name

    def to_json(self) -> dict[str, Any]:
        return {
            "info": {"brickwork_version": __version__, **self.config},
            "image_indices": self.image_indices,
            "question_indices": self.question_indices,
            "question_depths": self.question_depths,
        }

    def save(self, path: str | Path) -> Path:
        """Write the splits JSON atomically."""
        return atomic_write_json(path, self.to_json(), indent=None, sort_keys=False)


def make_splits(
    questions: Sequence[Question],
    *,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    max_depth: int | None = None,
    holdout_families: Sequence[int] = (),
    path: str | Path | None = None,
) -> Splits:
    """Split by image, then tag deep / held-out-family questions as ``<split>_ood``.

    Args:
        questions: all questions (their positions are the indices written).
        fractions: shares of images for train, val, test.
        seed: shuffling seed for the image partition.
        max_depth: questions deeper than this are out of distribution.
        holdout_families: ``question_family_index`` values kept out of distribution.
        path: when given, the splits are also written there.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be 3 non-negative shares summing to 1, got {fractions}")
    images = sorted({q.image_index for q in questions})
    random.Random(f"brickwork-clevr-splits:{seed}").shuffle(images)
    n_train = round(fractions[0] * len(images))
    n_val = round(fractions[1] * len(images))
    parts = {
        "train": sorted(images[:n_train]),
        "val": sorted(images[n_train : n_train + n_val]),
        "test": sorted(images[n_train + n_val :]),
    }
    where = {i: name for name, idx in parts.items() for i in idx}
    held = set(holdout_families)
    qidx: dict[str, list[int]] = {k: [] for s in SPLITS for k in (s, f"{s}_ood")}
    depths = []
    for pos, q in enumerate(questions):
        d = q.depth
        depths.append(d)
        ood = (max_depth is not None and d > max_depth) or q.question_family_index in held
        qidx[where[q.image_index] + ("_ood" if ood else "")].append(pos)
    splits = Splits(
        parts,
        qidx,
        depths,
        {
            "fractions": list(fractions),
            "seed": seed,
            "max_depth": max_depth,
            "holdout_families": sorted(held),
            "n_questions": len(questions),
        },
    )
    if path is not None:
        splits.save(path)
    return splits


def load_splits(path: str | Path) -> Splits:
    """Read a splits JSON written by :func:`make_splits`."""
    raw = read_json(path)
    try:
        info = dict(raw["info"])
        info.pop("brickwork_version", None)
        return Splits(
            {str(k): [int(i) for i in v] for k, v in raw["image_indices"].items()},
            {str(k): [int(i) for i in v] for k, v in raw["question_indices"].items()},
            [int(d) for d in raw["question_depths"]],
            info,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(
            f"{path}: not a splits file ({type(exc).__name__}: {exc}); expected "
            "'info', 'image_indices', 'question_indices', 'question_depths'"
        ) from None


__all__ = ["SPLITS", "Splits", "load_splits", "make_splits"]
