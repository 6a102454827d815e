"""Sharp edges of the public API: names never share weights by accident, instance ports
are checked against forward, SoftMask product AND and pooling ops, nested programs."""

from __future__ import annotations

import pytest
import torch

import brickwork.modules as bm
from brickwork.errors import LayoutError
from brickwork.layouts import Kinds, load_kinds, save_kinds
from brickwork.types import Features, SoftMask


@bm.register_kind(
    "test.sharp_find", example_config={"channels": 3}, sizes={"b": 2, "c": 3, "h": 4, "w": 5}
)
class Find(bm.Module):
    """A finder whose unseen instances are rebuilt from its kind and config."""

    inputs = {"features": Features("b c h w")}
    outputs = {"mask": SoftMask("b 1 h w")}

    def __init__(self, channels: int = 3):
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, 1, 1)

    def forward(self, features):
        return torch.sigmoid(self.conv(features))


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_load_kinds_gives_unseen_names_fresh_modules(tmp_path):
    torch.manual_seed(0)
    kinds = Kinds()
    blue = kinds.add("find[blue]", Find(channels=3))
    with torch.no_grad():
        blue.conv.weight.fill_(7.0)
    back = load_kinds(save_kinds(kinds, tmp_path / "k"))
    assert same_weights(back.module("find[blue]"), blue)
    purple = back.module("find[purple]")
    assert purple is not back.module("find[blue]")
    assert isinstance(purple, Find) and purple.config == {"channels": 3}
    assert not torch.equal(purple.conv.weight, back.module("find[blue]").conv.weight)
    # a vocabulary with a factory: unseen names come from it
    made = []
    into = Kinds(find=lambda arg: made.append(arg) or Find(channels=3))
    load_kinds(tmp_path / "k", into=into).module("find[green]")
    assert made == ["green"]


def test_add_never_shares_an_instance_with_later_names():
    kinds = Kinds()
    first = kinds.add("And[x]", bm.And.product("b n"))
    second = kinds.module("And[y]")
    assert second is not first and second.mode == "product"
    assert kinds.module("And[x]") is first


def test_add_rebuilds_an_unregistered_class_from_its_config():
    class Local(bm.Module):
        inputs = {"x": Features("b c")}
        outputs = {"y": Features("b d")}

        def __init__(self, c: int = 2, d: int = 3):
            super().__init__()
            self.lin = torch.nn.Linear(c, d)

        def forward(self, x):
            return self.lin(x)

    kinds = Kinds()
    a = kinds.add("lin[a]", Local(c=4, d=5))
    b = kinds.module("lin[b]")
    assert type(b) is Local and b.lin.weight.shape == (5, 4) and b is not a
    assert not torch.equal(a.lin.weight, b.lin.weight)


def test_unrebuildable_module_gives_a_clear_error():
    inner = torch.nn.Linear(3, 3)
    kinds = Kinds()
    kinds.add("head[a]", bm.typed(inner, {"input": Features("b c")}, {"y": Features("b c")}))
    with pytest.raises(LayoutError) as err:
        kinds.module("head[b]")
    msg = str(err.value)
    assert msg.startswith(
        "module 'head[b]': kind 'head' has no factory, only the instance added as 'head[a]'"
    )
    assert "Kinds(head=factory)" in msg and "kinds.add(name, module)" in msg


# ----- instance ports ---------------------------------------------------------------------
from brickwork.errors import PortError  # noqa: E402


class PortFromArg(bm.Module):
    """Its input port's name depends on a constructor argument (set on the instance)."""

    outputs = {"y": Features("b c")}

    def __init__(self, port: str = "x"):
        super().__init__()
        self.inputs = {port: Features("b c")}

    def forward(self, x):
        return x


def test_instance_ports_are_checked_against_forward_at_construction():
    assert PortFromArg("x")(torch.zeros(1, 2)).shape == (1, 2)
    with pytest.raises(PortError) as err:
        PortFromArg("feats")
    assert str(err.value) == (
        "PortFromArg (input ports set in __init__): forward(x) does not match the declared "
        "input ports (feats); missing parameters ['feats'], undeclared ['x']. Rename "
        "forward's parameters or the ports so they agree"
    )


# ----- SoftMask product AND and pooling ----------------------------------------------------
def test_soft_product_and():
    op = bm.And.product("b n", of="SoftMask")
    assert op.mode == "soft_product" and op.codependent
    assert str(op.signature) == "(a: SoftMask['b n'], b: SoftMask['b n']) -> (out: SoftMask['b n'])"
    a, b = torch.tensor([[0.5, 1.0, 0.0]]), torch.tensor([[0.5, 0.3, 0.9]])
    assert torch.allclose(op(a, b), torch.tensor([[0.25, 0.3, 0.0]]))
    assert bm.And.product("b n").inputs["a"].__class__.__name__ == "Heatmap"
    assert bm.And.product("b n", of=SoftMask).mode == "soft_product"
    with pytest.raises(PortError, match="of='Logits' is not supported"):
        bm.And.product("b n", of="Logits")
    from brickwork.modules.ops import merge_modes

    assert merge_modes()["And"]["soft_product"] is True


@pytest.mark.parametrize(
    "op,want",
    [("max", [0.9, 0.5]), ("mean", [0.5, 0.125]), ("noisy_or", [1 - 0.9 * 0.1 * 0.5 * 0.5, 0.5])],
)
def test_pool_ops(op, want):
    x = torch.tensor([[0.1, 0.9, 0.5, 0.5], [0.5, 0.0, 0.0, 0.0]])
    pool = bm.Pool(op, "b n", over="n")
    assert pool(x).tolist() == pytest.approx(want)
    assert str(pool.signature) == "(x: SoftMask['b n']) -> (out: SoftMask['b'])"
    x = torch.rand(2, 3, 4, 5, requires_grad=True)
    out = bm.Pool(op, "b n h w", over="n")(x)
    assert out.shape == (2, 4, 5) and SoftMask("b h w").check(out.detach()) == ""
    out.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_noisy_or_gradient_is_finite_at_one():
    x = torch.tensor([[1.0, 0.5]], requires_grad=True)
    bm.Pool("noisy_or", "b n", over="n")(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.tolist() == [[0.5, 0.0]]


def test_pool_errors_and_registration(tmp_path):
    with pytest.raises(PortError, match=r"axis 'k' is not one of the input axes \[b n\]"):
        bm.Pool("max", "b n", over="k")
    with pytest.raises(PortError, match="noisy_or pools SoftMask"):
        bm.Pool("noisy_or", "b n", over="n", of="Heatmap")
    with pytest.raises(PortError, match="unknown op 'sum'"):
        bm.Pool("sum", "b n", over="n")
    assert bm.Pool("mean", "b n c", over="n", of="Features").outputs["out"] == Features("b c")
    assert "Pool" in bm.registered_kinds()
    back = bm.load_module(bm.save_module(bm.Pool("noisy_or", "b n", over="n"), tmp_path / "p"))
    assert back.op == "noisy_or" and back.config == {
        "op": "noisy_or",
        "axes": "b n",
        "over": "n",
        "of": "SoftMask",
    }


# ----- nested programs --------------------------------------------------------------------
from brickwork.layouts import from_program  # noqa: E402
from brickwork.modules import Adapter  # noqa: E402


def clevr_kinds() -> Kinds:
    return Kinds(
        find=lambda arg: Find(channels=3),
        intersect=lambda: bm.And.min("b 1 h w"),
        exist=lambda: Pool1(),
    )


class Pool1(bm.Module):
    inputs = {"mask": SoftMask("b 1 h w")}
    outputs = {"answer": SoftMask("b")}

    def forward(self, mask):
        return mask.flatten(1).amax(1)


FLAT = [
    {"function": "find", "value_inputs": ["red"], "inputs": []},
    {"function": "find", "value_inputs": ["cube"], "inputs": []},
    {"function": "intersect", "value_inputs": [], "inputs": [0, 1]},
    {"function": "exist", "value_inputs": [], "inputs": [2]},
]
TREE = {
    "function": "exist",
    "inputs": [
        {
            "function": "intersect",
            "inputs": [
                {"function": "find", "value_inputs": ["red"]},
                {"function": "find", "value_inputs": ["cube"]},
            ],
        }
    ],
}


def test_tree_and_sexpr_give_the_flat_lists_layout():
    kinds = clevr_kinds()
    ext = {"features": Features("b 3 h w")}
    flat = from_program(FLAT, kinds, externals=ext, name="q")
    tree = from_program(TREE, kinds, externals=ext, name="q")
    sexp = from_program(
        "(exist (intersect (find red) (find cube)))", kinds, externals=ext, name="q"
    )
    assert flat.to_json() == tree.to_json() == sexp.to_json()
    assert [n.module for n in sexp.nodes] == ["find[red]", "find[cube]", "intersect", "exist"]


@pytest.mark.parametrize(
    "program,message",
    [
        ("(exist (find red)", r"ends at character 17 with 1 '\(' still open"),
        ("(exist (find red)))", r"unmatched '\)' at character 18"),
        ("(exist (()))", r"'\(' at character 7 is not followed by a function name"),
        ("(exist (find red)) (find x)", r"text after the program's closing '\)' at character 19"),
        ("", "empty s-expression"),
        (
            {"function": "exist", "inputs": [{"value_inputs": ["red"]}]},
            r"node root.inputs\[0\]: no 'function'",
        ),
        (
            {"function": "exist", "inputs": [{"function": "find", "inputs": [0]}]},
            r"node root.inputs\[0\] \('find'\): input 0 is an index",
        ),
        ({"function": "exist", "inputs": "find"}, r"'inputs' must be a list of subtrees"),
        (42, "expected a list of nodes, a tree"),
    ],
)
def test_malformed_programs_name_the_position(program, message):
    with pytest.raises(LayoutError, match=message):
        from_program(program, clevr_kinds(), externals={"features": Features("b 3 h w")})


def test_deep_programs_are_refused():
    deep = "(exist " * 300 + ")" * 300
    with pytest.raises(LayoutError, match="nested deeper than 200"):
        from_program(deep, clevr_kinds())
    _ = Adapter
