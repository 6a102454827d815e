from __future__ import annotations

from collections import Counter

import pytest

from brickwork.studies.clevr.data import (
    FAMILIES,
    Scene,
    execute,
    execute_trace,
    generate_questions,
    generate_scene,
)


@pytest.fixture(scope="module")
def scenes() -> list[Scene]:
    return [generate_scene(i, seed=11) for i in range(30)]


def test_questions_are_well_posed_and_answers_match_executor(scenes: list[Scene]) -> None:
    for s in scenes:
        qs = generate_questions(s, 10, min_depth=1, max_depth=25, seed=11)
        assert len(qs) == 10
        assert len({q.program for q in qs}) == 10  # distinct per scene
        for q in qs:
            assert execute(q.program, s) == q.answer
            # every unique gets exactly one object (execute_trace raises otherwise)
            trace = execute_trace(q.program, s)
            assert all(
                isinstance(trace[i], int) for i, n in enumerate(q.program) if n.function == "unique"
            )
            assert q.question.endswith("?") and q.question[0].isupper()
            assert 0 <= q.question_family_index < len(FAMILIES)


@pytest.mark.parametrize("depth", [1, 2, 3, 5, 8, 13, 20, 25, 30])
def test_depth_control_hits_requested_depth(scenes: list[Scene], depth: int) -> None:
    got = [
        q.depth
        for s in scenes[:8]
        for q in generate_questions(s, 3, min_depth=depth, max_depth=depth, seed=1)
    ]
    assert got and set(got) == {depth}


def test_depths_roughly_uniform_and_families_all_used(scenes: list[Scene]) -> None:
    qs = [q for s in scenes for q in generate_questions(s, 10, min_depth=4, max_depth=8, seed=2)]
    depths = Counter(q.depth for q in qs)
    assert set(depths) == {4, 5, 6, 7, 8}
    assert min(depths.values()) > 0.5 * max(depths.values())
    assert set(Counter(q.question_family_index for q in qs)) == set(range(len(FAMILIES)))


def test_yes_no_answers_are_balanced(scenes: list[Scene]) -> None:
    qs = [q for s in scenes for q in generate_questions(s, 10, min_depth=2, max_depth=10, seed=5)]
    answers = Counter(q.answer for q in qs if q.answer in ("yes", "no"))
    assert 0.35 < answers["yes"] / (answers["yes"] + answers["no"]) < 0.65


def test_families_and_determinism(scenes: list[Scene]) -> None:
    a = generate_questions(scenes[0], 6, max_depth=9, families=["count", "less_than"], seed=4)
    b = generate_questions(scenes[0], 6, max_depth=9, families=["count", "less_than"], seed=4)
    assert a == b
    assert {FAMILIES[q.question_family_index] for q in a} <= {"count", "less_than"}
    with pytest.raises(ValueError, match="unknown question family"):
        generate_questions(scenes[0], 1, families=["count_things"])
