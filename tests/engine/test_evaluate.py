"""evaluate()/predict() over a family: metrics by output type, per layout, row order,
bad layout columns refused with the row and the valid range."""

from __future__ import annotations

import pytest
import torch

from brickwork.errors import DataError
from brickwork.layouts import Runner
from brickwork.plan import DataSpec, make_plan
from brickwork.training.evaluate import EvaluationReport, _per_row, evaluate, predict
from brickwork.training.fixtures import nmn_data, nmn_family, nmn_kinds
from brickwork.training.trainer import train_plan
from brickwork.types import Features, Probs, SoftMask


def test_evaluate_matches_a_manual_runner_pass():
    kinds = nmn_kinds()
    family = nmn_family(kinds)
    data = nmn_data(100, len(family), seed=3)
    report = evaluate(family, kinds, data, batch_size=16)
    lays = [family[i] for i in data["layout"].tolist()]
    with torch.no_grad():
        out = Runner(kinds)(
            lays, {"features": data["features"], "question": data["question"]}, outputs=["answer"]
        )["answer"]
    hit = (out.argmax(-1) == data["answer"]).float()
    a = report.outputs["answer"]
    assert a["metric"] == "accuracy" and a["count"] == 100
    assert a["value"] == pytest.approx(float(hit.mean()))
    assert sum(b["count"] for b in a["by_layout"].values()) == 100
    for i, lay in enumerate(family):
        m = data["layout"] == i
        assert a["by_layout"][lay.name]["value"] == pytest.approx(float(hit[m].mean()))
    table = report.table()
    assert "answer" in table and "(all)" in table and "describe[what](0)" in table
    again = EvaluationReport.from_json(report.to_json())
    assert again.outputs == report.to_json()["outputs"] and again.samples == 100


def test_predict_keeps_sample_order():
    kinds = nmn_kinds()
    family = nmn_family(kinds)
    data = nmn_data(40, len(family), seed=1)
    pred = predict(family, kinds, data, batch_size=7)["answer"]
    lays = [family[i] for i in data["layout"].tolist()]
    ref = Runner.per_sample(
        lays, {"features": data["features"], "question": data["question"]}, outputs=["answer"]
    )["answer"]
    assert torch.allclose(pred, ref.detach(), atol=1e-5)


def test_metric_follows_the_output_type():
    p = torch.tensor([[0.9, 0.1], [0.3, 0.7]])
    assert _per_row(Probs("b k"), p, torch.tensor([0, 0]))[0] == "accuracy"
    assert _per_row(Probs("b k"), p, torch.tensor([0, 0]))[1].tolist() == [1.0, 0.0]
    m = torch.tensor([[[0.9, 0.2]], [[0.1, 0.6]]])
    metric, v = _per_row(SoftMask("b 1 n"), m, torch.tensor([[[1.0, 0.0]], [[1.0, 1.0]]]))
    assert metric == "accuracy" and v.tolist() == [1.0, 0.5]
    metric, v = _per_row(Features("b d"), torch.zeros(2, 2), torch.tensor([[1.0, 1.0], [0.0, 2.0]]))
    assert metric == "mse" and v.tolist() == [1.0, 2.0]


@pytest.mark.parametrize("bad, row", [(4, 3), (-1, 3)])
def test_layout_column_out_of_range_is_refused(bad, row, tmp_path):
    kinds = nmn_kinds()
    family = nmn_family(kinds)
    data = nmn_data(10, len(family))
    layout = data["layout"].clone()
    layout[row] = bad
    broken = type(data)({**dict(data), "layout": layout}, data.ids)
    with pytest.raises(
        DataError,
        match=rf"row {row}: layout index {bad} is out of range; "
        r"expected 0\.\.3",
    ):
        evaluate(family, kinds, broken)
    plan = make_plan(family, DataSpec({"features", "question"}, {"answer"}))
    with pytest.raises(DataError, match=rf"row {row}"):
        train_plan(plan, family, kinds, broken, workdir=tmp_path / "run", executor="local")
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_evaluate_without_targets_says_so():
    kinds = nmn_kinds()
    family = nmn_family(kinds)
    data = nmn_data(10, len(family))
    no_answer = type(data)({k: v for k, v in dict(data).items() if k != "answer"}, data.ids)
    with pytest.raises(DataError, match="no layout output has a target column"):
        evaluate(family, kinds, no_answer)
    with pytest.raises(DataError, match=r"target columns \['nope'\]"):
        evaluate(family, kinds, data, targets=["nope"])


class _Inline:
    name = "inline"
    workers = 1

    def map(self, fn, jobs, **kw):
        return [fn(dict(j)) for j in jobs]

    def close(self):
        pass


def _rc(argv):
    from brickwork.cli import main

    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def test_evaluate_run_and_cli_errors(tmp_path, capsys):
    import json

    from brickwork.errors import TrainingError
    from brickwork.training import Samples
    from brickwork.training.fixtures import write_example_plan
    from brickwork.training.trainer import evaluate_run

    plan_path = write_example_plan(str(tmp_path / "p"), samples=96)
    kinds = nmn_kinds()
    family = nmn_family(kinds)
    data = Samples.load(tmp_path / "p" / "data.safetensors")
    plan = make_plan(family, DataSpec({"features", "question"}, {"answer"}))
    run = tmp_path / "run"
    res = train_plan(
        plan,
        family,
        kinds,
        data,
        workdir=run,
        executor=_Inline(),
        hparams={k: {"epochs": 1} for k in ("encoder", "find", "describe", "measure")},
    )
    fresh = nmn_kinds()
    val = evaluate_run(nmn_family(fresh), fresh, run)
    assert val.to_json()["outputs"] == res.summary["evaluation"]["outputs"]
    for name in res.modules:
        assert fresh.module(name).fingerprint() == kinds.module(name).fingerprint()
    train = evaluate_run(nmn_family(fresh), fresh, run, split="train")
    assert train.samples + val.samples == 96
    # the CLI: a table and JSON; bad folders and files are one line
    assert _rc(["evaluate", plan_path, "--run", str(run), "--json", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["samples"] == val.samples
    assert "(all)" in capsys.readouterr().out
    assert _rc(["evaluate", plan_path, "--run", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a brickwork run folder" in err and err.count("\n") == 0
    assert _rc(["evaluate", plan_path, "--run", plan_path]) == 2
    assert "is a file, expected a folder" in capsys.readouterr().err
    assert _rc(["evaluate", plan_path, "--run", str(run), "--json", str(tmp_path)]) == 2
    assert "is a folder, expected a file path" in capsys.readouterr().err
    assert _rc(["evaluate", plan_path, "--run", str(run), "--split", "test"]) == 2
    capsys.readouterr()
    # an altered run folder is refused, not silently scored
    d = Samples.load(run / "data.safetensors")
    Samples({**dict(d), "answer": (d["answer"] + 1) % 5}, d.ids).save(run / "data.safetensors")
    with pytest.raises(TrainingError, match="digest differs"):
        evaluate_run(nmn_family(fresh), fresh, run)


def test_end_to_end_refuses_a_negative_layout_index():
    from brickwork.training import FitConfig, train_end_to_end

    kinds = nmn_kinds()
    family = nmn_family(kinds)
    data = nmn_data(8, len(family))
    layout = data["layout"].clone()
    layout[2] = -1
    broken = type(data)({**dict(data), "layout": layout}, data.ids)
    with pytest.raises(DataError, match=r"data: column 'layout', row 2: layout index -1"):
        train_end_to_end(family, kinds, broken, targets=["answer"], config=FitConfig(epochs=1))
