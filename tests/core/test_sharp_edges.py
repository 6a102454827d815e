"""Sharp edges of the public API: names never share weights by accident, instance ports
are checked against forward, SoftMask product AND and pooling ops, nested programs."""

from __future__ import annotations

import pytest
import torch

import brickwork.modules as bm
from brickwork.errors import LayoutError
from brickwork.layouts import Kinds, load_kinds, save_kinds
from brickwork.types import Features, SoftMask


@bm.register_kind("test.sharp_find", example_config={"channels": 3},
                  sizes={"b": 2, "c": 3, "h": 4, "w": 5})
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
    assert msg.startswith("module 'head[b]': kind 'head' has no factory, only the instance "
                          "added as 'head[a]'")
    assert "Kinds(head=factory)" in msg and "kinds.add(name, module)" in msg
