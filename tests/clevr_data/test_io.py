from __future__ import annotations

import json
from pathlib import Path

import pytest

from brickwork.errors import DataError
from brickwork.studies.clevr.data import (
    ClevrDataset,
    execute,
    generate_dataset,
    load_questions,
    load_questions_file,
    load_scenes,
    load_splits,
    make_splits,
    write_questions,
)


def test_generator_format_fixture_loads(fixtures: Path) -> None:
    scenes = {s.image_index: s for s in load_scenes(fixtures / "handmade_scenes.json")}
    qf = load_questions_file(fixtures / "generator_questions.json")
    assert qf.info["split"] == "val" and len(qf.questions) == 10
    q = qf.questions[0]
    assert q.answer == "yes" and q.program[1].function == "filter_color"
    assert q.program[1].value_inputs == ("red",)
    assert q.extra["template_filename"] == "zero_hop.json"
    assert [q.answer for q in qf.questions][:3] == ["yes", "2", "blue"]
    for q in qf.questions:
        assert execute(q.program, scenes[q.image_index]) == q.answer


def test_release_format_round_trip(tmp_path: Path, fixtures: Path) -> None:
    qs = load_questions(fixtures / "generator_questions.json")
    out = write_questions(tmp_path / "q.json", qs, {"split": "val"})
    raw = json.loads(out.read_text())
    node = raw["questions"][2]["program"][4]
    assert node == {"function": "relate", "inputs": [3], "value_inputs": ["right"]}
    assert raw["questions"][0]["answer"] == "yes"
    assert load_questions(out) == qs


def write(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj))
    return path


def base_question() -> dict:
    return {
        "image_index": 0,
        "question": "How many things?",
        "answer": "3",
        "program": [
            {"function": "scene", "inputs": [], "value_inputs": []},
            {"function": "count", "inputs": [0], "value_inputs": []},
        ],
    }


@pytest.mark.parametrize(
    "mutate, words",
    [
        (lambda q: q.pop("program"), ["question 1", "field 'program'", "missing"]),
        (lambda q: q.pop("image_index"), ["question 1", "field 'image_index'", "missing"]),
        (
            lambda q: q["program"][1].update(function="tally"),
            [
                "question 1",
                "program node 1 'tally'",
                "field 'function'",
                "unknown function 'tally'",
            ],
        ),
        (
            lambda q: q["program"][1].update(inputs=[4]),
            ["question 1", "program node 1", "field 'inputs'", "out of range"],
        ),
        (lambda q: q.update(answer=[3]), ["question 1", "field 'answer'", "[3]"]),
        (lambda q: q.update(image_index="zero"), ["question 1", "field 'image_index'", "'zero'"]),
    ],
)
def test_malformed_question_files_name_file_index_field(tmp_path: Path, mutate, words) -> None:  # noqa: ANN001
    bad = base_question()
    mutate(bad)
    path = write(tmp_path / "q.json", {"info": {}, "questions": [base_question(), bad]})
    with pytest.raises(DataError) as info:
        load_questions(path)
    message = str(info.value)
    assert message.startswith(str(path))
    for w in words:
        assert w in message


def test_bad_json_and_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "q.json"
    path.write_text('{"info": {}, "questions": [\n  {"image_index": 0,,}]}')
    with pytest.raises(DataError, match=r"q\.json: line 2 column 21: invalid JSON"):
        load_questions(path)
    with pytest.raises(DataError, match="file not found"):
        load_scenes(tmp_path / "nope.json")
    with pytest.raises(DataError, match="field 'questions': missing"):
        load_questions(write(tmp_path / "x.json", {"info": {}}))


def test_malformed_scenes(tmp_path: Path, fixtures: Path) -> None:
    raw = json.loads((fixtures / "handmade_scenes.json").read_text())
    raw["scenes"][0]["objects"][2]["color"] = "pink"
    with pytest.raises(DataError) as info:
        load_scenes(write(tmp_path / "s.json", raw))
    assert "scene 0, object 2: field 'color': found 'pink'" in str(info.value)
    raw = json.loads((fixtures / "handmade_scenes.json").read_text())
    raw["scenes"][0]["relationships"]["left"][0] = [9]
    with pytest.raises(DataError, match=r"relationships.left\[0\]': object index 9 out of range"):
        load_scenes(write(tmp_path / "s.json", raw))


def test_scenes_without_relationships_get_them_computed(tmp_path: Path, fixtures: Path) -> None:
    raw = json.loads((fixtures / "handmade_scenes.json").read_text())
    expected = load_scenes(fixtures / "handmade_scenes.json")[0].relationships
    del raw["scenes"][0]["relationships"]
    assert load_scenes(write(tmp_path / "s.json", raw))[0].relationships == expected


def test_generated_release_layout_and_splits(tmp_path: Path) -> None:
    summary = generate_dataset(
        tmp_path, n_scenes=20, questions_per_scene=4, max_depth=8, seed=0, processes=1
    )
    assert summary["questions"] == 80
    ds = ClevrDataset(tmp_path, "train")
    assert (tmp_path / "images" / "train" / "CLEVR_train_000019.png").exists()
    assert ds.image(ds.questions[5]).shape == (64, 96, 3)
    assert [q.question_index for q in ds.questions] == list(range(80))
    info = json.loads((tmp_path / "questions" / "CLEVR_train_questions.json").read_text())["info"]
    assert info["seed"] == 0 and "brickwork_version" in info and info["config"]["max_depth"] == 8
    splits = make_splits(
        ds.questions, fractions=(0.6, 0.2, 0.2), seed=1, max_depth=4, path=tmp_path / "splits.json"
    )
    again = load_splits(tmp_path / "splits.json")
    assert again == splits
    images = [set(v) for v in splits.image_indices.values()]
    assert sum(len(s) for s in images) == 20 and len(set().union(*images)) == 20
    for name, idx in splits.question_indices.items():
        for i in idx:
            q = ds.questions[i]
            assert q.image_index in splits.image_indices[name.removesuffix("_ood")]
            assert (q.depth > 4) == name.endswith("_ood")
    assert splits.question_depths == [q.depth for q in ds.questions]
