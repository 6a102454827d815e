"""The checks a self-given label must pass besides the answer (``parse.checks``): learned
from labelled questions, they pass the questions' own programs and reject the two kinds
of wrong labels an answer lets through."""

from __future__ import annotations

from brickwork.studies.clevr.data import generate_questions, generate_scene
from brickwork.studies.clevr.parse.checks import LabelChecks
from brickwork.studies.clevr.parse.grammar import CUE_TOKENS, prefix_tokens
from brickwork.studies.clevr.parse.model import words_of


def _labelled(n_scenes: int, seed: int) -> list[tuple[str, list[str]]]:
    out = []
    for i in range(n_scenes):
        scene = generate_scene(i, seed=seed)
        for q in generate_questions(scene, 10, min_depth=1, max_depth=5, seed=seed, phrasing="v2"):
            out.append((q.question, prefix_tokens(q.program)))
    return out


def test_checks_learned_from_labelled_questions_pass_the_true_programs_of_others() -> None:
    checks = LabelChecks.from_labelled(_labelled(30, seed=5))
    assert checks.filters["matte"][0] == "filter_material[rubber]"
    assert checks.filters["cubes"][0] == "filter_shape[cube]"
    assert "is" not in checks.filters and "the" not in checks.filters
    others = _labelled(30, seed=6)
    assert all(checks.check(q, p)[0] not in ("filter", "cue") for q, p in others)
    # a frame the labelled questions never opened with the family is the only rejection
    frames = [checks.check(q, p) for q, p in others if checks.check(q, p)[0] == "frame"]
    assert len(frames) < len(others) // 10


def test_checks_reject_a_left_out_filter_and_a_family_the_frame_never_had() -> None:
    labelled = _labelled(30, seed=5)
    checks = LabelChecks.from_labelled(labelled)
    shown = 0
    for q, p in _labelled(30, seed=6):
        named = [checks.filters[w][0] for w in words_of(q) if w in checks.filters]
        if not named or checks.check(q, p)[0] is not None:
            continue
        dropped = list(p)
        dropped.remove(named[0])
        name, why = checks.check(q, dropped)
        assert name == "filter" and why is not None and named[0] in why
        shown += 1
    assert shown > 20
    exist_frames = {k for k, v in checks.frames.items() if "exist" not in v}
    q, p = next(
        (q, p)
        for q, p in labelled
        if tuple(words_of(q)[:2]) in exist_frames and not set(words_of(q)) & set(checks.cues)
    )
    name, why = checks.check(q, ["exist", *p[1:]])
    assert name == "frame" and why is not None and "exist never follows" in why
    assert checks.check(q, p) == (None, None)


def test_cue_words_are_learned_and_reject_a_program_without_their_tokens() -> None:
    labelled = _labelled(30, seed=5)
    checks = LabelChecks.from_labelled(labelled)
    attributes = ("color", "material", "shape", "size")
    assert {w: checks.cues[w][0] for w in attributes} == {a: a for a in attributes}
    assert checks.cues["either"][0] == "union" and checks.cues["both"][0] == "intersect"
    # words of every attribute ("same", "as", "the") cue none; no word is both kinds
    assert "same" not in checks.cues and "the" not in checks.cues
    assert not set(checks.cues) & set(checks.filters)
    assert all(cue in CUE_TOKENS for cue, _, _ in checks.cues.values())
    swapped = cut = 0
    for q, p in _labelled(120, seed=6):
        if checks.check(q, p)[0] is not None:
            continue
        if "same_color" in p and sum(t in CUE_TOKENS["color"] for t in p) == words_of(q).count(
            "color"
        ):  # as many color tokens as the words say: one read as size fails
            wrong = [("same_size" if t == "same_color" else t) for t in p]
            name, why = checks.check(q, wrong)
            assert name == "cue" and why is not None and "'color'" in why
            swapped += 1
        if p.count("union") == words_of(q).count("either") > 0:
            i = p.index("union")  # a union with its first branch dropped: one too few
            name, why = checks.check(q, [*p[:i], *p[i + 1 :]])
            assert name == "cue" and why is not None and "union" in why
            cut += 1
    assert swapped > 3 and cut > 3
