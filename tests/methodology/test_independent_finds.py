"""The methodology as a new user meets it (issue 17): a small NMN task the project never
saw — coloured shapes on a grid — whose finds train independently through ``make_plan``
+ ``train_plan`` alone, supervised by the answers only (through one surrogate gradient
module each, §4.2.3), and end up as good as the generator's ground-truth masks say,
with the assembled model as accurate as an end-to-end one."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from brickwork.layouts import Kinds, Layout, LayoutBuilder, Runner
from brickwork.modules import And, Module, register_kind
from brickwork.plan import DataSpec, make_plan
from brickwork.training import FitConfig, LocalExecutor, Samples, train_end_to_end, train_plan
from brickwork.types import Features, Logits, SoftMask

COLOURS = ("red", "green", "blue")
SHAPES = ("circle", "square", "triangle")
ATTRS = COLOURS + SHAPES
H = W = 4
CHANNELS = len(ATTRS) + 2  # one-hot colour and shape, two channels of pure noise
ANSWERS = 2 + 6  # no, yes, count 0..5
SINGLE = 0.5  # share of questions about one attribute (the rest: a colour AND a shape)


@register_kind("shapes_find", example_config={"channels": CHANNELS}, sizes={"b": 2, "h": H, "w": W})
class ShapesFind(Module):
    """find[x]: cell features ``[b c h w]`` to a soft mask ``[b 1 h w]`` (per cell MLP)."""

    manual_config = True

    def __init__(self, channels: int = CHANNELS, hidden: int = 8):
        super().__init__()
        self._bw_config = {"channels": channels, "hidden": hidden}
        self.inputs = {"features": Features(f"b {channels} h w")}  # type: ignore[misc]
        self.outputs = {"mask": SoftMask("b 1 h w")}  # type: ignore[misc]
        self.net = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, 1, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(features))


@register_kind("shapes_measure", example_config={}, sizes={"b": 2, "h": H, "w": W})
class ShapesMeasure(Module):
    """exist / count: a soft mask to answer logits (its mass and largest cells)."""

    manual_config = True

    def __init__(self, answers: int = ANSWERS, hidden: int = 32, top: int = 3):
        super().__init__()
        self._bw_config = {"answers": answers, "hidden": hidden, "top": top}
        self.top = top
        self.inputs = {"mask": SoftMask("b 1 h w")}  # type: ignore[misc]
        self.outputs = {"answer": Logits(f"b {answers}")}  # type: ignore[misc]
        self.net = nn.Sequential(nn.Linear(1 + top, hidden), nn.ReLU(), nn.Linear(hidden, answers))

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        flat = mask.flatten(1)
        return self.net(torch.cat([flat.sum(1, keepdim=True), flat.topk(self.top, 1).values], 1))


def shapes_kinds() -> Kinds:
    return Kinds(find=ShapesFind, measure=ShapesMeasure, And=lambda: And.min())


def programs() -> list[tuple[str, tuple[str, ...]]]:
    """(reader, finds): exist/count of one attribute, or of a colour AND a shape."""
    out = [(r, (a,)) for r in ("exist", "count") for a in ATTRS]
    out += [(r, (c, s)) for r in ("exist", "count") for c in COLOURS for s in SHAPES]
    return out


def shapes_family(kinds: Kinds) -> list[Layout]:
    family = []
    for reader, finds in programs():
        b = LayoutBuilder(kinds, name=f"{reader}({' & '.join(finds)})")
        feats = b.input("features")
        mask = b.add(f"find[{finds[0]}]", features=feats)["mask"]
        for f in finds[1:]:
            mask = b.add("And", a=mask, b=b.add(f"find[{f}]", features=feats)["mask"])["out"]
        b.output("answer", b.add(f"measure[{reader}]", mask=mask)["answer"])
        family.append(b.build())
    return family


def shapes_data(n: int, seed: int) -> tuple[Samples, torch.Tensor]:
    """Scenes, questions and answers; and the ground-truth attribute masks ``[n 6 h w]``
    (for scoring only: training never sees them)."""
    g = torch.Generator().manual_seed(seed)
    occupied = torch.rand(n, H, W, generator=g) < 0.4
    colour = torch.randint(0, 3, (n, H, W), generator=g)
    shape = torch.randint(0, 3, (n, H, W), generator=g)
    truth = torch.zeros(n, len(ATTRS), H, W)
    for i in range(3):
        truth[:, i] = (occupied & (colour == i)).float()
        truth[:, 3 + i] = (occupied & (shape == i)).float()
    feats = torch.cat([truth, torch.zeros(n, 2, H, W)], 1) + 0.25 * torch.randn(
        n, CHANNELS, H, W, generator=g
    )
    progs = programs()
    single = [i for i, (_, finds) in enumerate(progs) if len(finds) == 1]
    double = [i for i, (_, finds) in enumerate(progs) if len(finds) == 2]
    pick = torch.rand(n, generator=g) < SINGLE  # a share of questions ask about one attribute
    layout = torch.where(
        pick,
        torch.tensor(single)[torch.randint(0, len(single), (n,), generator=g)],
        torch.tensor(double)[torch.randint(0, len(double), (n,), generator=g)],
    )
    answer = torch.empty(n, dtype=torch.long)
    for k, li in enumerate(layout.tolist()):
        reader, finds = progs[li]
        m = torch.ones(H, W)
        for f in finds:
            m = m * truth[k, ATTRS.index(f)]
        c = int(m.sum())
        answer[k] = int(c > 0) if reader == "exist" else 2 + min(c, 5)
    return Samples({"features": feats, "layout": layout, "answer": answer}), truth


def answer_accuracy(family: list[Layout], kinds: Kinds, data: Samples) -> float:
    runner = Runner(kinds)
    with torch.no_grad():
        lays = [family[i] for i in data["layout"].tolist()]
        out = runner(lays, {"features": data["features"]}, outputs=["answer"])["answer"]
    return float((out.argmax(-1) == data["answer"]).float().mean())


def cell_accuracy(kinds: Kinds, attr: str, data: Samples, truth: torch.Tensor) -> float:
    with torch.no_grad():
        mask = kinds.module(f"find[{attr}]")(data["features"])[:, 0]
    return float(((mask > 0.5).float() == truth[:, ATTRS.index(attr)]).float().mean())


SGM_HPARAMS = {
    "epochs": 60,
    "lr": 0.01,
    "batch_size": 32,
    "patience": 12,
    "rank": 4,
    "dropout": 0.0,
    "starts": 2,
}
HEAD_HPARAMS = {"epochs": 40, "lr": 0.01, "batch_size": 64, "patience": 8}


@pytest.mark.slow
def test_finds_train_independently_through_the_plan(tmp_path):
    t0 = time.perf_counter()
    torch.manual_seed(0)
    train, _ = shapes_data(3000, seed=1)
    test, truth = shapes_data(1000, seed=2)
    kinds = shapes_kinds()
    family = shapes_family(kinds)
    plan = make_plan(family, DataSpec({"features"}, {"answer"}))
    finds = [f"find[{a}]" for a in ATTRS]
    assert plan.groups == ()
    assert {plan.module(f).mode for f in finds} == {"surrogate"}
    assert all(plan.module(f).codependent and plan.module(f).stage == 1 for f in finds)
    assert {plan.module(m).mode for m in ("measure[exist]", "measure[count]")} == {"cached"}
    res = train_plan(
        plan,
        family,
        kinds,
        train,
        workdir=tmp_path / "run",
        executor=LocalExecutor(1, in_process=True),
        hparams={"find": SGM_HPARAMS, "measure": HEAD_HPARAMS},
        seed=0,
    )
    cells = {a: cell_accuracy(kinds, a, test, truth) for a in ATTRS}
    modular = answer_accuracy(family, kinds, test)

    e2e_kinds = shapes_kinds()
    e2e_family = shapes_family(e2e_kinds)
    torch.manual_seed(0)
    train_end_to_end(
        e2e_family,
        e2e_kinds,
        train,
        targets=["answer"],
        config=FitConfig(epochs=40, lr=0.01, batch_size=64, seed=0),
    )
    end_to_end = answer_accuracy(e2e_family, e2e_kinds, test)
    seconds = time.perf_counter() - t0
    figures = {
        "cells": cells,
        "modular": modular,
        "end_to_end": end_to_end,
        "seconds": seconds,
        "sgm": {f: res.modules[f].get("sgm") for f in finds},
    }
    (tmp_path / "figures.txt").write_text(repr(figures))
    assert min(cells.values()) >= 0.9, figures
    assert modular >= end_to_end - 0.05, figures
    for f in finds:  # each find left its SGM plateau, in the first round or a later one
        assert not res.modules[f]["sgm"]["plateau"], figures
        assert res.modules[f]["sgm"]["sgm_loss"] < res.modules[f]["sgm"]["start_loss"]
