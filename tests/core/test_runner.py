"""The autobatched runner equals the per-sample loop, forward and backward."""

from __future__ import annotations

import random

import pytest
import torch

from brickwork.errors import LayoutError
from brickwork.layouts import Kinds, Layout, LayoutBuilder, Runner
from brickwork.modules import And, Module, Or, stack_param
from brickwork.training.fixtures import random_program_layout
from brickwork.types import Features, Logits, SoftMask

# CLEVR-like kinds with per-instance weights (filter[red], relate[left] …) and a
# forward_instances fast path each: the same shapes as bench/autobatch.py's, kept here so
# the test does not depend on bench/.
C, H, W, HID, K = 32, 8, 12, 16, 28
FEAT, MASK, ANS = Features("b c h w"), SoftMask("b 1 h w"), Logits("b k")


class _Head(Module):
    """Abstract: x -> 1x1 conv (cin -> HID) -> ReLU -> 1x1 conv (HID -> 1), per instance."""

    def __init__(self, cin: int):
        super().__init__()
        self.w1 = torch.nn.Parameter(torch.randn(HID, cin) / cin**0.5)
        self.b1 = torch.nn.Parameter(torch.randn(HID) * 0.1)
        self.w2 = torch.nn.Parameter(torch.randn(1, HID) / HID**0.5)
        self.b2 = torch.nn.Parameter(torch.randn(1) * 0.1)

    @staticmethod
    def _apply(x, w1, b1, w2, b2):
        n, c, h, w = x.shape
        hid = torch.relu(torch.matmul(w1, x.reshape(n, c, h * w)) + b1.unsqueeze(-1))
        return (torch.matmul(w2, hid) + b2.unsqueeze(-1)).reshape(n, 1, h, w)

    def head(self, x):
        return self._apply(x, self.w1, self.b1.unsqueeze(0), self.w2, self.b2.unsqueeze(0))

    @classmethod
    def heads(cls, modules, instance, x):
        return cls._apply(x, *(stack_param(modules, k, instance) for k in ("w1", "b1", "w2", "b2")))


class Scene(_Head):
    inputs = {"features": FEAT}
    outputs = {"mask": MASK}

    def __init__(self) -> None:
        super().__init__(C)

    def forward(self, features):
        return torch.sigmoid(self.head(features))


class Filter(_Head):
    inputs = {"mask": MASK, "features": FEAT}
    outputs = {"mask": MASK}

    def __init__(self) -> None:
        super().__init__(C)

    def forward(self, mask, features):
        return mask * torch.sigmoid(self.head(features))

    @classmethod
    def forward_instances(cls, modules, instance, mask, features):
        return mask * torch.sigmoid(cls.heads(modules, instance, features))


class Relate(_Head):
    inputs = {"mask": MASK, "features": FEAT}
    outputs = {"mask": MASK}

    def __init__(self) -> None:
        super().__init__(C + 1)

    def forward(self, mask, features):
        return torch.sigmoid(self.head(torch.cat([features * mask, mask], 1)))

    @classmethod
    def forward_instances(cls, modules, instance, mask, features):
        return torch.sigmoid(cls.heads(modules, instance, torch.cat([features * mask, mask], 1)))


class Query(Module):
    inputs = {"mask": MASK, "features": FEAT}
    outputs = {"answer": ANS}

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(K, C + 1) / (C + 1) ** 0.5)
        self.b = torch.nn.Parameter(torch.randn(K) * 0.1)

    @staticmethod
    def pool(mask, features):
        return torch.cat([(features * mask).mean((2, 3)), mask.mean((2, 3))], 1)

    def forward(self, mask, features):
        return self.pool(mask, features) @ self.w.T + self.b

    @classmethod
    def forward_instances(cls, modules, instance, mask, features):
        x = cls.pool(mask, features)
        return torch.einsum("nc,ndc->nd", x, stack_param(modules, "w", instance)) + stack_param(
            modules, "b", instance
        )


COLORS = ["gray", "red", "blue", "green", "brown", "purple", "cyan", "yellow"]
RELATIONS = ["left", "right", "front", "behind"]
QUERIES = ["color", "shape", "size", "material", "count", "exist"]


def make_kinds() -> Kinds:
    return Kinds(
        scene=Scene,
        filter=Filter,
        relate=Relate,
        query=Query,
        And=lambda: And.min("b 1 h w"),
        Or=lambda: Or.max("b 1 h w"),
    )


def random_layout(kinds: Kinds, rng: random.Random, depth: int, name: str) -> Layout:
    return random_program_layout(
        kinds, rng, depth, name, filters=COLORS, relations=RELATIONS, queries=QUERIES
    )


@pytest.fixture(scope="module")
def batch():
    torch.manual_seed(0)
    rng = random.Random(1)
    kinds = make_kinds()
    layouts = [random_layout(kinds, rng, rng.randint(2, 9), f"q{i}") for i in range(24)]
    return kinds, layouts


def _grads(kinds):
    return {n: p.grad.clone() for n, p in kinds.named_parameters() if p.grad is not None}


def test_autobatched_matches_per_sample_forward_and_backward(batch):
    kinds, layouts = batch
    feats = torch.randn(len(layouts), C, H, W, requires_grad=True)
    target = torch.randn(len(layouts), K)

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
    assert runner.last_schedule.calls < sum(len(lay) for lay in layouts) / 3


def test_same_module_twice_at_one_level_is_indexed_per_application(batch):
    kinds, _ = batch
    b = LayoutBuilder(kinds, "twice")
    f = b.input("features")
    s1 = b.add("scene", features=f)
    r1 = b.add("filter[red]", mask=s1, features=f)
    r2 = b.add("filter[red]", mask=r1, features=f)
    merged = b.add("Or", a=r1, b=b.add("filter[red]", mask=s1, features=f))
    b.output("answer", b.add("query[color]", mask=b.add("And", a=merged, b=r2), features=f))
    lay = b.build()
    feats = torch.randn(3, C, H, W)
    ref = Runner.per_sample([lay] * 3, {"features": feats})["answer"]
    out = Runner(kinds)([lay] * 3, {"features": feats})["answer"]
    assert torch.allclose(out, ref, atol=1e-5)


def test_schedule_cache_and_batch_errors(batch):
    kinds, layouts = batch
    runner = Runner(kinds)
    feats = torch.randn(len(layouts), C, H, W)
    runner(layouts, {"features": feats})
    first = runner.last_schedule
    runner(layouts, {"features": feats})
    assert runner.last_schedule is first
    with pytest.raises(LayoutError, match="has 3 rows for 24 layouts"):
        runner(layouts, {"features": feats[:3]})
    with pytest.raises(
        LayoutError, match="reads input 'features', which the batch does not provide"
    ):
        runner(layouts, {"image": feats})
