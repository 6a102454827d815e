"""Parse one question: text → type-checked CLEVR program (and its layout), or a clear
error; and storing generators in a registry.

Example:
    >>> from brickwork.studies.clevr.parse.model import ProgramGenerator
    >>> gen = ProgramGenerator(words=["how", "many", "things", "are", "there"], dim=8)
    >>> gen.encode_text("How many zorbs are there?")[1]
    ['zorbs']
    >>> try:
    ...     parse_question(gen, "Zorb glorp?")
    ... except DataError as exc:
    ...     print(str(exc)[:60])
    question 'Zorb glorp?': no word the program generator knows
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from brickwork.errors import DataError
from brickwork.registry import Registry
from brickwork.studies.clevr.data import Program
from brickwork.studies.clevr.parse.grammar import from_prefix
from brickwork.studies.clevr.parse.model import ProgramGenerator, words_of

log = logging.getLogger(__name__)
#: registry kind prefix of program generators
REGISTRY_KIND = "program_generator"


@dataclass
class Parsed:
    """A parsed question.

    Attributes:
        program: the type-checked program (CLEVR post-order nodes).
        prefix: its tokens in the order they were decoded.
        unknown_words: words of the question the generator has no embedding for (they
            were read as the unknown token).
        confidence: the program's probability under the generator, ``exp(log_prob)``
            (the transducer's beam sums it over the program's alignments to the words,
            and a program that leaves a filter or cue word unread pays its penalty, so
            it is near 0 then). Not the smallest probability of a decision: with the
            alignments summed, one alignment may take an unlikely step that another
            does not.
        log_prob: the program's log-probability under the constraint.
    """

    program: Program
    prefix: list[str]
    unknown_words: list[str] = field(default_factory=list)
    confidence: float = 1.0
    log_prob: float = 0.0


def parse_question(
    gen: ProgramGenerator, text: str, *, max_nodes: int | None = None, check_layout: Any = None
) -> Parsed:
    """Parse ``text`` into a program under the type constraint.

    Unknown words are read as the unknown token and listed in ``unknown_words`` (and
    logged). ``check_layout``: an NMN module vocabulary (``Kinds``); the program's layout
    is built with it as a last check.

    Raises:
        DataError: the question has no known word; or the constrained decode had to cut
            the program short to stay within ``max_nodes`` (default: twice the number of
            words plus 8) — the question cannot be parsed into a valid layout; no
            program is returned then.
    """
    words = words_of(text)
    ids, unknown = gen.encode_text(text)
    if unknown:
        log.warning("question %r: unknown words read as <unk>: %s", text, ", ".join(unknown))
    if len(unknown) == len(words):
        raise DataError(
            f"question {text!r}: no word the program generator knows"
            + (f" (unknown: {', '.join(unknown)})" if unknown else " (no words at all)")
            + "; rephrase it with the words of CLEVR questions"
        )
    budget = max_nodes if max_nodes is not None else 2 * len(words) + 8
    gen.eval()
    with torch.no_grad():
        dec = gen.decode(ids.unsqueeze(0), max_nodes=[budget])
    if dec.forced[0]:
        raise DataError(
            f"question {text!r}: cannot be parsed into a valid layout within {budget} "
            "program nodes (the decode kept opening ports: the text does not read as a "
            "CLEVR question"
            + (f"; unknown words: {', '.join(unknown)}" if unknown else "")
            + "); rephrase it, or raise max_nodes"
        )
    program = from_prefix(dec.tokens[0], where=f"question {text!r}")
    if check_layout is not None:
        from brickwork.studies.clevr.nmn.layouts import program_layout

        program_layout(program, check_layout)
    log_prob = float(dec.log_prob[0].item())
    return Parsed(program, dec.tokens[0], unknown, math.exp(log_prob), log_prob)


def register_generator(
    registry: Registry,
    gen: ProgramGenerator,
    name: str,
    report: Mapping[str, Any],
    metrics: Mapping[str, Any] | None = None,
) -> str:
    """Store ``gen`` (weights in safetensors, config, metrics, lineage) as
    ``program_generator.<name>``; returns the registry name."""
    full = f"{REGISTRY_KIND}.{name}"
    cfg = dict(report.get("config", {}))
    registry.put(
        full,
        gen,
        mode="direct",
        hyperparameters={k: v for k, v in cfg.items() if isinstance(v, (int, float, str))},
        metrics=dict(metrics or {}),
        lineage={
            "study": "clevr-parse",
            "labelled": report.get("labelled"),
            "answers_only": report.get("answers_only"),
            "stages": [s for s in ("supervised", "answers") if s in report],
        },
        data_digest=str(report.get("data_digest", "")),
    )
    return full


def load_generator(registry: Registry, ref: str) -> ProgramGenerator:
    """A registered program generator (``program_generator.<name>`` or the name).

    Raises:
        DataError: the entry is not a program generator.
    """
    if not ref.startswith(f"{REGISTRY_KIND}."):
        ref = f"{REGISTRY_KIND}.{ref}"
    module = registry.load(ref)
    if not isinstance(module, ProgramGenerator):
        raise DataError(
            f"{registry.root}: {ref} is a {type(module).__name__}, not a program generator"
        )
    module.eval()
    return module


__all__ = ["Parsed", "REGISTRY_KIND", "load_generator", "parse_question", "register_generator"]
