"""brickwork.compose ensembles: ensemble_of and run_candidate's fit.ensemble."""

from __future__ import annotations

from typing import cast

import pytest
import torch

from brickwork.compose import run_candidate
from brickwork.compose.holes import Hole, ensemble_of, make_hole
from brickwork.compose.jobs import ENSEMBLE_SEED_STEP
from brickwork.compose.program import hole_term
from brickwork.errors import PortError
from brickwork.modules import load_module, save_module
from brickwork.studies.compose import count_samples, digit_pools
from brickwork.types import Bool, Count, Features, Probs

IMG = Features("b 1 8 8")


def test_an_ensemble_averages_its_members_logits_and_survives_save_load(tmp_path):
    torch.manual_seed(0)
    members = [make_hole(IMG, Probs("b 10")) for _ in range(3)]
    ens = ensemble_of(members)
    x = torch.rand(5, 1, 8, 8)
    logits = torch.stack([m.raw(x=x) for m in members]).mean(0)
    assert torch.allclose(ens(x=x), torch.softmax(logits, -1), atol=1e-6)
    # not the mean of the probabilities: the logits are averaged
    assert not torch.allclose(ens(x=x), torch.stack([m(x=x) for m in members]).mean(0))
    again = load_module(save_module(ens, tmp_path / "ens"))
    assert isinstance(again, Hole) and again.config["members"] == 3
    assert torch.allclose(again(x=x), ens(x=x))


def test_ensemble_of_refuses_members_that_differ():
    a = make_hole(IMG, Bool("b 1"))
    b = make_hole(IMG, Bool("b 1"), hidden=32)
    with pytest.raises(PortError, match="members must share ports, architecture and width"):
        ensemble_of([a, b])
    with pytest.raises(PortError, match="got no holes"):
        ensemble_of([])
    with pytest.raises(PortError, match="members got 0, expected an integer >= 1"):
        Hole("cnn", a.config["inputs"], a.config["output"], members=0)


def test_fit_ensemble_is_the_mean_of_independent_fits(tmp_path):
    pools = digit_pools(0)
    tr = count_samples(pools["train"], 3, n=12, lengths=(2, 5), seed=0).save(tmp_path / "tr.st")
    va = count_samples(pools["val"], 3, n=20, lengths=(2, 5), seed=1).save(tmp_path / "va.st")
    term = ["compose", ["map", hole_term({"x": IMG}, Count("b 1"))], ["fold", ["lib", "add"]]]
    fit = {"epochs": 2, "batch_size": 8, "keep_best": "val_loss"}
    job = {"term": term, "train": str(tr), "val": str(va), "seed": 3}
    singles = [
        run_candidate(
            {**job, "seed": 3 + ENSEMBLE_SEED_STEP * m, "fit": fit, "out": str(tmp_path / f"s{m}")}
        )
        for m in range(2)
    ]
    both = run_candidate({**job, "fit": {**fit, "ensemble": 2}, "out": str(tmp_path / "e")})
    assert both["members"] == 2 and both["steps"] == singles[0]["steps"] + singles[1]["steps"]
    assert both["parameters"] == 2 * singles[0]["parameters"]
    ens = load_module(tmp_path / "e" / "new0")
    want = ensemble_of([cast(Hole, load_module(tmp_path / f"s{m}" / "new0")) for m in range(2)])
    x = torch.rand(7, 1, 8, 8)
    assert torch.allclose(ens(x=x), want(x=x), atol=1e-6)
    assert both["val"]["rmse"] not in (singles[0]["val"]["rmse"], singles[1]["val"]["rmse"])
