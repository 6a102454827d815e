"""Downstream NMN training from recorded (cached) find/scene outputs equals recomputing them."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from brickwork.studies.clevr.data import Program
from brickwork.studies.clevr.nmn.data import QuestionSet, StudyData
from brickwork.studies.clevr.nmn.evaluate import _forward
from brickwork.studies.clevr.nmn.layouts import NMN
from brickwork.studies.clevr.nmn.modular import find_modules, freeze, recorded_finds
from brickwork.studies.clevr.nmn.recorded import record_finds
from brickwork.studies.clevr.nmn.vocab import K

C = 8


def _p(nodes):
    return Program.from_json([{"function": f, "inputs": i, "value_inputs": v} for f, i, v in nodes])


PROGRAMS = [
    _p([("scene", [], []), ("filter_color", [0], ["red"]), ("count", [1], [])]),
    _p(
        [
            ("scene", [], []),
            ("filter_color", [0], ["blue"]),
            ("unique", [1], []),
            ("relate", [2], ["left"]),
            ("filter_shape", [3], ["cube"]),
            ("exist", [4], []),
        ]
    ),
    _p(
        [
            ("scene", [], []),
            ("filter_shape", [0], ["cube"]),
            ("unique", [1], []),
            ("query_color", [2], []),
        ]
    ),
    _p([("scene", [], []), ("exist", [0], [])]),
]


def _data(interface_seed: int = 0) -> StudyData:
    g = torch.Generator().manual_seed(interface_seed)
    n_img, n_q = 5, 12

    def qset() -> QuestionSet:
        progs = [PROGRAMS[i % len(PROGRAMS)] for i in range(n_q)]
        return QuestionSet(
            questions=[SimpleNamespace(program=p) for p in progs],  # type: ignore[misc]
            image=torch.randint(0, n_img, (n_q,), generator=g),
            split="train",
            tokens=torch.ones(n_q, 3, dtype=torch.long),
            answer=torch.randint(0, K, (n_q,), generator=g),
            depth=torch.ones(n_q, dtype=torch.long),
        )

    return StudyData(
        features={"train": torch.randn(n_img, C, 4, 6, generator=g)},
        sets={"train": qset(), "val": qset()},
        tokenizer=None,  # type: ignore[arg-type]
        find_targets={},
        digest="tiny",
        encoder_accuracy={},
    )


@pytest.mark.parametrize("interface", ["typed", "classic"])
def test_recorded_finds_give_the_same_outputs_and_gradients(interface, tmp_path):
    torch.manual_seed(0)
    data = _data()
    model = NMN(interface, vocab=4, channels=C)
    finds = find_modules(model, data)
    freeze(model, finds)
    reader, info = recorded_finds(model, finds, data, ["train"], tmp_path)
    assert info["hits"] == {"train": False} and len(info["digests"]["train"]) == 64
    qs, feats = data.sets["train"], data.features["train"]
    idx = torch.arange(len(qs))
    prior = torch.randn(len(qs), K)
    params = [p for p in model.parameters() if p.requires_grad]

    def run(recorded: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        if recorded:
            logp = reader.forward(
                "train", [q.program for q in qs.questions], qs.image, feats[qs.image], prior
            )
        else:
            logp = _forward(model, qs, feats, idx, prior)
        torch.nn.functional.nll_loss(logp, qs.answer).backward()
        return logp.detach(), [
            p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params
        ]

    full, g_full = run(False)
    rec, g_rec = run(True)
    torch.testing.assert_close(rec, full, rtol=1e-5, atol=1e-6)
    assert any(g.abs().sum() > 0 for g in g_full)
    for a, b in zip(g_rec, g_full):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_recording_is_reused_and_keyed_by_the_find_weights(tmp_path):
    torch.manual_seed(0)
    data = _data()
    model = NMN("typed", vocab=4, channels=C)
    finds = find_modules(model, data)
    names = [n for n in finds if n == "scene" or n.startswith("find[")]
    ds, hit = record_finds(model, names, data, "train", tmp_path)
    assert not hit and ds.columns == ["masks"] and len(ds) == 5
    again, hit = record_finds(model, names, data, "train", tmp_path)
    assert hit and again.key_digest == ds.key_digest
    with torch.no_grad():
        model.kinds.module("find[red]").b2.add_(1.0)
    changed, hit = record_finds(model, names, data, "train", tmp_path)
    assert not hit and changed.key_digest != ds.key_digest
