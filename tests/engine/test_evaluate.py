"""evaluate()/predict() over a family: metrics by output type, per layout, row order,
bad layout columns refused with the row and the valid range."""

from __future__ import annotations

import pytest
import torch

from brickwork.errors import DataError
from brickwork.layouts import Runner
from brickwork.plan import DataSpec, make_plan
from brickwork.training.evaluate import EvaluationReport, _per_row, evaluate, predict
from brickwork.training.examples import nmn_data, nmn_family, nmn_kinds
from brickwork.training.trainer import train_plan
from brickwork.types import Features, Probs, SoftMask


def test_evaluate_matches_a_manual_runner_pass():
    kinds = nmn_kinds()
    family = nmn_family(kinds)
    data = nmn_data(100, len(family), seed=3)
    report = evaluate(family, kinds, data, batch_size=16)
    lays = [family[i] for i in data["layout"].tolist()]
    with torch.no_grad():
        out = Runner(kinds)(lays, {"features": data["features"], "question": data["question"]},
                            outputs=["answer"])["answer"]
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
    ref = Runner.per_sample(lays, {"features": data["features"], "question": data["question"]},
                            outputs=["answer"])["answer"]
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
    with pytest.raises(DataError, match=rf"row {row}: layout index {bad} is out of range; "
                                        r"expected 0\.\.3"):
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
