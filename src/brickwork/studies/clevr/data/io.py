"""Reading and writing CLEVR files: scenes, questions, the v1.0 release layout.

Readers accept the CLEVR v1.0 release (``function``/``value_inputs`` keys, string
answers) and the files of CLEVR's own generator (``type``/``side_inputs`` keys, raw
``True``/``3`` answers). Any malformed input raises :class:`~brickwork.errors.DataError`
naming the file, the scene or question index and the field, with what was found and
what was expected. Writers are atomic (temporary file + ``os.replace``); JSON only.

Release layout (``root`` = ``CLEVR_v1.0`` or the output of ``brickwork clevr generate``)::

    root/images/<split>/CLEVR_<split>_000000.png
    root/scenes/CLEVR_<split>_scenes.json
    root/questions/CLEVR_<split>_questions.json

Example:
    >>> import tempfile, pathlib
    >>> from brickwork.studies.clevr.data.scene import generate_scene
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "scenes.json"
    >>> _ = write_scenes(path, [generate_scene(0, seed=0)], {"split": "train"})
    >>> [s.image_filename for s in load_scenes(path)]
    ['CLEVR_train_000000.png']
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, final

import numpy as np

from brickwork.errors import DataError
from brickwork.modules import atomic_write_bytes, atomic_write_json
from brickwork.studies.clevr.data.program import Program
from brickwork.studies.clevr.data.question import Question
from brickwork.studies.clevr.data.scene import Scene, image_filename
from brickwork.studies.clevr.data.vocabulary import format_answer

_QUESTION_KEYS = frozenset(
    {
        "image_index",
        "image_filename",
        "question",
        "program",
        "answer",
        "question_family_index",
        "question_index",
        "split",
    }
)


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; a missing file or bad JSON is a :class:`DataError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}: line {exc.lineno} column {exc.colno}: invalid JSON: {exc.msg}"
        ) from None


def _top(path: Path, raw: Any, key: str) -> tuple[dict[str, Any], list[Any]]:
    if not isinstance(raw, Mapping):
        raise DataError(
            f"{path}: found a JSON {type(raw).__name__} at the top level, expected "
            f"an object with 'info' and '{key}'"
        )
    items = raw.get(key)
    if not isinstance(items, list):
        raise DataError(
            f"{path}: field '{key}': "
            + ("missing" if items is None else f"found {type(items).__name__}")
            + f", expected a list of {key}"
        )
    info = raw.get("info", {})
    if not isinstance(info, Mapping):
        raise DataError(f"{path}: field 'info': found {type(info).__name__}, expected an object")
    return dict(info), items


@final
@dataclass(frozen=True)
class ScenesFile:
    """A scenes file: its ``info`` block and scenes.

    Example:
        >>> ScenesFile({"split": "val"}, []).info["split"]
        'val'
    """

    info: dict[str, Any]
    scenes: list[Scene]


@final
@dataclass(frozen=True)
class QuestionsFile:
    """A questions file: its ``info`` block and questions.

    Example:
        >>> len(QuestionsFile({"split": "val"}, []).questions)
        0
    """

    info: dict[str, Any]
    questions: list[Question]


def load_scenes_file(path: str | Path) -> ScenesFile:
    """Read a CLEVR scenes file (``{"info": …, "scenes": […]}``)."""
    path = Path(path)
    info, items = _top(path, read_json(path), "scenes")
    split = str(info.get("split", "train"))
    scenes = [
        Scene.from_clevr_json(s, where=str(path), position=i, default_split=split)
        for i, s in enumerate(items)
    ]
    return ScenesFile(info, scenes)


def load_scenes(path: str | Path) -> list[Scene]:
    """Read the scenes of a CLEVR scenes file."""
    return load_scenes_file(path).scenes


def parse_question(
    raw: object, *, where: str = "", position: int = 0, default_split: str = "train"
) -> Question:
    """Parse one record of a questions file (release or CLEVR-generator format)."""
    prefix = f"{where}: question {position}"
    if not isinstance(raw, Mapping):
        raise DataError(f"{prefix}: found {type(raw).__name__}, expected an object")
    for key in ("image_index", "question", "program"):
        if key not in raw:
            raise DataError(f"{prefix}: field '{key}': missing")
    index = raw["image_index"]
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise DataError(f"{prefix}: field 'image_index': found {index!r}, expected an integer >= 0")
    text = raw["question"]
    if not isinstance(text, str):
        raise DataError(f"{prefix}: field 'question': found {text!r:.60}, expected a string")
    program = Program.from_json(raw["program"], where=prefix)
    answer = raw.get("answer")
    if answer is not None:
        if not isinstance(answer, (str, int, bool)):
            raise DataError(
                f"{prefix}: field 'answer': found {answer!r}, expected a string, "
                "an integer or a boolean"
            )
        answer = format_answer(answer)
    family = raw.get("question_family_index", -1)
    if not isinstance(family, int) or isinstance(family, bool):
        raise DataError(
            f"{prefix}: field 'question_family_index': found {family!r}, expected an integer"
        )
    qindex = raw.get("question_index", position)
    if not isinstance(qindex, int) or isinstance(qindex, bool):
        raise DataError(f"{prefix}: field 'question_index': found {qindex!r}, expected an integer")
    split = str(raw.get("split", default_split))
    name = raw.get("image_filename") or image_filename(split, index)
    extra = {k: v for k, v in raw.items() if k not in _QUESTION_KEYS}
    return Question(index, str(name), text, program, answer, family, qindex, split, extra)


def load_questions_file(path: str | Path) -> QuestionsFile:
    """Read a CLEVR questions file (``{"info": …, "questions": […]}``)."""
    path = Path(path)
    info, items = _top(path, read_json(path), "questions")
    split = str(info.get("split", "train"))
    questions = [
        parse_question(q, where=str(path), position=i, default_split=split)
        for i, q in enumerate(items)
    ]
    return QuestionsFile(info, questions)


def load_questions(path: str | Path) -> list[Question]:
    """Read the questions of a CLEVR questions file."""
    return load_questions_file(path).questions


def write_scenes(path: str | Path, scenes: Iterable[Scene], info: Mapping[str, Any]) -> Path:
    """Write a CLEVR scenes file atomically."""
    return atomic_write_json(
        path,
        {"info": dict(info), "scenes": [s.to_clevr_json() for s in scenes]},
        indent=None,
        sort_keys=False,
    )


def write_questions(
    path: str | Path, questions: Iterable[Question], info: Mapping[str, Any]
) -> Path:
    """Write a CLEVR questions file atomically (release format)."""
    return atomic_write_json(
        path,
        {"info": dict(info), "questions": [q.to_clevr_json() for q in questions]},
        indent=None,
        sort_keys=False,
    )


def release_paths(root: str | Path, split: str) -> dict[str, Path]:
    """Paths of a split in the release layout: ``images``, ``scenes``, ``questions``."""
    root = Path(root)
    return {
        "images": root / "images" / split,
        "scenes": root / "scenes" / f"CLEVR_{split}_scenes.json",
        "questions": root / "questions" / f"CLEVR_{split}_questions.json",
    }


@final
@dataclass
class ClevrDataset:
    """One split of a dataset in the CLEVR v1.0 release layout (ours or the real one).

    Args:
        root: the folder holding ``images/``, ``scenes/``, ``questions/``.
        split: ``train``, ``val``, …

    Example:
        >>> import tempfile
        >>> from brickwork.studies.clevr.data.generate import generate_dataset
        >>> root = tempfile.mkdtemp()
        >>> _ = generate_dataset(root, n_scenes=2, questions_per_scene=2, max_depth=4, seed=0,
        ...                      processes=1)
        >>> ds = ClevrDataset(root, "train")
        >>> len(ds.scenes), len(ds.questions), ds.image(ds.questions[0]).shape
        (2, 4, (64, 96, 3))
    """

    root: Path
    split: str = "train"
    _scenes: list[Scene] | None = field(default=None, init=False, repr=False)
    _questions: list[Question] | None = field(default=None, init=False, repr=False)
    _by_index: dict[int, Scene] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        if not self.root.is_dir():
            raise DataError(
                f"{self.root}: not a folder; expected a CLEVR release layout "
                "(images/, scenes/, questions/)"
            )

    @property
    def paths(self) -> dict[str, Path]:
        return release_paths(self.root, self.split)

    @property
    def scenes(self) -> list[Scene]:
        if self._scenes is None:
            self._scenes = load_scenes(self.paths["scenes"])
        return self._scenes

    @property
    def questions(self) -> list[Question]:
        if self._questions is None:
            self._questions = load_questions(self.paths["questions"])
        return self._questions

    def scene(self, image_index: int) -> Scene:
        """The scene with this ``image_index``."""
        if self._by_index is None:
            self._by_index = {s.image_index: s for s in self.scenes}
        try:
            return self._by_index[image_index]
        except KeyError:
            raise DataError(
                f"{self.paths['scenes']}: no scene with image_index {image_index}"
            ) from None

    def image_path(self, item: Scene | Question) -> Path:
        """Path of the image of a scene or question (``images/<split>/`` or ``images/``)."""
        folder = self.paths["images"]
        path = folder / item.image_filename
        if not path.exists() and (folder.parent / item.image_filename).exists():
            return folder.parent / item.image_filename
        return path

    def image(self, item: Scene | Question) -> np.ndarray:
        """The image as ``uint8 (h, w, 3)``."""
        from PIL import Image

        path = self.image_path(item)
        try:
            with Image.open(path) as im:
                return np.asarray(im.convert("RGB"))
        except FileNotFoundError:
            raise DataError(f"{path}: image not found") from None


def group_by_image(questions: Sequence[Question]) -> dict[int, list[int]]:
    """Question positions per ``image_index``."""
    out: dict[int, list[int]] = {}
    for i, q in enumerate(questions):
        out.setdefault(q.image_index, []).append(i)
    return out


__all__ = [
    "ClevrDataset",
    "QuestionsFile",
    "ScenesFile",
    "atomic_write_bytes",
    "atomic_write_json",
    "group_by_image",
    "load_questions",
    "load_questions_file",
    "load_scenes",
    "load_scenes_file",
    "parse_question",
    "read_json",
    "release_paths",
    "write_questions",
    "write_scenes",
]
