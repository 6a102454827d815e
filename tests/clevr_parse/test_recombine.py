"""Recombination of labelled questions: object phrases found from the alignment, one
swapped for a relative phrase of another question (words and program together), the
results valid programs that nest deeper than the questions they came from."""

from __future__ import annotations

from dataclasses import replace

import torch

from brickwork.studies.clevr.data import generate_questions, generate_scene
from brickwork.studies.clevr.parse.grammar import TOKENS, from_prefix
from brickwork.studies.clevr.parse.model import BOS, EOS
from brickwork.studies.clevr.parse.recombine import (
    Phrasal,
    nouns_of,
    object_phrases,
    recombine,
    substitute,
    subtree_end,
)
from brickwork.studies.clevr.parse.train import (
    ParseConfig,
    labelled_indices,
    recombined_samples,
    train_program_generator,
)
from brickwork.studies.clevr.parse.transducer import canonical_order

# word ids: 1 <bos>, 2 <eos>, 10 how, 11 many, 12 red, 13 cube, 14 plural mark, 15 thing,
# 16 are, 17 either, 18 or, 19 sphere, 20 left, 21 of, 22 the
PLURAL = frozenset({14})

# "how many things are either red cubes or spheres"
EITHER = Phrasal(
    (1, 10, 11, 15, 14, 16, 17, 12, 13, 14, 18, 19, 14, 2),
    (
        "count",
        "union",
        "filter_color[red]",
        "filter_shape[cube]",
        "scene",
        "filter_shape[sphere]",
        "scene",
    ),
    (-1, 6, 7, 8, 9, 11, 13),
    PLURAL,
)
# "how many cubes left of the red cube"
LEFT_OF = Phrasal(
    (1, 10, 11, 13, 14, 20, 21, 22, 12, 13, 2),
    (
        "count",
        "filter_shape[cube]",
        "relate[left]",
        "unique",
        "filter_color[red]",
        "filter_shape[cube]",
        "scene",
    ),
    (-1, 3, 5, 7, 8, 9, 10),
    PLURAL,
)
# "how many things left of the cube": a relative phrase with no filter, found by its noun
THINGS_LEFT = Phrasal(
    (1, 10, 11, 15, 14, 20, 21, 22, 13, 2),
    ("count", "relate[left]", "unique", "filter_shape[cube]", "scene"),
    (-1, 5, 7, 8, 9),
    PLURAL,
)
# "how many red things": "thing" ends a bare phrase (the word after the last filter)
RED_THINGS = Phrasal(
    (1, 10, 11, 12, 15, 14, 2), ("count", "filter_color[red]", "scene"), (-1, 3, 6), PLURAL
)


def _depth(tokens: tuple[str, ...]) -> int:
    """Nesting of relations and set operations (the program's chain of units)."""
    return sum(t.startswith(("relate", "same_", "union", "intersect")) for t in tokens)


def test_phrases_are_read_from_the_alignment() -> None:
    spans = object_phrases(EITHER)
    assert [(s.tokens, s.words, s.relative, s.plural) for s in spans] == [
        ((2, 5), (7, 9), False, True),  # "red cube -s"
        ((5, 7), (11, 12), False, True),  # "sphere -s"
    ]
    rel = object_phrases(LEFT_OF)
    assert [(s.tokens, s.words, s.relative) for s in rel] == [
        ((1, 7), (3, 9), True),  # "cube -s left of the red cube"
        ((4, 7), (8, 9), False),  # "red cube"
    ]
    assert subtree_end(LEFT_OF.tokens, 2) == 7


def test_a_phrase_holding_a_word_of_another_token_is_not_used() -> None:
    # "union" aligned inside the first branch's words: the branch's extent is unclear
    bad = replace(EITHER, align=(-1, 8, 7, 8, 9, 11, 13))
    assert [s.tokens for s in object_phrases(bad)] == [(5, 7)]


def test_relative_phrases_without_filters_need_the_learned_nouns() -> None:
    # without nouns only the bare "cube" is found
    assert [(s.tokens, s.relative) for s in object_phrases(THINGS_LEFT)] == [((3, 5), False)]
    assert nouns_of([EITHER, LEFT_OF, THINGS_LEFT]) == {13, 19}  # cube, sphere
    nouns = nouns_of([EITHER, LEFT_OF, THINGS_LEFT, RED_THINGS])
    assert nouns == {13, 15, 19}  # and thing: the words that end bare phrases
    spans = object_phrases(replace(THINGS_LEFT, nouns=nouns))
    rel = [s for s in spans if s.relative]
    assert [(s.tokens, s.words, s.plural) for s in rel] == [((1, 5), (3, 8), True)]


def test_substitution_swaps_words_and_subtree_together() -> None:
    site = object_phrases(EITHER)[1]  # "sphere -s" under the union
    donor = object_phrases(LEFT_OF)[0]  # "cube -s left of the red cube"
    made = substitute(EITHER, site, LEFT_OF, donor)
    # how many things are either red cubes or cubes left of the red cube
    assert made.words == (1, 10, 11, 15, 14, 16, 17, 12, 13, 14, 18, 13, 14, 20, 21, 22, 12, 13, 2)
    assert made.tokens == (
        "count",
        "union",
        "filter_color[red]",
        "filter_shape[cube]",
        "scene",
        "filter_shape[cube]",
        "relate[left]",
        "unique",
        "filter_color[red]",
        "filter_shape[cube]",
        "scene",
    )
    from_prefix(canonical_order(list(made.tokens)))  # a valid program
    # the alignment moved with the words: the new phrase is found where it now is
    spans = object_phrases(made)
    assert any(s.relative and s.tokens == (5, 11) and s.words == (11, 17) for s in spans)
    assert made.align[6:10] == (13, 15, 16, 17)  # left, the, red, cube: moved by 8 words


def test_recombine_nests_deeper_and_is_seeded() -> None:
    pool = [EITHER, LEFT_OF, THINGS_LEFT, RED_THINGS]
    nouns = nouns_of(pool)
    pool = [replace(x, nouns=nouns) for x in pool]
    made = recombine(pool, 30, seed=4)
    assert len(made) == 30
    assert [m.tokens for m in made] == [m.tokens for m in recombine(pool, 30, seed=4)]
    for m in made:
        program = from_prefix(canonical_order(list(m.tokens)))
        assert program.answers_question
        assert m.words[0] == 1 and m.words[-1] == 2 and 2 not in m.words[1:-1]
        assert len(m.align) == len(m.tokens)
        assert all(0 < p < len(m.words) for p in m.align[1:])
    assert max(_depth(m.tokens) for m in made) > max(_depth(x.tokens) for x in pool)
    # nothing to recombine without a relative phrase
    assert recombine([EITHER], 5, seed=0) == []


def test_nest_recombines_made_questions_again_when_labelled_ones_are_many() -> None:
    """With many labelled questions a made one is rarely drawn again, so it stays one
    clause deeper than they are; ``nest`` draws from the made ones on purpose."""
    pool = [EITHER, LEFT_OF, THINGS_LEFT, RED_THINGS]
    nouns = nouns_of(pool)
    pool = [replace(x, nouns=nouns) for x in pool] * 200
    flat = recombine(pool, 60, seed=3)
    deep = recombine(pool, 60, seed=3, nest=0.8)
    assert len(flat) == len(deep) == 60
    mean = lambda made: sum(_depth(m.tokens) for m in made) / len(made)  # noqa: E731
    assert mean(deep) > mean(flat) + 0.5
    assert max(_depth(m.tokens) for m in deep) > max(_depth(m.tokens) for m in flat)
    for m in deep:
        assert from_prefix(canonical_order(list(m.tokens))).answers_question
    # nest = 0 draws as before: the same questions as without the argument
    assert [m.tokens for m in recombine(pool, 20, seed=5, nest=0.0)] == [
        m.tokens for m in recombine(pool, 20, seed=5)
    ]


def test_training_with_recombination_makes_valid_deeper_labelled_rows() -> None:
    """End to end on generated questions: the trained transducer's alignment gives the
    phrases; every recombined row is a type-checked program, deeper than the labelled
    ones on average, and the second supervised stage trains on them."""
    qs = []
    for i in range(10):
        qs += generate_questions(
            generate_scene(i, seed=0), 8, min_depth=1, max_depth=5, seed=0, phrasing="v2"
        )
    scenes = {i: generate_scene(i, seed=0) for i in range(10)}
    cfg = ParseConfig(
        n_programs=60,
        sup_steps=200,
        rl_steps=0,
        dim=32,
        lr=5e-3,
        recombine=40,
        recombine_steps=10,
        root_lexical=True,
        self_train=False,
    )
    gen, rep = train_program_generator(qs, scenes, cfg)
    assert rep["recombined"]["questions"] == 40 and rep["recombined"]["steps"] == 10
    # a 200-step model aligns roughly: most of CLEVR's eight nouns are found
    real = {"ball", "block", "cube", "cylinder", "item", "object", "sphere", "thing"}
    assert len(real & set(rep["recombined"]["nouns"])) >= 5
    idx = labelled_indices(len(qs), 60, 0, select="mixed", texts=[q.question for q in qs])
    labelled = [qs[i] for i in idx]
    made, _ = recombined_samples(gen, labelled, 40, seed=1)
    assert len(made) == 40
    depths = []
    for row in range(len(made)):
        ids = [int(t) for t in made["targets"][row] if int(t) != 0]
        toks = [TOKENS[t] for t in ids]
        program = from_prefix(canonical_order(toks))
        assert program.answers_question
        depths.append(_depth(tuple(toks)))
        words = [int(w) for w in made["tokens"][row] if int(w) != 0]
        assert words[0] == BOS and words[-1] == EOS
    lab_depth = [_depth(tuple(gen.target_tokens(q.program))) for q in labelled]
    assert sum(depths) / len(depths) > sum(lab_depth) / len(lab_depth)


def test_the_mixture_keeps_the_recombined_share_either_way() -> None:
    from brickwork.studies.clevr.parse.train import _mixture
    from brickwork.training import Samples

    def rows(n: int, width: int, mark: int) -> Samples:
        return Samples({"tokens": torch.full((n, width), mark), "targets": torch.ones(n, 3)})

    few = _mixture(rows(270, 5, 1), rows(2000, 9, 2), 0.75)  # labelled repeated
    assert few is not None and few["tokens"].shape[1] == 9
    made = int((few["tokens"][:, 0] == 2).sum())
    assert made == 2000 and len(few) == 2000 + 2 * 270
    many = _mixture(rows(10000, 5, 1), rows(2000, 9, 2), 0.75)  # recombined repeated
    assert many is not None and int((many["tokens"][:, 0] == 2).sum()) == 15 * 2000
    assert _mixture(rows(10, 5, 1), rows(0, 9, 2), 0.75) is None


def test_either_or_phrases_are_donors_too() -> None:
    # "how many things are either red cubes or spheres": the union phrase starts at
    # its noun "thing" (no filter) and ends with the second branch
    nouns = nouns_of([EITHER, LEFT_OF, THINGS_LEFT, RED_THINGS])
    spans = object_phrases(replace(EITHER, nouns=nouns))
    either = [s for s in spans if s.relative]
    assert [(s.tokens, s.words, s.plural) for s in either] == [((1, 7), (3, 12), True)]
    # swapped into the bare "cube" of "how many things left of the cube" ... "the
    # things are either red cubes or spheres" keeps every token of the union
    site = next(s for s in object_phrases(THINGS_LEFT) if not s.relative)
    made = substitute(THINGS_LEFT, site, EITHER, either[0])
    assert made.tokens[3:] == EITHER.tokens[1:]
    from_prefix(canonical_order(list(made.tokens)))
