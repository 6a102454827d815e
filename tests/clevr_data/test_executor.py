from __future__ import annotations

import pytest

from brickwork.errors import DataError
from brickwork.studies.clevr.data import Scene, execute, execute_trace, is_well_posed


def prog(*spec: tuple) -> list[dict]:
    return [{"function": f, "inputs": list(i), "value_inputs": list(v)} for f, i, v in spec]


S = ("scene", (), ())


def test_relationships_of_hand_built_scene(simple_scene: Scene) -> None:
    rel = simple_scene.relationships
    assert rel["right"][0] == (1,)
    assert rel["left"][1] == (0, 2, 3)
    assert rel["behind"][0] == (2,)
    assert rel["front"][2] == (0, 1, 3)
    assert rel["left"][3] == () and rel["front"][3] == ()
    # left and right are mirror images, never containing the object itself
    for i in range(4):
        for j in rel["left"][i]:
            assert i in rel["right"][j]
        assert i not in rel["left"][i]


def test_filters_and_queries(simple_scene: Scene) -> None:
    trace = execute_trace(
        prog(
            S,
            ("filter_color", (0,), ("red",)),
            ("filter_size", (1,), ("large",)),
            ("filter_material", (2,), ("rubber",)),
            ("unique", (3,), ()),
            ("query_shape", (4,), ()),
        ),
        simple_scene,
    )
    assert trace == [(0, 1, 2, 3), (0, 2), (0, 2), (2,), 2, "cylinder"]


def test_unique_needs_exactly_one_object(simple_scene: Scene) -> None:
    two = prog(S, ("filter_color", (0,), ("red",)), ("unique", (1,), ()), ("query_shape", (2,), ()))
    none = prog(
        S, ("filter_color", (0,), ("green",)), ("unique", (1,), ()), ("query_shape", (2,), ())
    )
    for p, found in ((two, "found 2 objects [0, 2]"), (none, "found 0 objects")):
        assert not is_well_posed(p, simple_scene)
        with pytest.raises(DataError) as info:
            execute(p, simple_scene)
        assert "node 2 'unique'" in str(info.value) and found in str(info.value)
        assert "expected exactly 1" in str(info.value)


def test_same_attribute_excludes_the_object(simple_scene: Scene) -> None:
    p = prog(S, ("filter_shape", (0,), ("cube",)), ("unique", (1,), ()), ("same_color", (2,), ()))
    assert execute_trace(p, simple_scene)[-1] == (2,)  # the red cylinder, not the cube itself
    p = prog(
        S,
        ("filter_color", (0,), ("blue",)),
        ("unique", (1,), ()),
        ("same_color", (2,), ()),
        ("count", (3,), ()),
    )
    assert execute(p, simple_scene) == "0"  # the only blue object: empty set, count 0
    p = prog(
        S,
        ("filter_color", (0,), ("blue",)),
        ("unique", (1,), ()),
        ("same_shape", (2,), ()),
        ("exist", (3,), ()),
    )
    assert execute(p, simple_scene) == "yes"


def test_count_and_exist_of_empty_set(simple_scene: Scene) -> None:
    empty = (S, ("filter_color", (0,), ("purple",)))
    assert execute(prog(*empty, ("count", (1,), ())), simple_scene) == "0"
    assert execute(prog(*empty, ("exist", (1,), ())), simple_scene) == "no"


def test_relate_union_intersect(simple_scene: Scene) -> None:
    blue = (S, ("filter_color", (0,), ("blue",)), ("unique", (1,), ()))
    p = prog(
        *blue,
        ("relate", (2,), ("left",)),
        S,
        ("filter_shape", (4,), ("sphere",)),
        ("intersect", (3, 5), ()),
        ("union", (6, 5), ()),
        ("count", (6,), ()),
    )
    trace = execute_trace(p, simple_scene)
    assert trace[3] == (0, 2, 3)
    assert trace[6] == (3,)
    assert trace[7] == (1, 3)
    assert trace[8] == 1


@pytest.mark.parametrize(
    "fn, answer", [("equal_integer", "yes"), ("less_than", "no"), ("greater_than", "no")]
)
def test_integer_comparisons(simple_scene: Scene, fn: str, answer: str) -> None:
    p = prog(
        S,
        ("filter_size", (0,), ("large",)),
        ("count", (1,), ()),
        S,
        ("filter_size", (3,), ("small",)),
        ("count", (4,), ()),
        (fn, (2, 5), ()),
    )
    assert execute(p, simple_scene) == answer


@pytest.mark.parametrize(
    "attr, answer", [("color", "no"), ("material", "yes"), ("shape", "no"), ("size", "no")]
)
def test_attribute_equality(simple_scene: Scene, attr: str, answer: str) -> None:
    p = prog(
        S,
        ("filter_shape", (0,), ("cube",)),
        ("unique", (1,), ()),
        (f"query_{attr}", (2,), ()),
        S,
        ("filter_color", (4,), ("yellow",)),
        ("unique", (5,), ()),
        (f"query_{attr}", (6,), ()),
        (f"equal_{attr}", (3, 7), ()),
    )
    assert execute(p, simple_scene) == answer


def test_execute_refuses_programs_without_answer(simple_scene: Scene) -> None:
    with pytest.raises(DataError, match="not an answer"):
        execute(prog(S, ("filter_color", (0,), ("red",))), simple_scene)
