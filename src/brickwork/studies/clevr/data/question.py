"""A CLEVR question record: image, text, program, answer, family.

Example:
    >>> from brickwork.studies.clevr.data.program import Program, ProgramNode
    >>> q = Question(image_index=0, image_filename="CLEVR_train_000000.png",
    ...              question="Are there any things?", answer="yes",
    ...              program=Program([ProgramNode("scene"), ProgramNode("exist", (0,))]))
    >>> q.depth, q.to_clevr_json()["program"][1]
    (1, {'function': 'exist', 'inputs': [0], 'value_inputs': []})
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, final

from brickwork.studies.clevr.data.program import Program


@final
@dataclass(frozen=True)
class Question:
    """One question of a CLEVR questions file.

    Attributes:
        image_index: index of the scene/image it is about.
        image_filename: that image's file name.
        question: the English question.
        program: its functional program.
        answer: the answer as the release writes it (``"yes"``, ``"3"``, ``"red"``),
            or ``None`` where the file has none (CLEVR's test split).
        question_family_index: the template family.
        question_index: its index in the file.
        split: the split name.
        extra: other keys of the file's record, kept as they were.

    Example:
        >>> from brickwork.studies.clevr.data.program import Program, ProgramNode
        >>> Question(3, "CLEVR_val_000003.png", "How many things are there?",
        ...          Program([ProgramNode("scene"), ProgramNode("count", (0,))]), "5").depth
        1
    """

    image_index: int
    image_filename: str
    question: str
    program: Program
    answer: str | None = None
    question_family_index: int = -1
    question_index: int = 0
    split: str = "train"
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def depth(self) -> int:
        """Program depth (see :func:`~brickwork.studies.clevr.data.program.program_depth`)."""
        return self.program.depth

    def to_clevr_json(self) -> dict[str, Any]:
        """The question in the CLEVR release format."""
        out: dict[str, Any] = dict(self.extra)
        out.update(
            {
                "split": self.split,
                "image_index": self.image_index,
                "image_filename": self.image_filename,
                "question_index": self.question_index,
                "question_family_index": self.question_family_index,
                "question": self.question,
                "program": self.program.to_clevr_json(),
            }
        )
        if self.answer is not None:
            out["answer"] = self.answer
        return out


__all__ = ["Question"]
