"""Phrasing v2 of the question generator: same programs, varied text, template ids, and
the default (v1) output unchanged."""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path

import pytest

from brickwork.errors import DataError
from brickwork.studies.clevr.data import (
    ClevrDataset,
    Question,
    Scene,
    execute,
    generate_dataset,
    generate_questions,
    generate_scene,
)
from brickwork.studies.clevr.data.executor import SceneIndex
from brickwork.studies.clevr.data.phrasing import (
    ADJ,
    HELD_OUT,
    NOUN,
    REL,
    TEMPLATES,
    render_question,
    template_ids,
)
from brickwork.studies.clevr.data.question_generator import FAMILIES, _Builder

#: sha256 of the v1 questions of scenes 0..5 (seed 3, 6 questions, depth 1..9), as the
#: generator wrote them before phrasing v2 existed (commit a571f9b)
V1_DIGEST = "84a01c12e2a5e25e4952cd825376feddf58ffaac6f86caa4417597590a7974ad"


def _questions(phrasing: str, templates: list[str] | None = None) -> list[Question]:
    qs = []
    for i in range(6):
        qs += generate_questions(
            generate_scene(i, seed=3),
            6,
            min_depth=1,
            max_depth=9,
            seed=3,
            phrasing=phrasing,
            templates=templates,
        )
    return qs


def test_default_output_is_byte_identical_to_v1() -> None:
    qs = _questions("v1")
    blob = json.dumps([q.to_clevr_json() for q in qs]).encode()
    assert hashlib.sha256(blob).hexdigest() == V1_DIGEST
    default = []
    for i in range(6):
        default += generate_questions(
            generate_scene(i, seed=3), 6, min_depth=1, max_depth=9, seed=3
        )
    assert [q.to_clevr_json() for q in default] == [q.to_clevr_json() for q in qs]
    assert all("template_id" not in q.extra for q in qs)


def test_v2_same_programs_varied_text_and_template_ids() -> None:
    v1, v2 = _questions("v1"), _questions("v2")
    assert [q.program for q in v1] == [q.program for q in v2]
    assert [q.answer for q in v1] == [q.answer for q in v2]
    assert sum(a.question != b.question for a, b in zip(v1, v2)) > len(v1) // 3
    for q in v2:
        family, k = q.extra["template_id"].split(":")
        assert FAMILIES[q.question_family_index] == family
        assert 0 <= int(k) < len(TEMPLATES[family])
    words = {w for q in v2 for w in re.findall(r"[a-z]+", q.question.lower())}
    assert {"ball", "block", "object", "item"} & words  # synonyms show up
    assert len({q.extra["template_id"] for q in v2}) > 15


def test_v2_template_filter_and_held_out() -> None:
    train = [t for t in template_ids() if t not in HELD_OUT]
    qs = _questions("v2", templates=train)
    assert qs and all(q.extra["template_id"] not in HELD_OUT for q in qs)
    only = _questions("v2", templates=sorted(HELD_OUT))
    assert only and all(q.extra["template_id"] in HELD_OUT for q in only)
    assert len(HELD_OUT) == len(FAMILIES)
    assert {t.split(":")[0] for t in HELD_OUT} == set(FAMILIES)
    with pytest.raises(ValueError, match="unknown template id"):
        _questions("v2", templates=["count:99"])
    with pytest.raises(ValueError, match="phrasing"):
        _questions("v3")
    with pytest.raises(ValueError, match="needs phrasing='v2'"):
        _questions("v1", templates=["count:0"])


def test_held_out_template_words_occur_in_training_templates() -> None:
    def words(text: str) -> set[str]:
        return set(re.findall(r"[a-z]+", re.sub(r"\{[^}]*\}", " ", text).lower()))

    def template(tid: str) -> str:
        family, k = tid.split(":")
        return TEMPLATES[family][int(k)]

    phrases = [w for table in (NOUN, ADJ, REL) for options in table.values() for w in options]
    seen = set().union(*(words(template(t)) for t in template_ids() if t not in HELD_OUT))
    seen |= set().union(*(words(p) for p in phrases))
    for t in HELD_OUT:
        assert words(template(t)) <= seen, (t, words(template(t)) - seen)


def test_plain_templates_0_and_1_reproduce_v1_text() -> None:
    """Every v1 sentence is one of the v2 templates 0/1 with the plain phrase choices."""
    scene = generate_scene(4, seed=1)
    builder = _Builder(SceneIndex(scene), random.Random(5))
    n = 0
    for q in generate_questions(scene, 10, min_depth=1, max_depth=7, seed=1):
        family = FAMILIES[q.question_family_index]
        # rebuild the tree from the program to render it
        root = _tree(q.program)
        texts = {render_question(family, root, k, random.Random(0), plain=True) for k in (0, 1)}
        assert q.question in texts
        n += 1
    assert n == 10 and builder is not None


def _tree(program):  # the generator's expression tree of a program (values only)
    from brickwork.studies.clevr.data.question_generator import _E

    nodes: list[_E] = []
    for node in program:
        val = node.value_inputs[0] if node.value_inputs else None
        nodes.append(_E(node.function, val, tuple(nodes[i] for i in node.inputs), None, 0))
    return nodes[-1]


def test_v2_answers_are_the_executors(simple_scene: Scene) -> None:
    qs = generate_questions(simple_scene, 12, min_depth=1, max_depth=8, seed=0, phrasing="v2")
    assert all(execute(q.program, simple_scene) == q.answer for q in qs)


def test_generate_dataset_v2_records_phrasing(tmp_path: Path) -> None:
    generate_dataset(tmp_path / "a", 4, 3, 5, seed=0, render=False, processes=1)
    generate_dataset(
        tmp_path / "b",
        4,
        3,
        5,
        seed=0,
        render=False,
        processes=1,
        phrasing="v2",
        templates=["count:0", "count:1", "exist:0"],
    )
    a = json.loads((tmp_path / "a/questions/CLEVR_train_questions.json").read_text())
    b = json.loads((tmp_path / "b/questions/CLEVR_train_questions.json").read_text())
    assert "phrasing" not in a["info"]["config"]
    assert b["info"]["config"]["phrasing"] == "v2"
    assert b["info"]["config"]["templates"] == ["count:0", "count:1", "exist:0"]
    loaded = ClevrDataset(tmp_path / "b", "train").questions
    assert {q.extra["template_id"].split(":")[0] for q in loaded} <= {"count", "exist"}
    with pytest.raises(DataError, match="unknown template"):
        generate_dataset(
            tmp_path / "c", 2, 1, 3, render=False, processes=1, phrasing="v2", templates=["x:1"]
        )
