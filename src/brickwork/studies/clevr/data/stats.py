"""Statistics of a questions file: depth, answer, family and size histograms, a plot.

Example:
    >>> from brickwork.studies.clevr.data.program import Program, ProgramNode
    >>> from brickwork.studies.clevr.data.question import Question
    >>> p = Program([ProgramNode("scene"), ProgramNode("count", (0,))])
    >>> s = dataset_stats([Question(0, "x.png", "How many?", p, "3", 1)])
    >>> s["depth"], s["answer"]
    ({'1': 1}, {'3': 1})
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from brickwork.studies.clevr.data.question import Question
from brickwork.studies.clevr.data.question_generator import FAMILIES


def _hist(counter: Counter[Any], numeric: bool = False) -> dict[str, int]:
    keys = sorted(counter, key=(lambda k: int(k)) if numeric else (lambda k: (-counter[k], str(k))))
    return {str(k): counter[k] for k in keys}


def dataset_stats(questions: Sequence[Question]) -> dict[str, Any]:
    """Histograms of depth, answer, family (name when known) and program length."""
    families = Counter(
        FAMILIES[q.question_family_index]
        if 0 <= q.question_family_index < len(FAMILIES)
        else str(q.question_family_index)
        for q in questions
    )
    per_family: dict[str, Counter[str]] = {}
    for q in questions:
        name = (
            FAMILIES[q.question_family_index]
            if 0 <= q.question_family_index < len(FAMILIES)
            else str(q.question_family_index)
        )
        per_family.setdefault(name, Counter())[str(q.answer)] += 1
    return {
        "n_questions": len(questions),
        "n_images": len({q.image_index for q in questions}),
        "depth": _hist(Counter(q.depth for q in questions), numeric=True),
        "answer": _hist(Counter(str(q.answer) for q in questions)),
        "family": _hist(families),
        "answer_by_family": {k: _hist(v) for k, v in sorted(per_family.items())},
        "program_length": _hist(Counter(len(q.program) for q in questions), numeric=True),
    }


def plot_stats(stats: dict[str, Any], path: str | Path) -> Path:
    """Bar charts of the depth, answer and family histograms, as one PNG."""

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from brickwork.modules import atomic_write_figure

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for ax, key, title in zip(
        axes, ("depth", "answer", "family"), ("program depth", "answer", "family")
    ):
        hist = stats[key]
        ax.bar(range(len(hist)), list(hist.values()), color="#4a7bb7")
        ax.set_xticks(range(len(hist)))
        ax.set_xticklabels(list(hist.keys()), rotation=90 if key != "depth" else 0, fontsize=7)
        ax.set_title(f"{title} ({stats['n_questions']} questions)")
    fig.tight_layout()
    return atomic_write_figure(fig, path)


__all__ = ["dataset_stats", "plot_stats"]
