"""The autobatched runner equals the per-sample loop, forward and backward."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
import torch

from brickwork.errors import LayoutError
from brickwork.layouts import Runner

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import autobatch as ab  # noqa: E402  (the bench's CLEVR-like kinds)


@pytest.fixture(scope="module")
def batch():
    torch.manual_seed(0)
    rng = random.Random(1)
    kinds = ab.make_kinds()
    layouts = [ab.random_layout(kinds, rng, rng.randint(2, 9), f"q{i}") for i in range(24)]
    return kinds, layouts


def _grads(kinds):
    return {n: p.grad.clone() for n, p in kinds.named_parameters() if p.grad is not None}


def test_autobatched_matches_per_sample_forward_and_backward(batch):
    kinds, layouts = batch
    feats = torch.randn(len(layouts), ab.C, ab.H, ab.W, requires_grad=True)
    target = torch.randn(len(layouts), ab.K)

    kinds.zero_grad()
    ref = Runner.per_sample(layouts, {"features": feats})["answer"]
    ((ref - target) ** 2).sum().backward()
    ref_grads, ref_feat_grad = _grads(kinds), feats.grad.clone()

    kinds.zero_grad()
    feats.grad = None
    runner = Runner(kinds)
    out = runner(layouts, {"features": feats})["answer"]
    ((out - target) ** 2).sum().backward()
    grads = _grads(kinds)

    assert torch.allclose(out, ref, atol=1e-5)
    assert set(grads) == set(ref_grads) and len(grads) > 10
    for name in grads:
        assert torch.allclose(grads[name], ref_grads[name], atol=1e-5), name
    assert torch.allclose(feats.grad, ref_feat_grad, atol=1e-5)
    # grouping really happened: far fewer calls than node applications
    assert runner.last_schedule.calls < sum(len(l) for l in layouts) / 3


def test_same_module_twice_at_one_level_is_indexed_per_application(batch):
    kinds, _ = batch
    from brickwork.layouts import LayoutBuilder
    b = LayoutBuilder(kinds, "twice")
    f = b.input("features")
    s1 = b.add("scene", features=f)
    r1 = b.add("filter[red]", mask=s1, features=f)
    r2 = b.add("filter[red]", mask=r1, features=f)
    merged = b.add("Or", a=r1, b=b.add("filter[red]", mask=s1, features=f))
    b.output("answer", b.add("query[color]", mask=b.add("And", a=merged, b=r2), features=f))
    lay = b.build()
    feats = torch.randn(3, ab.C, ab.H, ab.W)
    ref = Runner.per_sample([lay] * 3, {"features": feats})["answer"]
    out = Runner(kinds)([lay] * 3, {"features": feats})["answer"]
    assert torch.allclose(out, ref, atol=1e-5)


def test_schedule_cache_and_batch_errors(batch):
    kinds, layouts = batch
    runner = Runner(kinds)
    feats = torch.randn(len(layouts), ab.C, ab.H, ab.W)
    runner(layouts, {"features": feats})
    first = runner.last_schedule
    runner(layouts, {"features": feats})
    assert runner.last_schedule is first
    with pytest.raises(LayoutError, match="has 3 rows for 24 layouts"):
        runner(layouts, {"features": feats[:3]})
    with pytest.raises(LayoutError, match="reads input 'features', which the batch does not provide"):
        runner(layouts, {"image": feats})
