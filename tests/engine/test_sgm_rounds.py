"""SGM jobs of a plan: routes through the layout's merge ops, the plateau measure, later
rounds with trained context, and honest resume (job keys cover the SGM settings)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from brickwork.errors import TrainingError
from brickwork.layouts import Kinds, LayoutBuilder
from brickwork.modules import And
from brickwork.plan import DataSpec, make_plan
from brickwork.training import LocalExecutor, Samples, train_plan
from brickwork.training.fixtures import ToyFind, ToyMeasure
from brickwork.training.job import ModuleJob, job_key
from brickwork.training.surrogate_table import surrogate_table


def _family():
    kinds = Kinds(
        find=lambda: ToyFind(channels=4),
        measure=lambda: ToyMeasure(answers=5),
        And=lambda: And.min(),
    )
    family = []
    for finds in (("a",), ("b",), ("a", "b")):
        b = LayoutBuilder(kinds, name="&".join(finds))
        f = b.input("features")
        m = b.add(f"find[{finds[0]}]", features=f)["mask"]
        for x in finds[1:]:
            m = b.add("And", a=m, b=b.add(f"find[{x}]", features=f)["mask"])["out"]
        b.output("answer", b.add("measure", mask=m)["answer"])
        family.append(b.build())
    return kinds, family


def _data(n=240):
    g = torch.Generator().manual_seed(0)
    feats = torch.rand(n, 4, 3, 3, generator=g)
    layout = torch.randint(0, 3, (n,), generator=g)
    a, b = feats[:, 0] > 0.5, feats[:, 1] > 0.5
    mask = torch.where(
        (layout == 0)[:, None, None], a, torch.where((layout == 1)[:, None, None], b, a & b)
    )
    answer = mask.flatten(1).sum(1).clamp(max=4)
    return Samples({"features": feats, "layout": layout, "answer": answer})


def test_routes_keep_the_merge_and_truncate_without_context():
    kinds, family = _family()
    data = _data()
    cols = {"target": "answer"}
    alone, routes = surrogate_table("find[a]", family, kinds, data, cols)
    # without a trained partner only the rows whose answer find[a] decides stay
    assert [r["steps"] for r in routes] == [[]]
    assert len(alone) == int((data["layout"] == 0).sum())
    both, routes = surrogate_table("find[a]", family, kinds, data, cols, trained={"find[b]"})
    assert len(both) == int((data["layout"] != 1).sum())
    steps = {len(r["steps"]) for r in routes}
    assert steps == {0, 1} and routes[1]["steps"][0]["kind"] == "And"
    merged = both["route"] == 1
    with torch.no_grad():
        expect = kinds.module("find[b]")(both["in.features"][merged])
    assert torch.allclose(both["ctx.0.b"][merged], expect)
    few, routes = surrogate_table("find[a]", family, kinds, data, cols, min_rows=10_000)
    assert len(few) == int((data["layout"] != 1).sum())
    assert any(r["reader"].endswith("(truncated)") for r in routes)


def test_job_key_covers_routes_and_round():
    job = ModuleJob(
        name="find[a]",
        kind="toy_find",
        config={"channels": 4},
        mode="surrogate",
        data="t",
        inputs={"features": "in.features"},
        target="target",
        workdir="w",
    )
    other = dataclasses.replace(job, round=2)
    routed = dataclasses.replace(job, routes=({"steps": [], "reader": "measure.mask"},))
    assert len({json.dumps(job_key(j), sort_keys=True) for j in (job, other, routed)}) == 3
    assert job_key(job)["hparams"]["starts"] == 1 and job_key(job)["hparams"]["plateau"] == 0.85


def test_plateau_sends_a_module_to_a_second_round_and_resume_skips(tmp_path):
    kinds, family = _family()
    data = _data()
    plan = make_plan(family, DataSpec({"features"}, {"answer"}))
    assert plan.module("find[a]").mode == "surrogate" and plan.groups == ()
    # plateau 0: every find counts as stuck, so the second round always runs
    hp = {"find": {"epochs": 2, "plateau": 0.0, "rounds": 2, "starts": 2}, "measure": {"epochs": 1}}
    res = train_plan(
        plan,
        family,
        kinds,
        data,
        workdir=tmp_path / "run",
        executor=LocalExecutor(1, in_process=True),
        hparams=hp,
        evaluate_at_end=False,
    )
    for f in ("find[a]", "find[b]"):
        r = res.modules[f]
        assert [x["round"] for x in r["rounds"]] == [1, 2]
        assert len(r["sgm"]["starts"]) == 2 and r["sgm"]["start_loss"] > 0
        assert (tmp_path / "run" / "jobs" / f"find_{f[5]}-round2" / "result.json").is_file()
    again = train_plan(
        plan,
        family,
        kinds,
        data,
        workdir=tmp_path / "run",
        executor=LocalExecutor(1, in_process=True),
        hparams=hp,
        evaluate_at_end=False,
        resume=True,
    )
    for f in ("find[a]", "find[b]"):  # every round's job finished before with its key
        assert again.modules[f]["skipped"]
        assert again.modules[f]["rounds"] == res.modules[f]["rounds"]
    assert again.modules["measure"]["skipped"]
    assert {f: again.modules[f]["sgm"] for f in ("find[a]", "find[b]")} == {
        f: res.modules[f]["sgm"] for f in ("find[a]", "find[b]")
    }


def test_joint_group_trains_its_downstream_reader_once(tmp_path):
    """codependent='joint': the finds and the reader between them and the answer train
    together (the reader is not left at its initial weights, nor trained again)."""
    kinds, family = _family()
    data = _data()
    plan = make_plan(family, DataSpec({"features"}, {"answer"}), codependent="joint")
    assert plan.groups == (("find[a]", "find[b]", "measure"),)
    before = {
        n: [p.detach().clone() for p in kinds.module(n).parameters()]
        for n in ("find[a]", "measure")
    }
    res = train_plan(
        plan,
        family,
        kinds,
        data,
        workdir=tmp_path / "run",
        executor=LocalExecutor(1, in_process=True),
        hparams={"find": {"epochs": 2}},
        evaluate_at_end=False,
    )
    for n, params in before.items():
        assert res.modules[n]["mode"] == "joint"
        assert any(not torch.equal(a, b) for a, b in zip(params, kinds.module(n).parameters()))
    assert (
        len(plan.stages) == 1 and not (tmp_path / "run" / "jobs" / "measure" / "job.json").exists()
    )


def test_answer_prior_column_is_added_to_the_head(tmp_path):
    kinds, family = _family()
    data = _data()
    prior = torch.nn.functional.one_hot(data["answer"], 5).float() * 3.0  # a perfect prior
    data = Samples({**dict(data), "prior": prior})
    plan = make_plan(family, DataSpec({"features"}, {"answer"}))
    res = train_plan(
        plan,
        family,
        kinds,
        data,
        workdir=tmp_path / "run",
        executor=LocalExecutor(1, in_process=True),
        hparams={
            "find": {"epochs": 1, "prior": "prior", "second_round": False},
            "measure": {"epochs": 1},
        },
        evaluate_at_end=False,
    )
    sgm = res.modules["find[a]"]["sgm"]
    # with the head at zero the SGM predicts the prior: the loss of a 3-logit margin
    assert abs(sgm["start_loss"] - float(torch.log(1 + 4 * torch.exp(torch.tensor(-3.0))))) < 1e-4
    bad = make_plan(family, DataSpec({"features"}, {"answer"}))
    with pytest.raises(TrainingError, match="'nope'"):
        train_plan(
            bad,
            family,
            kinds,
            data,
            workdir=tmp_path / "run2",
            executor=LocalExecutor(1, in_process=True),
            hparams={"find": {"prior": "nope"}},
            evaluate_at_end=False,
        )
