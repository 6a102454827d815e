"""The self-trained stage: answers-only questions labelled by the generator's own
decodes, kept only where the symbolic executor answers them right."""

from __future__ import annotations

from dataclasses import replace

from brickwork.studies.clevr.data import execute, generate_questions, generate_scene
from brickwork.studies.clevr.parse.checks import LabelChecks
from brickwork.studies.clevr.parse.grammar import prefix_tokens
from brickwork.studies.clevr.parse.model import words_of
from brickwork.studies.clevr.parse.train import (
    ParseConfig,
    labelled_indices,
    pseudo_labelled,
    train_program_generator,
)


def _data() -> tuple[list, dict]:
    qs = []
    for i in range(10):
        qs += generate_questions(
            generate_scene(i, seed=0), 8, min_depth=1, max_depth=4, seed=0, phrasing="v2"
        )
    return qs, {i: generate_scene(i, seed=0) for i in range(10)}


def test_pseudo_labels_are_checked_by_the_answer_and_train_a_stage() -> None:
    qs, scenes = _data()
    cfg = ParseConfig(
        n_programs=50,
        sup_steps=150,
        rl_steps=0,
        dim=32,
        lr=5e-3,
        recombine=20,
        recombine_steps=5,
        self_train=True,
        self_rounds=2,
        self_steps=6,
    )
    gen, rep = train_program_generator(qs, scenes, cfg)
    assert rep["self"]["steps"] == 12 and len(rep["self"]["rounds"]) == 2
    for r in rep["self"]["rounds"]:
        assert r["decoded"] == len(qs) - 50 and r["steps"] == 6
        assert 0 < r["kept"] <= r["decoded"]
        assert 0.0 <= r["precision"] <= 1.0
        # recombination makes its 20 questions when the pool has clause phrases to give
        made = r["recombined"]
        assert made["phrases"] > 0
        assert made["questions"] == (20 if made["relative_phrases"] else 0)

    idx = set(labelled_indices(len(qs), 50, 0, select="mixed", texts=[q.question for q in qs]))
    unlabelled = [q for i, q in enumerate(qs) if i not in idx]
    kept, report = pseudo_labelled(gen, unlabelled, scenes)
    assert report["kept"] == len(kept) > 0
    for q in kept:  # every label the generator gave itself answers its question
        assert execute(q.program, scenes[q.image_index]) == q.answer
    # a wrong answer keeps nothing: the answer, not the question's own program, decides
    wrong = [replace(q, answer="no such answer") for q in unlabelled]
    assert pseudo_labelled(gen, wrong, scenes)[1]["kept"] == 0
    # checks the labelled questions fix from the words reject labels the answer passed:
    # a check every kept program fails rejects them all, and says which check
    frames = {tuple(words_of(q.question)[:2]): frozenset({"<none>"}) for q in kept}
    none, rep_none = pseudo_labelled(gen, unlabelled, scenes, checks=LabelChecks(frames=frames))
    assert not none and rep_none["rejected"] == {"filter": 0, "cue": 0, "frame": len(kept)}
    assert pseudo_labelled(gen, unlabelled, scenes, checks=LabelChecks())[1]["kept"] == len(kept)
    assert all(r["rejected"]["filter"] >= 0 for r in rep["self"]["rounds"])  # reported
    # the words that name a filter in five labelled questions travel with the generator,
    # and its beam keeps their filters: on deeper questions than it was trained on, every
    # decode it charged nothing for has them all, far more often than without the words
    lab = [q for i, q in enumerate(qs) if i in idx]
    pairs = [(q.question, prefix_tokens(q.program)) for q in lab]
    named = LabelChecks.from_labelled(pairs, min_count=5).filter_words
    assert named and rep["filter_words"] == gen.config["filter_words"] == named
    deep = []
    for i in range(20, 26):
        deep += generate_questions(
            generate_scene(i, seed=1), 6, min_depth=5, max_depth=8, seed=1, phrasing="v2"
        )
    checks = LabelChecks(filters={w: (t, 1, 1) for w, t in named.items()})
    toks = gen.encode_texts([q.question for q in deep])
    held = gen.decode(toks)
    gen.set_filter_words({})
    free = gen.decode(toks)
    gen.set_filter_words(named)
    charged = [s < -gen.filter_penalty / 2 for s in held.log_prob.tolist()]
    has = [checks.check(q.question, t)[0] != "filter" for q, t in zip(deep, held.tokens)]
    assert all(h or c for h, c in zip(has, charged))
    lacks = sum(checks.check(q.question, t)[0] == "filter" for q, t in zip(deep, free.tokens))
    assert sum(has) > len(deep) - lacks
    # so do the cue words, and every uncharged decode has their tokens
    cues = LabelChecks.from_labelled(pairs, min_count=5).cue_words
    assert cues and rep["cue_words"] == gen.config["cue_words"] == cues
    by_cue = LabelChecks(cues={w: (c, 1, 1) for w, c in cues.items()})
    reads = [by_cue.check(q.question, t)[0] is None for q, t in zip(deep, held.tokens)]
    assert all(r or c for r, c in zip(reads, charged))
    gen.set_cue_words({})
    free_cue = gen.decode(toks)
    gen.set_cue_words(cues)
    unread = sum(by_cue.check(q.question, t)[0] is not None for q, t in zip(deep, free_cue.tokens))
    assert sum(reads) >= len(deep) - unread
    # and no decode is that sure of every decision
    assert pseudo_labelled(gen, unlabelled, scenes, min_prob=1.01)[1]["kept"] == 0
    # the generator is left in the mode it was in
    gen.train()
    pseudo_labelled(gen, unlabelled[:4], scenes)
    assert gen.training
