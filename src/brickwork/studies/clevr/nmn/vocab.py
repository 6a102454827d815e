"""Answer and word vocabularies of the NMN study, and which answers each module may give.

Every answer-producing module outputs logits over the whole CLEVR answer set
(:data:`ANSWERS`); answers outside its range get a fixed, very low logit so that
layouts of different question types stack into one batch.

Example:
    >>> from brickwork.studies.clevr.nmn.vocab import ANSWER_INDEX, valid_answers
    >>> ANSWER_INDEX["yes"], int(valid_answers("count").sum())
    (0, 11)
    >>> Tokenizer.fit(["Is it red?"]).encode("is it red", 5).tolist()
    [2, 3, 4, 0, 0]
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, final

import torch

from brickwork.errors import DataError
from brickwork.studies.clevr.data import ANSWERS, ATTRIBUTES

#: answer string -> index into ANSWERS
ANSWER_INDEX: dict[str, int] = {a: i for i, a in enumerate(ANSWERS)}
#: number of answers (the K of every answer logit vector)
K: int = len(ANSWERS)
#: logit given to answers a module cannot produce
OFF: float = -20.0
#: the counts 0..10, in order, as indices into ANSWERS
COUNT_INDEX: list[int] = [ANSWER_INDEX[str(i)] for i in range(11)]
YES, NO = ANSWER_INDEX["yes"], ANSWER_INDEX["no"]


def valid_answers(function: str) -> torch.Tensor:
    """Boolean ``[K]`` mask of the answers a function can give.

    ``function`` is ``exist``, ``count``, an attribute name (a query), or a comparison
    (``equal_color``, ``equal_integer``, ``less_than``, ``greater_than``).
    """
    m = torch.zeros(K, dtype=torch.bool)
    if function == "count":
        m[COUNT_INDEX] = True
    elif function in ATTRIBUTES:
        m[[ANSWER_INDEX[v] for v in ATTRIBUTES[function]]] = True
    elif function in ("exist", "equal_integer", "less_than", "greater_than") or function.startswith(
        "equal_"
    ):
        m[[YES, NO]] = True
    else:
        raise DataError(
            f"valid_answers: unknown answer function {function!r}; expected "
            "exist, count, an attribute name or a comparison"
        )
    return m


_WORD = re.compile(r"[a-z]+|\d+")


@final
class Tokenizer:
    """Word-level tokenizer for question text (0 = padding, 1 = unknown word).

    Example:
        >>> tok = Tokenizer.fit(["Are there red cubes?"])
        >>> tok.encode("Are there blue cubes?", 4).tolist()
        [2, 3, 1, 5]
    """

    def __init__(self, words: Iterable[str]):
        self.words = list(words)
        self.index = {w: i + 2 for i, w in enumerate(self.words)}

    @classmethod
    def fit(cls, texts: Iterable[str]) -> Tokenizer:
        seen: dict[str, None] = {}
        for t in texts:
            for w in _WORD.findall(t.lower()):
                seen.setdefault(w, None)
        return cls(seen)

    def __len__(self) -> int:
        return len(self.words) + 2

    def encode(self, text: str, length: int) -> torch.Tensor:
        ids = [self.index.get(w, 1) for w in _WORD.findall(text.lower())][:length]
        return torch.tensor(ids + [0] * (length - len(ids)), dtype=torch.long)

    def encode_all(self, texts: Iterable[str], length: int) -> torch.Tensor:
        return torch.stack([self.encode(t, length) for t in texts])

    def to_json(self) -> dict[str, Any]:
        return {"words": self.words}
