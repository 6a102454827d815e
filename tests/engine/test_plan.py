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
from brickwork.training.fixtures import (
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
        assert (row["decoupled"], row["dependent"], row["direct"], row["indirect"]) == (
            dec,
            dep,
            direct,
            indirect,
        ), kind
        assert not row["codependent"]
    assert table["find"]["modes"] == ["surrogate"]
    assert table["encoder"]["modes"] == ["direct"]
    assert table["describe"]["modes"] == ["cached"] and table["measure"]["modes"] == ["cached"]
    assert [set(s) for s in plan.stages] == [
        {"encoder", "find[0]", "find[1]"},
        {"describe[what]", "measure[count]"},
    ]
    assert {d.consumer for d in plan.intermediates} == {"describe[what]", "measure[count]"}
    assert all(d.before_stage == 2 for d in plan.intermediates)
    assert "find" in plan.table(by="kind") and "Decoupled" in plan.table()
    assert json.loads(json.dumps(plan.to_json()))["modules"]["find[0]"]["mode"] == "surrogate"


def _merge_family(op, find_out="heatmap"):
    kinds = Kinds(
        find=lambda: ToyFind(channels=4, out=find_out),
        measure=lambda: ToyMeasure(answers=5),
        merge=op,
    )
    b = LayoutBuilder(kinds, name="q")
    f = b.input("features")
    m1, m2 = b.add("find[a]", features=f), b.add("find[b]", features=f)
    merged = b.add("merge", a=m1["mask"], b=m2["mask"])
    b.output("answer", b.add("measure", mask=merged["out"])["answer"])
    return [b.build()]


def test_codependent_group_for_product_not_for_sum():
    data = DataSpec({"features"}, {"answer"})
    product = make_plan(_merge_family(lambda: And.product()), data, codependent="joint")
    assert product.module("find[a]").codependent and product.module("find[b]").codependent
    assert product.module("find[a]").mode == "joint" and product.module("find[a]").policy == "joint"
    # a joint group takes along what lies between it and the target (measure)
    assert product.groups == (("find[a]", "find[b]", "measure"),)
    assert product.module("measure").mode == "joint"
    assert [list(s) for s in product.stages] == [["find[a]", "find[b]", "measure"]]
    assert not product.module("measure").codependent
    summed = make_plan(_merge_family(lambda: Or.sum()), data)
    assert not summed.module("find[a]").codependent and summed.groups == ()
    assert summed.module("find[a]").mode == "surrogate"
    maxed = make_plan(_merge_family(lambda: Or.max(), "softmask"), data)
    assert maxed.module("find[b]").codependent


def test_codependent_default_is_one_sgm_per_module():
    """The thesis's case study: each codependent find through its own SGM, stage 1;
    the reader after it, cached."""
    data = DataSpec({"features"}, {"answer"})
    plan = make_plan(_merge_family(lambda: And.min(), "softmask"), data)
    assert plan.groups == ()
    for f in ("find[a]", "find[b]"):
        m = plan.module(f)
        assert (m.mode, m.codependent, m.policy, m.stage, m.targets) == (
            "surrogate",
            True,
            "surrogate",
            1,
            ("answer",),
        )
    assert plan.module("measure").mode == "cached" and plan.module("measure").stage == 2
    assert "one surrogate gradient module each: find[a], find[b]" in plan.table()
    # per kind / per module policies; a name wins over its kind
    mixed = make_plan(
        _merge_family(lambda: And.min(), "softmask"),
        data,
        codependent="joint",
        policy={"find": "surrogate"},
    )
    assert mixed.groups == () and mixed.module("find[a]").mode == "surrogate"
    half = make_plan(
        _merge_family(lambda: And.min(), "softmask"),
        data,
        codependent="joint",
        policy={"find[b]": "surrogate"},
    )
    assert half.groups == () and half.module("find[a]").mode == "surrogate"
    with pytest.raises(PlanError, match="expected one of"):
        make_plan(_merge_family(lambda: And.min(), "softmask"), data, codependent="jointly")
    with pytest.raises(PlanError, match="neither modules nor kinds"):
        make_plan(_merge_family(lambda: And.min(), "softmask"), data, policy={"fnd": "joint"})


def test_module_targets_are_never_joined():
    data = DataSpec(
        {"features"}, {"answer"}, module_targets={"find[a]": "mask_a", "find[b]": "mask_b"}
    )
    plan = make_plan(_merge_family(lambda: And.min(), "softmask"), data, codependent="joint")
    assert plan.groups == ()
    for f, col in (("find[a]", "mask_a"), ("find[b]", "mask_b")):
        m = plan.module(f)
        assert (m.mode, m.direct, m.module_target, m.codependent) == ("direct", True, col, True)
    assert not any(t.startswith("<") for m in plan.modules.values() for t in m.targets)
    one = make_plan(
        _merge_family(lambda: And.min(), "softmask"),
        DataSpec({"features"}, {"answer"}, module_targets={"find[a]": "mask_a"}),
        codependent="joint",
    )
    assert one.module("find[a]").mode == "direct" and one.module("find[b]").mode == "surrogate"


class Relate(Module):
    inputs = {"mask": Heatmap("b 1 h w")}
    outputs = {"mask": Heatmap("b 1 h w")}

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, mask):
        return torch.relu(self.conv(mask))


def _relate_family(orders):
    kinds = Kinds(
        find=lambda: ToyFind(channels=4, out="heatmap"),
        relate=Relate,
        measure=lambda: ToyMeasure(answers=5),
    )
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
    assert set(joint.groups[0]) == {"relate[left]", "relate[right]", "measure"}
    assert joint.module("find[a]").mode == "surrogate" and joint.module("find[a]").stage == 1


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
    assert plan.module("find[0]").registry_entry == "toy_find.0-v1@1"  # pinned to the version
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


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s.update(name=3), r"name: expected a string, found an integer 3"),
        (
            lambda s: s.update(imports="brickwork"),
            r"imports: expected an array of strings, found a string",
        ),
        (
            lambda s: s["kinds"].update(find=["toy_find"]),
            r"kinds\.find: expected an object \{\.\.\.\}, found an array",
        ),
        (lambda s: s["kinds"]["find"].update(config=4), r"kinds\.find\.config: expected an object"),
        (
            lambda s: s["layouts"][1].update(nodes={"id": "f"}),
            r"layouts\[1\]\.nodes: expected an array",
        ),
        (
            lambda s: s["layouts"][0]["nodes"][1].update(module=7),
            r"layouts\[0\]\.nodes\[1\]\.module: expected a string, found an integer 7",
        ),
        (
            lambda s: s["layouts"][0]["nodes"][0].update(inputs={"features": 1}),
            r"layouts\[0\]\.nodes\[0\]\.inputs\.features: expected a string, found an integer 1",
        ),
        (
            lambda s: s["data"].update(targets="answer"),
            r"data\.targets: expected an array of strings, found a string \"answer\"",
        ),
        (lambda s: s["data"].update(path=["d"]), r"data\.path: expected a string, found an array"),
        (
            lambda s: s.update(cycles="sometimes"),
            r"cycles: expected \"error\" or \"joint\", found a string",
        ),
        (
            lambda s: s.update(codependent="both"),
            r"codependent: expected \"surrogate\" or \"joint\"",
        ),
        (
            lambda s: s.update(policy={"find": "alone"}),
            r"policy\.find: expected \"surrogate\" or \"joint\"",
        ),
        (
            lambda s: s["train"]["hparams"]["find"].update(starts=0),
            r"train\.hparams\.find\.starts: expected an integer >= 1",
        ),
        (
            lambda s: s["train"]["hparams"]["find"].update(summary="mean"),
            r"train\.hparams\.find\.summary: expected \"auto\"",
        ),
        (
            lambda s: s["train"].update(workers="2"),
            r"train\.workers: expected an integer >= 1, found a string \"2\"",
        ),
        (
            lambda s: s["train"].update(workers=0),
            r"train\.workers: expected an integer >= 1, found an integer 0",
        ),
        (
            lambda s: s["train"].update(seed=1.5),
            r"train\.seed: expected an integer, found a number 1\.5",
        ),
        (
            lambda s: s["train"].update(val_fraction=1),
            r"train\.val_fraction: expected a number in \[0, 1\)",
        ),
        (
            lambda s: s["train"]["hparams"]["find"].update(epochs="5"),
            r"train\.hparams\.find\.epochs: expected an integer >= 1, found a string \"5\"",
        ),
        (
            lambda s: s["train"]["hparams"]["find"].update(lr=-1),
            r"train\.hparams\.find\.lr: expected a number > 0",
        ),
        (
            lambda s: s["train"]["hparams"]["find"].update(optimizer="lbfgs"),
            r"train\.hparams\.find: FitConfig\.optimizer: got 'lbfgs'",
        ),
        (
            lambda s: s["train"]["hparams"]["find"].update(loss="nosuchpkg.losses:focal"),
            r"train\.hparams\.find\.loss: .*nosuchpkg",
        ),
        (
            lambda s: s["train"]["hparams"].update(fnd={"epochs": 1}),
            r"train\.hparams\.fnd: no layout kind or module is named 'fnd'",
        ),
        (
            lambda s: s["train"].update(search={"find": {"lr": {"type": "float", "low": 1}}}),
            r"train\.search\.find: search space 'lr'",
        ),
    ],
)
def test_plan_file_types_are_checked_with_key_paths(tmp_path, edit, message):
    spec = example_plan_json()
    edit(spec)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(PlanError, match=message) as err:
        load_plan_file(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


def test_plan_file_that_is_a_folder_or_binary(tmp_path):
    with pytest.raises(PlanError, match="is a folder, expected a plan file"):
        load_plan_file(tmp_path)
    (tmp_path / "p.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(PlanError, match="not a text file"):
        load_plan_file(tmp_path / "p.json")


def test_plan_file_fit_options_reach_the_jobs(tmp_path):
    """optimizer, scheduler, loss and metric from a plan file train each job."""
    from brickwork.training.trainer import train_plan

    spec = example_plan_json()
    spec["train"]["hparams"] = {
        "encoder": {
            "epochs": 2,
            "optimizer": "sgd",
            "momentum": 0.9,
            "scheduler": "cosine",
            "lr": 0.05,
        },
        "find": {"epochs": 1},
        "describe": {"epochs": 1},
        "measure": {
            "epochs": 1,
            "loss": "brickwork.training.fixtures:toy_answer_loss",
            "metric": "brickwork.training.fixtures:toy_answer_accuracy",
        },
    }
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(spec))
    loaded = load_plan_file(path)
    from brickwork.training import LocalExecutor
    from brickwork.training.fixtures import nmn_data

    data = nmn_data(96, len(loaded.family))
    plan = make_plan(loaded.family, loaded.data)

    res = train_plan(
        plan,
        loaded.family,
        loaded.kinds,
        data,
        workdir=tmp_path / "run",
        executor=LocalExecutor(1, in_process=True),
        hparams=loaded.train["hparams"],
    )
    enc = res.modules["encoder"]["hyperparameters"]
    assert enc["optimizer"] == "sgd" and enc["scheduler"] == "cosine"
    job = json.loads((tmp_path / "run" / "jobs" / "measure_count" / "job.json").read_text())
    assert job["key"]["loss"] == "brickwork.training.fixtures:toy_answer_loss"
    lines = (tmp_path / "run" / "jobs" / "encoder" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["lr"] != json.loads(lines[1])["lr"]
