"""Layouts: type checking at build time, builders, slicing, programs."""

from __future__ import annotations

import pytest
import torch

import brickwork.modules as bm
from brickwork.errors import LayoutError
from brickwork.layouts import Kinds, Layout, LayoutBuilder, Node, Source, chain, from_program
from brickwork.types import Features, Heatmap, Logits, SoftMask


class Find(bm.Module):
    inputs = {"features": Features("b c h w")}
    outputs = {"mask": SoftMask("b 1 h w")}

    def __init__(self, channels: int = 4):
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, 1, 1)

    def forward(self, features):
        return torch.sigmoid(self.conv(features))


class ClassicRelate(bm.Module):
    inputs = {"mask": SoftMask("b 1 h w"), "features": Features("b c h w")}
    outputs = {"mask": Heatmap("b 1 h w")}

    def __init__(self, channels: int = 4):
        super().__init__()
        self.conv = torch.nn.Conv2d(channels + 1, 1, 3, padding=1)

    def forward(self, mask, features):
        return torch.relu(self.conv(torch.cat([features, mask], 1)))


class Describe(bm.Module):
    inputs = {"mask": SoftMask("b 1 h w"), "features": Features("b c h w")}
    outputs = {"answer": Logits("b k")}

    def __init__(self, channels: int = 4, answers: int = 5):
        super().__init__()
        self.lin = torch.nn.Linear(channels, answers)

    def forward(self, mask, features):
        return self.lin((mask * features).mean((2, 3)))


def kinds() -> Kinds:
    return Kinds(
        find=Find,
        relate=ClassicRelate,
        describe=Describe,
        intersect=lambda: bm.And.min("b 1 h w"),
        functions={"filter_color": "find"},
    )


def test_mismatch_fails_at_build_time_with_node_port_found_expected_and_fix():
    k = kinds()
    b = LayoutBuilder(k, name="q17")
    f = b.input("features")
    red = b.add("filter_color[red]", features=f)
    rel = b.add("relate[left]", mask=red, features=f)
    b.add("intersect", a=red, b=rel)
    with pytest.raises(LayoutError) as err:
        b.build()
    msg = str(err.value)
    assert msg.startswith(
        "layout 'q17', node 'intersect#2', port 'b': got Heatmap['b 1 h w'] "
        "from node 'relate[left]#1', expected SoftMask['b 1 h w']"
    )
    assert "And.product" in msg and "Adapter('squash')" in msg


def test_build_fails_before_any_module_runs():
    calls = []

    class Spy(Find):
        def forward(self, features):
            calls.append(1)
            return super().forward(features)

    k = Kinds(find=Spy, relate=ClassicRelate, intersect=lambda: bm.And.min("b 1 h w"))
    prog = [
        {"function": "find", "inputs": [], "value_inputs": ["red"]},
        {"function": "relate", "inputs": [0], "value_inputs": ["left"]},
        {"function": "intersect", "inputs": [0, 1]},
    ]
    with pytest.raises(LayoutError, match="port 'b': got Heatmap"):
        from_program(prog, k, externals={"features": Features("b c h w")}, name="p")
    assert calls == []


def test_axis_mismatch_is_reported():
    class Wide(bm.Module):
        inputs = {"mask": SoftMask("b 2 h w")}
        outputs = {"y": Logits("b k")}

        def forward(self, mask):
            return mask.flatten(1)

    k = Kinds(find=Find, wide=Wide)
    with pytest.raises(LayoutError, match=r"\[b 1 h w\] vs \[b 2 h w\]: 1 vs 2"):
        chain("find", "wide", kinds=k)


def test_from_program_structure_sharing_and_depth():
    k = kinds()
    prog = [
        {"function": "filter_color", "inputs": [], "value_inputs": ["red"]},
        {"type": "relate", "inputs": [0], "value_inputs": ["left"]},
        {"function": "filter_color", "inputs": [], "value_inputs": ["red"]},
        {"function": "intersect", "inputs": [1, 2]},
        {"function": "describe", "inputs": [3]},
    ]
    with pytest.raises(LayoutError, match="port 'a': got Heatmap"):
        from_program(prog, k, externals={"features": Features("b c h w")}, name="p")
    k2 = Kinds(
        find=Find,
        relate=lambda: bm.typed(
            torch.nn.Identity(), {"input": SoftMask("b 1 h w")}, {"mask": SoftMask("b 1 h w")}
        ),
        describe=Describe,
        intersect=lambda: bm.And.min("b 1 h w"),
        functions={"filter_color": "find"},
    )
    prog[1] = {"type": "relate", "inputs": [0], "value_inputs": ["left"]}
    lay = from_program(prog, k2, externals={"features": Features("b c h w")}, name="p")
    assert [n.module for n in lay.nodes].count("filter_color[red]") == 2
    assert k2.module("filter_color[red]") is k2.module("filter_color[red]")
    assert lay.depth() == 4
    assert set(lay.inputs) == {"features"} and list(lay.outputs) == ["answer"]
    part = lay.slice("intersect#3")
    assert part.depth() == 3 and list(part.outputs) == ["out"]
    assert "describe#4" not in {n.id for n in part.nodes}


def test_program_errors_are_precise():
    k = kinds()
    ext = {"features": Features("b c h w")}
    with pytest.raises(LayoutError, match=r"node 0 \('describe'\): takes 1 program inputs"):
        from_program([{"function": "describe", "inputs": []}], k, externals=ext)
    with pytest.raises(LayoutError, match="no module kind for function 'teleport'"):
        from_program([{"function": "teleport", "inputs": []}], k, externals=ext)
    with pytest.raises(LayoutError, match=r"input 3 must be the index of an earlier node"):
        from_program(
            [
                {"function": "find", "inputs": [], "value_inputs": ["red"]},
                {"function": "describe", "inputs": [3]},
            ],
            k,
            externals=ext,
        )


def test_cycles_duplicates_and_unknown_sources_are_refused():
    k = Kinds(a=lambda: bm.Adapter("log", "b k"))
    with pytest.raises(LayoutError, match="cycle"):
        Layout(
            "c",
            [
                Node("x", "a", "a", None, {"x": Source("y", "y")}),
                Node("y", "a", "a", None, {"x": Source("x", "y")}),
            ],
            k,
        )
    with pytest.raises(LayoutError, match="two nodes are named 'x'"):
        Layout("d", [Node("x", "a", "a", None, {"x": Source(None, "p")})] * 2, k)
    with pytest.raises(LayoutError, match="has no output 'nope'"):
        Layout(
            "e",
            [
                Node("x", "a", "a", None, {"x": Source(None, "p")}),
                Node("y", "a", "a", None, {"x": Source("x", "nope")}),
            ],
            k,
        )


def test_layout_is_immutable_and_serialises():
    lay = chain(bm.Adapter("log", "b k"), bm.Adapter("softmax", "b k"))
    with pytest.raises(TypeError):
        lay.nodes[0].inputs["x"] = Source(None, "z")  # type: ignore[index]
    from brickwork.layouts import layout_from_json

    again = layout_from_json(lay.to_json(), lay.kinds)
    assert again.to_json() == lay.to_json()
