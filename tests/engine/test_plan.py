"""Training plans: Table 4.1, codependent groups, refused plans, reuse, plan files."""

from __future__ import annotations

import json

import pytest
import torch

from brickwork.errors import PlanError
from brickwork.layouts import Kinds, LayoutBuilder
from brickwork.modules import And, Module, Or
from brickwork.plan import DataSpec, load_plan_file, make_plan
from brickwork.registry import Registry
from brickwork.training.examples import (
    ToyFind,
    ToyMeasure,
    example_plan_json,
    nmn_family,
    nmn_kinds,
)
from brickwork.types import Heatmap

NMN_DATA = DataSpec(inputs={"features", "question"}, targets={"answer"})


def test_table_4_1_nmn_classification():
    """Thesis Table 4.1: Encoder decoupled+direct, Find decoupled+indirect, Describe and
    Measure dependent+direct; Find through a surrogate; two stages (§4.3.2)."""
    plan = make_plan(nmn_family(nmn_kinds()), NMN_DATA)
    table = plan.by_kind()
    expected = {  # kind: (decoupled, dependent, direct, indirect)
        "encoder": (True, False, True, False),
        "find": (True, False, False, True),
        "describe": (False, True, True, False),
        "measure": (False, True, True, False),
    }
    for kind, (dec, dep, direct, indirect) in expected.items():
        row = table[kind]
        assert (row["decoupled"], row["dependent"], row["direct"], row["indirect"]) == \
            (dec, dep, direct, indirect), kind
        assert not row["codependent"]
    assert table["find"]["modes"] == ["surrogate"]
    assert table["encoder"]["modes"] == ["direct"]
    assert table["describe"]["modes"] == ["cached"] and table["measure"]["modes"] == ["cached"]
    assert [set(s) for s in plan.stages] == [{"encoder", "find[0]", "find[1]"},
                                             {"describe[what]", "measure[count]"}]
    assert {d.consumer for d in plan.intermediates} == {"describe[what]", "measure[count]"}
    assert all(d.before_stage == 2 for d in plan.intermediates)
    assert "find" in plan.table(by="kind") and "Decoupled" in plan.table()
    assert json.loads(json.dumps(plan.to_json()))["modules"]["find[0]"]["mode"] == "surrogate"


def _merge_family(op, find_out="heatmap"):
    kinds = Kinds(find=lambda: ToyFind(channels=4, out=find_out),
                  measure=lambda: ToyMeasure(answers=5), merge=op)
    b = LayoutBuilder(kinds, name="q")
    f = b.input("features")
    m1, m2 = b.add("find[a]", features=f), b.add("find[b]", features=f)
    merged = b.add("merge", a=m1["mask"], b=m2["mask"])
    b.output("answer", b.add("measure", mask=merged["out"])["answer"])
    return [b.build()]


def test_codependent_group_for_product_not_for_sum():
    data = DataSpec({"features"}, {"answer"})
    product = make_plan(_merge_family(lambda: And.product()), data)
    assert product.module("find[a]").codependent and product.module("find[b]").codependent
    assert product.module("find[a]").mode == "joint"
    assert product.groups == (("find[a]", "find[b]"),)
    assert not product.module("measure").codependent
    summed = make_plan(_merge_family(lambda: Or.sum()), data)
    assert not summed.module("find[a]").codependent and summed.groups == ()
    assert summed.module("find[a]").mode == "surrogate"
    maxed = make_plan(_merge_family(lambda: Or.max(), "softmask"), data)
    assert maxed.module("find[b]").codependent


class Relate(Module):
    inputs = {"mask": Heatmap("b 1 h w")}
    outputs = {"mask": Heatmap("b 1 h w")}

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, mask):
        return torch.relu(self.conv(mask))


def _relate_family(orders):
    kinds = Kinds(find=lambda: ToyFind(channels=4, out="heatmap"), relate=Relate,
                  measure=lambda: ToyMeasure(answers=5))
    family = []
    for i, order in enumerate(orders):
        b = LayoutBuilder(kinds, name=f"q{i}")
        x = b.add("find[a]", features=b.input("features"))["mask"]
        for r in order:
            x = b.add(f"relate[{r}]", mask=x)["mask"]
        b.output("answer", b.add("measure", mask=x)["answer"])
        family.append(b.build())
    return family


def test_cycle_is_refused_with_a_clear_error():
    family = _relate_family([("left", "right"), ("right", "left")])
    with pytest.raises(PlanError) as err:
        make_plan(family, DataSpec({"features"}, {"answer"}))
    msg = str(err.value)
    assert "cycle" in msg and "relate[left]" in msg and "relate[right]" in msg
    assert "cycles='joint'" in msg and "layout 'q" in msg
    joint = make_plan(family, DataSpec({"features"}, {"answer"}), cycles="joint")
    assert joint.module("relate[left]").mode == "joint"
    assert set(joint.groups[0]) == {"relate[left]", "relate[right]"}


def test_self_loop_is_a_cycle():
    with pytest.raises(PlanError, match="cycle"):
        make_plan(_relate_family([("left", "left")]), DataSpec({"features"}, {"answer"}))


def test_unsatisfiable_input_is_refused():
    with pytest.raises(PlanError) as err:
        make_plan(nmn_family(nmn_kinds()), DataSpec({"features"}, {"answer"}))
    msg = str(err.value)
    assert "'question'" in msg and "does not provide" in msg and "node 'encoder#" in msg
    assert "layout 'describe[what](0)'" in msg


def test_unsupervised_module_is_refused():
    with pytest.raises(PlanError, match="never reaches a supervised output"):
        make_plan(nmn_family(nmn_kinds()), DataSpec({"features", "question"}, {"other"}))


def test_empty_family_refused():
    with pytest.raises(PlanError, match="empty"):
        make_plan([], NMN_DATA)


def test_registry_reuse(tmp_path):
    kinds = nmn_kinds()
    family = nmn_family(kinds)
    reg = Registry(tmp_path / "reg")
    reg.put("toy_find.0-v1", kinds.module("find[0]"))
    plan = make_plan(family, NMN_DATA, registry=reg, reuse=True)
    assert plan.module("find[0]").mode == "reuse"
    assert plan.module("find[0]").registry_entry == "toy_find.0-v1"
    assert plan.module("find[0]").stage == 0
    assert plan.module("find[1]").mode == "surrogate"
    assert make_plan(family, NMN_DATA, registry=reg).module("find[0]").mode == "surrogate"
    with pytest.raises(PlanError, match="needs a registry"):
        make_plan(family, NMN_DATA, reuse=True)


def test_plan_file_and_node_cycle(tmp_path):
    spec = example_plan_json()
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(spec))
    loaded = load_plan_file(path)
    plan = make_plan(loaded.family, loaded.data)
    assert plan.module("find[0]").mode == "surrogate"
    spec["layouts"][0]["nodes"][0]["inputs"] = {"features": "r.answer"}  # f <- r <- f
    path.write_text(json.dumps(spec))
    with pytest.raises(PlanError) as err:
        load_plan_file(path)
    assert "layouts[0]" in str(err.value) and "cycle" in str(err.value).lower()
    path.write_text("{ not json")
    with pytest.raises(PlanError, match="line 1"):
        load_plan_file(path)
