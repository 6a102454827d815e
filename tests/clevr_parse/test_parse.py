"""The program generator: prefix grammar and its type constraint, constrained decoding
(never an invalid layout), unknown words, training through fit, registry round trip."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch

from brickwork.errors import DataError
from brickwork.registry import Registry
from brickwork.studies.clevr.data import Program, generate_questions, generate_scene
from brickwork.studies.clevr.nmn import nmn_kinds, program_layout
from brickwork.studies.clevr.parse.grammar import (
    ALLOWED,
    KINDS,
    MIN_COST,
    SIGNATURES,
    TOKEN_INDEX,
    TOKENS,
    from_prefix,
    prefix_tokens,
)
from brickwork.studies.clevr.parse.model import ProgramGenerator
from brickwork.studies.clevr.parse.parser import (
    load_generator,
    parse_question,
    register_generator,
)
from brickwork.studies.clevr.parse.train import (
    ParseConfig,
    evaluate_programs,
    train_program_generator,
    vocabulary,
)


def _questions(n_scenes: int = 6, per: int = 6, hi: int = 5, seed: int = 0) -> list:
    qs = []
    for i in range(n_scenes):
        qs += generate_questions(
            generate_scene(i, seed=seed), per, min_depth=1, max_depth=hi, seed=seed, phrasing="v2"
        )
    return qs


def test_prefix_round_trip_on_generated_programs() -> None:
    for q in _questions(4, 8, hi=12):
        assert from_prefix(prefix_tokens(q.program)) == q.program


def test_from_prefix_rejects_ill_typed_or_incomplete() -> None:
    with pytest.raises(DataError, match="expects"):
        from_prefix(["count", "unique", "scene"])  # count takes objects, unique gives object
    with pytest.raises(DataError, match="still open"):
        from_prefix(["count"])
    with pytest.raises(DataError, match="were given"):
        from_prefix(["count", "scene", "scene"])
    with pytest.raises(DataError, match="unknown program token"):
        from_prefix(["count", "filter_colour[red]", "scene"])


def _smallest(kind: str) -> list[str]:
    """The cheapest token sequence filling a port of ``kind``."""
    best = min(
        (t for t in TOKENS[1:] if ALLOWED[KINDS.index(kind), TOKENS.index(t)]),
        key=lambda t: 1 + sum(MIN_COST[k] for k in SIGNATURES[t][0]),
    )
    return [best, *itertools.chain.from_iterable(_smallest(k) for k in SIGNATURES[best][0])]


def test_every_allowed_token_gives_a_type_checked_layout() -> None:
    """The constraint derived from the signatures admits exactly well-typed layouts: every
    token the constraint allows at every port, completed minimally, builds a layout."""
    kinds = nmn_kinds("typed", channels=4)
    for k, kind in enumerate(KINDS):
        for t in range(1, len(TOKENS)):
            if not ALLOWED[k, t]:
                continue
            tok = TOKENS[t]
            body = [tok, *itertools.chain.from_iterable(_smallest(a) for a in SIGNATURES[tok][0])]
            if kind == "answer":
                prog = from_prefix(body)
            else:  # wrap the fragment in a root that has a port of this kind
                root = next(
                    r for r in TOKENS[1:] if SIGNATURES[r][0] and SIGNATURES[r][0][0] == kind
                )
                rest = [_smallest(a) for a in SIGNATURES[root][0][1:]]
                frag = [root, *body, *itertools.chain.from_iterable(rest)]
                while SIGNATURES[frag[0]][1] in ("objects", "object"):
                    frag = [
                        "count" if SIGNATURES[frag[0]][1] == "objects" else "query_color",
                        *frag,
                    ]
                prog = from_prefix(frag)
            assert program_layout(prog, kinds).nodes


def test_untrained_decodes_are_always_valid_layouts() -> None:
    """Random weights, greedy and sampled: every decode is a type-checked program and layout."""
    torch.manual_seed(0)
    qs = _questions(3, 6, hi=8)
    gen = ProgramGenerator(vocabulary([q.question for q in qs]), dim=16)
    kinds = nmn_kinds("typed", channels=4)
    toks = gen.encode_texts([q.question for q in qs])
    for sample in (False, True):
        dec = gen.decode(toks, sample=sample, generator=torch.Generator().manual_seed(1))
        for row in dec.tokens:
            prog = from_prefix(row)
            assert isinstance(prog, Program) and program_layout(prog, kinds).nodes
        assert torch.isfinite(dec.log_prob).all()


def test_node_budget_forces_completion_and_parse_refuses() -> None:
    torch.manual_seed(0)
    gen = ProgramGenerator(["are", "there", "any", "red", "cubes"], dim=8)
    ids, _ = gen.encode_text("are there any red cubes")
    dec = gen.decode(ids[None], max_nodes=[2])
    assert len(dec.tokens[0]) == 2 and from_prefix(dec.tokens[0]).depth == 1
    # with 2 nodes the only programs are exist/count(scene): when the model wanted more,
    # parse_question refuses instead of returning the cut program
    if dec.forced[0]:
        with pytest.raises(DataError, match="cannot be parsed into a valid layout"):
            parse_question(gen, "are there any red cubes", max_nodes=2)


def test_unknown_words_are_named() -> None:
    gen = ProgramGenerator(["how", "many", "things", "are", "there"], dim=8)
    try:  # an untrained generator may not close its program within the budget
        assert parse_question(gen, "How many glorbs are there?").unknown_words == ["glorbs"]
    except DataError as exc:
        assert "cannot be parsed" in str(exc) and "unknown words: glorbs" in str(exc)
    with pytest.raises(DataError, match="no word the program generator knows"):
        parse_question(gen, "Glorb zib?")
    with pytest.raises(DataError, match="no words at all"):
        parse_question(gen, "?!")


def test_training_learns_the_labelled_programs_and_registry_round_trip(tmp_path: Path) -> None:
    qs = _questions(8, 6, hi=3)
    scenes = {i: generate_scene(i, seed=0) for i in range(8)}
    cfg = ParseConfig(
        n_programs=30, sup_steps=150, rl_steps=3, rl_batch=8, dim=32, lr=5e-3, self_train=False
    )
    gen, rep = train_program_generator(qs, scenes, cfg, val=(qs[:20], scenes))
    assert rep["labelled"] == 30 and rep["answers_only"] == len(qs) - 30
    assert rep["supervised"]["steps"] == 150 and rep["answers"]["steps"] == 3
    assert rep["data_digest"] and rep["config"]["n_programs"] == 30
    ev = evaluate_programs(gen, qs, scenes)
    assert ev["all"] > 0.3  # far above chance (exact programs of depth 1-3)
    reg = Registry(tmp_path / "reg")
    name = register_generator(reg, gen, "transducer-test", rep, {"exact": ev["all"]})
    again = load_generator(reg, name)
    toks = gen.encode_texts([q.question for q in qs[:10]])
    assert again.decode(toks).tokens == gen.decode(toks).tokens
    # the filter words its beam keeps (learned from the labelled questions) travel too
    assert again.config["filter_words"] == gen.config["filter_words"] == rep["filter_words"]
    assert again.config["cue_words"] == rep["cue_words"]
    gen.set_filter_words({"cube": "filter_shape[cube]", "cubes": "filter_shape[cube]"})
    said = next(w for w in ("color", "size", "shape", "material") if w in gen.index)
    gen.set_cue_words({said: said})
    moved = load_generator(reg, register_generator(reg, gen, "transducer-fw", rep, {}))
    assert (
        moved.filter_ids == gen.filter_ids == {gen.index["cube"]: TOKEN_INDEX["filter_shape[cube]"]}
    )
    assert moved.cue_ids == gen.cue_ids == {gen.index[said]: said}
    with pytest.raises(DataError, match="not a cue"):
        gen.set_cue_words({said: "colour"})
    assert (tmp_path / "reg").is_dir() and name in reg
    # a trained generator parses a question with a word it never saw, and names it
    parsed = parse_question(gen, "How many glorbs are there?", max_nodes=40)
    assert parsed.unknown_words == ["glorbs"] and parsed.program.answers_question
    # the confidence is the program's probability: a rule the words impose (here a
    # made-up filter word) that the program then breaks, or bends to, lowers it
    sure = parse_question(gen, "How many cubes are there?", max_nodes=40)
    assert math.isclose(sure.confidence, math.exp(sure.log_prob)) and sure.confidence > 0
    gen.set_filter_words({"cube": "filter_color[red]"})
    bent = parse_question(gen, "How many cubes are there?", max_nodes=40)
    assert bent.confidence < sure.confidence
