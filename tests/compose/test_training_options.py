"""brickwork.compose training options: pos_weight (class-weighted BCE) and
augment_shift (random pixel shifts of training images)."""

from __future__ import annotations

import tempfile

import pytest
import torch

from brickwork.compose import SolveConfig, run_candidate
from brickwork.compose.jobs import batch_loss, shift_images
from brickwork.compose.program import hole_term
from brickwork.errors import DataError
from brickwork.studies.compose import StudyConfig, count_samples, digit_pools, recognise_samples
from brickwork.types import Bool, Count, Features

IMG = Features("b 1 8 8")


@pytest.fixture(scope="module")
def rare(tmp_path_factory):
    """A recognise task with about 10 % positives (every image of the pool)."""
    root = tmp_path_factory.mktemp("rare")
    pools = digit_pools(0)
    tr = recognise_samples(pools["train"], 3, seed=0, fraction=0.3, negatives=None)
    va = recognise_samples(pools["val"], 3, seed=1, negatives=None)
    return str(tr.save(root / "tr.st")), str(va.save(root / "va.st")), tr


def test_shift_images_moves_each_image_by_at_most_the_given_pixels():
    torch.manual_seed(0)
    x = torch.zeros(200, 1, 5, 5)
    x[:, 0, 2, 2] = 1.0  # one lit pixel in the middle: it must stay inside
    y = shift_images(x, 1)
    assert y.shape == x.shape and torch.equal(y.sum((1, 2, 3)), torch.ones(200))
    where = torch.stack([i[0].nonzero()[0] for i in y])  # (row, col) of the lit pixel
    assert (where - 2).abs().max() == 1  # moved, by one pixel at most
    assert len({tuple(p.tolist()) for p in where}) == 9  # every offset in {-1, 0, 1}^2
    assert torch.equal(shift_images(x, 0), x)


def test_shift_images_keeps_list_padding_zero_and_shifts_in_zeros():
    torch.manual_seed(1)
    items = torch.ones(3, 4, 1, 8, 8)
    items[:, 2:] = 0.0  # padding positions of the lists
    out = shift_images(items, 1)
    assert out.shape == items.shape
    assert out[:, 2:].abs().sum() == 0
    # an all-ones image shifted by an offset loses a border row or column to zeros
    assert (out[:, :2].sum((2, 3, 4)) <= 64).all() and (out[:, :2].sum((2, 3, 4)) >= 49).all()


def test_pos_weight_weights_positive_samples_of_the_bce():
    out = torch.tensor([[0.2], [0.2]])
    y = torch.tensor([[1.0], [0.0]])
    plain = batch_loss(out, y, "bce")
    weighted = batch_loss(out, y, "bce", pos_weight=4.0)
    pos = -torch.log(torch.tensor(0.2))
    neg = -torch.log(torch.tensor(0.8))
    assert plain.item() == pytest.approx(((pos + neg) / 2).item(), rel=1e-5)
    assert weighted.item() == pytest.approx(((4 * pos + neg) / 2).item(), rel=1e-5)


def test_balanced_pos_weight_raises_the_rare_class_probabilities(rare):
    train, val, samples = rare
    assert 0.05 < float(samples["y"].mean()) < 0.2  # a rare positive class
    plain = _positive_probs(train, val, None)
    balanced = _positive_probs(train, val, "balanced")
    assert torch.equal(balanced, _positive_probs(train, val, "balanced"))  # seeded
    # positives weigh negatives / positives (~9) times more: the recogniser trained
    # with them says "yes" to the rare class's images more often and more surely
    assert float(balanced.mean()) > float(plain.mean()) + 0.05
    assert int((balanced > 0.5).sum()) >= int((plain > 0.5).sum())


def _positive_probs(train: str, val: str, pos_weight: object) -> torch.Tensor:
    """Outputs on the validation positives of a recogniser trained with pos_weight."""
    from brickwork.modules import load_module
    from brickwork.training import Samples

    with tempfile.TemporaryDirectory() as out:
        res = run_candidate(
            {
                "term": hole_term({"x": IMG}, Bool("b 1")),
                "train": train,
                "val": val,
                "seed": 0,
                "out": out,
                "fit": {"epochs": 2, "batch_size": 32, "lr": 3e-3, "pos_weight": pos_weight},
            }
        )
        assert res["trained"]
        hole = load_module(f"{out}/new0").eval()
        v = Samples.load(val)
        with torch.no_grad():
            return hole(x=v["x"])[v["y"] > 0.5]


def _count_job(tmp_path) -> dict:
    """A small count-3 task's job: a new image module mapped over the list, summed."""
    pools = digit_pools(0)
    tr = count_samples(pools["train"], 3, n=10, lengths=(2, 5), seed=0).save(tmp_path / "tr.st")
    va = count_samples(pools["val"], 3, n=20, lengths=(2, 5), seed=1).save(tmp_path / "va.st")
    term = ["compose", ["map", hole_term({"x": IMG}, Count("b 1"))], ["fold", ["lib", "add"]]]
    return {"term": term, "train": str(tr), "val": str(va), "seed": 0}


def test_pos_weight_leaves_value_outputs_alone_and_rejects_bad_values(tmp_path):
    job = _count_job(tmp_path)
    fit = {"epochs": 1, "batch_size": 8}
    a = run_candidate({**job, "fit": fit})
    b = run_candidate({**job, "fit": {**fit, "pos_weight": "balanced"}})
    assert a["val"] == b["val"]  # an MSE loss has no positives to weigh
    bad = {**job, "term": hole_term({"x": IMG}, Bool("b 1"))}
    with pytest.raises(DataError, match="pos_weight got -1, expected .*'balanced'"):
        run_candidate({**bad, "fit": {**fit, "pos_weight": -1}})


def test_augment_shift_changes_training_only(tmp_path):
    job = _count_job(tmp_path)
    fit = {"epochs": 2, "batch_size": 8}
    plain = run_candidate({**job, "fit": fit})
    shifted = run_candidate({**job, "fit": {**fit, "augment_shift": 1}})
    again = run_candidate({**job, "fit": {**fit, "augment_shift": 1}})
    assert shifted["val"] == again["val"]  # the shifts come from the fit's seeded RNG
    assert shifted["val"]["rmse"] != plain["val"]["rmse"]


def test_the_defaults_weigh_rare_positives():
    assert SolveConfig().fit["pos_weight"] == "balanced"
    assert StudyConfig().fit["pos_weight"] == "balanced"
    assert StudyConfig.quick().fit["pos_weight"] == "balanced"
