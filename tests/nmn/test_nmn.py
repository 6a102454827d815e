"""NMN study: typed domains, the answer-only plan, SGM on a toy problem, CLI errors."""

from __future__ import annotations

import json

import pytest
import torch

from brickwork.cli import main as cli_main
from brickwork.layouts import Kinds, LayoutBuilder, Runner
from brickwork.modules import And
from brickwork.studies.clevr.data import Program
from brickwork.studies.clevr.nmn import (
    COMPARISONS,
    Compare,
    Find,
    Measure,
    Query,
    Relate,
    Same,
    Scene,
    StudyConfig,
    Unique,
    merge_prior,
    nmn_kinds,
    program_layout,
    study_plan,
)
from brickwork.studies.clevr.nmn.data import _digest
from brickwork.studies.clevr.nmn.vocab import ANSWER_INDEX, OFF
from brickwork.training import FitConfig, Samples, fit
from brickwork.training.sgm import SurrogateSpec
from brickwork.types import SoftMask

C = 6


def _rand(*shape, scale=5.0):
    return torch.randn(*shape) * scale


@pytest.mark.parametrize("seed", range(5))
def test_typed_attention_modules_stay_in_soft_mask_domain(seed):
    torch.manual_seed(seed)
    f = _rand(4, C, 8, 12)
    mask = torch.rand(4, 1, 8, 12)
    t = SoftMask("b 1 h w")
    for out in (
        Scene(C)(f),
        Find(C)(f),
        Relate(C)(mask=mask, features=f),
        Same(C)(mask=mask, features=f),
        Unique()(mask),
    ):
        assert t.check(out) == ""
        assert bool(((out >= 0) & (out <= 1)).all())


@pytest.mark.parametrize("seed", range(5))
def test_typed_answer_modules_only_give_their_answers(seed):
    torch.manual_seed(seed)
    mask, f = torch.rand(4, 1, 8, 12), _rand(4, C, 8, 12)
    count = Measure("count")(mask)
    assert (count[:, ANSWER_INDEX["red"]] == OFF).all()
    shape = Query(C, "shape")(mask=mask, features=f)
    top = shape.argmax(-1)
    assert set(top.tolist()) <= {ANSWER_INDEX[s] for s in ("cube", "sphere", "cylinder")}
    for fn in COMPARISONS:
        out = Compare(fn)(_rand(4, 28), _rand(4, 28))
        assert torch.isfinite(out).all()
        assert set(out.argmax(-1).tolist()) <= {ANSWER_INDEX["yes"], ANSWER_INDEX["no"]}
    logp = merge_prior("typed", count, _rand(4, 28))
    assert torch.allclose(logp.exp().sum(-1), torch.ones(4), atol=1e-5)


def test_typed_compare_is_exact_on_certain_inputs():
    a = torch.full((1, 28), OFF)
    b = torch.full((1, 28), OFF)
    a[0, ANSWER_INDEX["2"]] = 20.0
    b[0, ANSWER_INDEX["5"]] = 20.0
    yes, no = ANSWER_INDEX["yes"], ANSWER_INDEX["no"]
    assert Compare("less_than")(a, b)[0, yes] > Compare("less_than")(a, b)[0, no]
    assert Compare("greater_than")(a, b)[0, yes] < Compare("greater_than")(a, b)[0, no]
    assert Compare("equal_integer")(a, b)[0, yes] < Compare("equal_integer")(a, b)[0, no]


def _program():
    return Program.from_json(
        [
            {"function": "scene", "inputs": []},
            {"function": "filter_color", "inputs": [0], "value_inputs": ["red"]},
            {"function": "unique", "inputs": [1]},
            {"function": "relate", "inputs": [2], "value_inputs": ["left"]},
            {"function": "count", "inputs": [3]},
        ]
    )


def test_answer_only_plan_puts_find_modules_through_a_surrogate():
    lay = program_layout(_program(), nmn_kinds("typed", C))
    plan = study_plan([lay], supervision="answers")
    assert plan["find[red]"]["mode"] == "surrogate"
    assert plan["scene"]["mode"] == "surrogate"
    assert plan["question_encoder"]["mode"] == "direct"
    # the dependent modules keep the engine's (make_plan) modes and come after stage 1
    assert {plan[n]["mode"] for n in ("unique", "relate[left]", "measure[count]")} <= {
        "cached",
        "joint",
        "surrogate",
    }
    assert plan["measure[count]"]["mode"] == "cached"
    assert all(plan[n]["stage"] >= 2 for n in ("unique", "relate[left]", "measure[count]"))
    assert plan["measure[count]"]["supervision"] == "direct"
    assert (
        plan["find[red]"]["input"] == "decoupled" and plan["find[red]"]["supervision"] == "indirect"
    )
    targets = study_plan([lay], supervision="targets")
    assert targets["find[red]"]["mode"] == "direct"
    assert targets["scene"]["mode"] == "direct"


def test_classic_layout_uses_heatmap_ops():
    lay = program_layout(_program(), nmn_kinds("classic", C))
    kinds = lay.kinds
    assert kinds.module("And").mode == "product"
    out = Runner(kinds)([lay], {"features": torch.randn(1, C, 8, 12)})["answer"]
    assert out.shape == (1, 28)


def _toy(n, gen):
    """Cells are 'red' where channel 0 is high; answer: is there a red cell?"""
    red = (torch.rand(n, 1, 4, 6, generator=gen) < 0.06).float()
    f = torch.randn(n, 4, 4, 6, generator=gen) * 0.5
    f[:, :1] += 3 * red - 1.5
    yes = red.flatten(1).amax(1).long()
    return f, red, torch.where(yes == 1, ANSWER_INDEX["yes"], ANSWER_INDEX["no"])


def test_sgm_trains_a_find_module_that_works_in_the_full_layout():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    f, red, answer = _toy(1500, gen)
    find = Find(channels=4, interface="typed")
    head = SurrogateSpec(24, 28, rank=4, dropout=0.1).build()

    class Trainee(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.find, self.head = find, head

        def forward(self, x):
            return self.head(self.find(x))

    loss = lambda m, b: torch.nn.functional.cross_entropy(m(b["f"]), b["a"])  # noqa: E731
    fit(
        Trainee(),
        loss,
        Samples({"f": f, "a": answer}),
        config=FitConfig(epochs=25, batch_size=64, lr=1e-2, seed=0),
    )
    # the find module alone now marks the red cells
    ft, red_t, ans_t = _toy(500, torch.Generator().manual_seed(1))
    with torch.no_grad():
        m = find(ft)
    assert float(m[red_t == 1].mean()) > float(m[red_t == 0].mean()) + 0.3
    # frozen, it serves the full layout: exist(And(scene, find[red])) with a fresh exist head
    for p in find.parameters():
        p.requires_grad_(False)
    kinds = Kinds(
        find=lambda v: find,
        scene=lambda: Scene(4),
        measure=lambda fn: Measure(fn),
        And=lambda: And.min(),
    )
    b = LayoutBuilder(kinds, "q")
    feats = b.input("features")
    s = b.add("scene", features=feats).source()
    r = b.add("find[red]", features=feats).source()
    both = b.add("And", a=s, b=r).source()
    b.output("answer", b.add("measure[exist]", mask=both))
    lay = b.build()
    runner = Runner(kinds)
    params = [p for p in kinds.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-2)
    for _ in range(150):
        idx = torch.randint(0, 1500, (64,))
        out = runner([lay] * 64, {"features": f[idx]})["answer"]
        loss = torch.nn.functional.cross_entropy(out, answer[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = runner([lay] * 500, {"features": ft})["answer"].argmax(-1)
    assert float((pred == ans_t).float().mean()) > 0.9


def test_study_cli_reports_loader_data_errors(tmp_path, capsys):
    cfg = StudyConfig.quick(seed=0)
    root = tmp_path / "cache" / f"clevr-{_digest(cfg.data_json())}"
    (root / "scenes").mkdir(parents=True)
    (root / "questions").mkdir()
    for split in ("train", "val", "test"):
        (root / "questions" / f"CLEVR_{split}_questions.json").write_text("{}")
    bad = root / "scenes" / "CLEVR_train_scenes.json"
    bad.write_text(json.dumps({"info": {}, "scenes": [{"image_index": "zero"}]}))
    rc = cli_main(
        [
            "clevr",
            "study",
            "--quick",
            "--out",
            str(tmp_path / "out"),
            "--cache",
            str(tmp_path / "cache"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: DataError:")
    assert "CLEVR_train_scenes.json" in err
    assert "Traceback" not in err


def test_study_cli_refuses_a_bad_learning_rate(tmp_path, capsys):
    rc = cli_main(["clevr", "study", "--quick", "--out", str(tmp_path / "out"), "--lr", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and "--lr 0.0" in err and "e.g. --lr 1e-3" in err
    assert not (tmp_path / "out").exists()  # refused before anything was written
