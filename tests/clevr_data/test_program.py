from __future__ import annotations

import pytest

from brickwork.errors import DataError
from brickwork.studies.clevr.data import FUNCTIONS, Program, ProgramNode, program_depth


def nodes(*spec: tuple) -> list[dict]:
    return [{"function": f, "inputs": list(i), "value_inputs": list(v)} for f, i, v in spec]


def test_function_set_is_clevrs() -> None:
    expected = {
        "scene",
        "unique",
        "relate",
        "union",
        "intersect",
        "count",
        "exist",
        "less_than",
        "greater_than",
        "equal_integer",
    }
    for a in ("color", "shape", "size", "material"):
        expected |= {f"filter_{a}", f"query_{a}", f"same_{a}", f"equal_{a}"}
    assert set(FUNCTIONS) == expected


def test_both_key_styles_parse_to_the_same_program() -> None:
    release = nodes(("scene", (), ()), ("filter_color", (0,), ("red",)), ("exist", (1,), ()))
    generator = [
        {"type": "scene", "inputs": []},
        {"type": "filter_color", "inputs": [0], "side_inputs": ["red"], "_output": [1]},
        {"type": "exist", "inputs": [1]},
    ]
    assert Program.from_json(release) == Program.from_json(generator)
    assert Program.from_json(generator).to_clevr_json() == release


def test_depth_counts_every_node_but_scene() -> None:
    assert program_depth(nodes(("scene", (), ()), ("count", (0,), ()))) == 1
    chain = nodes(
        ("scene", (), ()),
        ("filter_color", (0,), ("red",)),
        ("unique", (1,), ()),
        ("query_shape", (2,), ()),
    )
    assert program_depth(chain) == 3
    # binary node: longest branch counts
    p = nodes(
        ("scene", (), ()),
        ("filter_color", (0,), ("red",)),
        ("filter_shape", (1,), ("cube",)),
        ("count", (2,), ()),
        ("scene", (), ()),
        ("count", (4,), ()),
        ("greater_than", (3, 5), ()),
    )
    prog = Program.from_json(p)
    assert prog.depth == 4
    assert prog.node_depths == (0, 1, 2, 3, 0, 1, 4)


@pytest.mark.parametrize(
    "program, words",
    [
        (
            nodes(("scene", (), ()), ("filter_colour", (0,), ("red",))),
            ["node 1", "'filter_colour'", "field 'function'", "unknown function"],
        ),
        (
            nodes(("scene", (), ()), ("count", (5,), ())),
            ["node 1", "field 'inputs'", "out of range", "5"],
        ),
        (
            nodes(("scene", (), ()), ("count", (1,), ())),
            ["node 1", "field 'inputs'", "earlier node"],
        ),
        (
            nodes(("scene", (), ()), ("filter_color", (0,), ("cube",))),
            ["node 1", "field 'value_inputs'", "'cube'", "red"],
        ),
        (
            nodes(("scene", (), ()), ("query_color", (0,), ())),
            ["node 1", "gives objects", "expects object"],
        ),
        (nodes(("scene", (), ()), ("union", (0,), ())), ["node 1", "takes 2 input(s)"]),
        ([{"function": "scene"}], ["node 0", "field 'inputs'", "missing"]),
        ([{"inputs": []}], ["node 0", "field 'function'", "missing", "'type'"]),
    ],
)
def test_malformed_programs_name_node_and_field(program: list, words: list[str]) -> None:
    with pytest.raises(DataError) as info:
        Program.from_json(program, where="f.json: question 3")
    message = str(info.value)
    assert message.startswith("f.json: question 3: ")
    for w in words:
        assert w in message


def test_program_is_a_sequence_of_typed_nodes() -> None:
    p = Program(
        [
            ProgramNode("scene"),
            ProgramNode("filter_size", (0,), ("small",)),
            ProgramNode("count", (1,)),
        ]
    )
    assert [n.function for n in p] == ["scene", "filter_size", "count"]
    assert p[1].value_inputs == ("small",) and p[2].inputs == (1,)
    assert p.output_kind == "integer" and p.answers_question
