"""Every neural data type: check / project / penalty / noise / saturation / can_feed."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from brickwork.errors import TypeMismatch
from brickwork.types import (
    AxisBindings,
    Bounded,
    Count,
    Features,
    Heatmap,
    Logits,
    OneHot,
    Pointer,
    Probs,
    SoftMask,
    known_types,
    parse_type,
    type_from_json,
)

#: constructor arguments beyond the axes, for the types that take some
EXTRA = {"Bounded": {"low": -2, "high": 3}}
#: every type the library defines (other packages may register more: tested where defined)
ALL = [
    cls("b n", **EXTRA.get(kind, {}))
    for kind, cls in sorted(known_types().items())
    if cls.__module__.startswith("brickwork.types.")
]

VALID = {
    "SoftMask": torch.tensor([[0.0, 0.3, 1.0]]),
    "Heatmap": torch.tensor([[0.0, 4.0, 12.5]]),
    "Probs": torch.tensor([[0.2, 0.3, 0.5]]),
    "Logits": torch.tensor([[-3.0, 0.0, 8.0]]),
    "OneHot": torch.tensor([[0.0, 1.0, 0.0]]),
    "Pointer": torch.tensor([[0.05, 0.9, 0.1]]),
    "Bounded": torch.tensor([[-2.0, 0.0, 3.0]]),
    "Features": torch.tensor([[-1e3, 0.0, 1e3]]),
    "Count": torch.tensor([[0.0, 2.0, 7.0]]),
    "Bool": torch.tensor([[0.0, 0.5, 1.0]]),
}
INVALID = {
    "SoftMask": (torch.tensor([[0.2, -0.21, 0.5]]), "min -0.21 is below 0"),
    "Heatmap": (torch.tensor([[0.2, -1.0, 0.5]]), "min -1 is below 0"),
    "Probs": (torch.tensor([[0.9, 0.8, 0.0]]), "rows sum to 1.7, expected 1 ± 0.0001"),
    "Logits": (torch.tensor([[float("inf"), 0.0, 1.0]]), "infinite values"),
    "OneHot": (torch.tensor([[0.9, 0.6, 0.0]]), "2 positions above 0.5, a one-hot has exactly one"),
    "Pointer": (
        torch.tensor([[0.9, 0.6, 0.0]]),
        "2 positions above 0.5, a pointer has exactly one",
    ),
    "Bounded": (torch.tensor([[0.0, 3.5, 0.0]]), "max 3.5 is above 3"),
    "Features": (torch.tensor([[float("nan"), 0.0, 0.0]]), "1 NaN value"),
    "Count": (torch.tensor([[-1.0, 0.0, 0.0]]), "min -1 is below 0"),
    "Bool": (torch.tensor([[1.2, 0.0, 0.0]]), "max 1.2 is above 1"),
}


def test_every_library_type_is_covered():
    """A new type in brickwork.types must bring its valid and invalid examples here."""
    kinds = {t.kind for t in ALL}
    assert kinds >= {
        "SoftMask",
        "Heatmap",
        "Probs",
        "Logits",
        "OneHot",
        "Pointer",
        "Bounded",
        "Features",
        "Count",
        "Bool",
    }
    assert kinds == set(VALID) == set(INVALID)


def test_declared_families():
    """Losses, scores and evaluation read these flags instead of type names."""
    fam = {t.kind: (t.is_distribution, t.is_logits, t.is_mask) for t in ALL}
    assert {k for k, f in fam.items() if f[0]} == {"Probs", "OneHot", "Pointer"}
    assert {k for k, f in fam.items() if f[1]} == {"Logits"}
    assert {k for k, f in fam.items() if f[2]} == {"SoftMask", "Bool"}
    assert all(Features("b n").admits(t) for t in ALL)
    assert Bounded("b n", low=0, high=1).admits(Probs("b n"))
    assert not Bounded("b n", low=0, high=1).admits(Count("b n"))


@pytest.mark.parametrize("t", ALL, ids=lambda t: t.kind)
def test_valid_tensors_pass_and_invalid_ones_give_the_reason(t):
    assert t.check(VALID[t.kind]) == ""
    bad, reason = INVALID[t.kind]
    assert t.check(bad) == reason


@pytest.mark.parametrize("t", ALL, ids=lambda t: t.kind)
def test_shape_and_dtype_reasons(t):
    assert t.check(torch.zeros(2, 3, 4)) == "3 dims (2, 3, 4), expected 2 [b n]"
    assert "dtype float64, expected float32" == t.check(VALID[t.kind].double())
    assert t.check([1, 2]) == "expected a tensor, got list"


def test_fixed_axis_size_and_bindings_across_ports():
    t = SoftMask("b 1 h w")
    assert "2 where 1 is fixed" in t.check(torch.zeros(3, 2, 4, 4))
    b = AxisBindings()
    assert t.check(torch.zeros(3, 1, 4, 5), b) == ""
    assert "axis 'h' is 4 elsewhere, got 6" in t.check(torch.zeros(3, 1, 6, 5), b)


@pytest.mark.parametrize("t", ALL, ids=lambda t: t.kind)
def test_penalty_is_zero_inside_positive_outside_and_differentiable(t):
    assert float(t.penalty(VALID[t.kind])) == pytest.approx(0.0, abs=1e-8)
    bad = INVALID[t.kind][0]
    if t.kind in ("Logits", "Features"):
        return  # unconstrained reals: no soft constraint to violate
    x = bad.clone().requires_grad_(True)
    p = t.penalty(x)
    assert float(p.detach()) > 0
    p.backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


@pytest.mark.parametrize("t", ALL, ids=lambda t: t.kind)
def test_project_lands_in_domain_and_passes_gradient(t):
    x = (torch.randn(4, 3) * 5).requires_grad_(True)
    y = t.project(x)
    assert t.check(y.detach()) == ""
    y.sum().backward()
    assert x.grad is not None and torch.all(x.grad == 1.0)  # straight-through


def test_project_specifics():
    assert torch.equal(
        OneHot("b k").project(torch.tensor([[0.2, 0.7, 0.1]])), torch.tensor([[0.0, 1.0, 0.0]])
    )
    assert torch.allclose(
        Probs("b k").project(torch.tensor([[-1.0, 1.0, 3.0]])), torch.tensor([[0.0, 0.25, 0.75]])
    )
    assert torch.allclose(Probs("b k").project(torch.zeros(1, 4)), torch.full((1, 4), 0.25))
    assert torch.equal(
        SoftMask("b").project(torch.tensor([-1.0, 0.5, 2.0])), torch.tensor([0.0, 0.5, 1.0])
    )


@pytest.mark.parametrize("t", ALL, ids=lambda t: t.kind)
def test_noise_keeps_the_domain_and_is_seeded(t):
    x = t.project(VALID[t.kind]).repeat(50, 1)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    n1, n2 = t.noise(x, g1), t.noise(x, g2)
    assert torch.equal(n1, n2)
    assert not torch.equal(n1, x)
    if t.kind not in ("Logits", "Features"):
        assert t.check(n1) == ""


def test_one_hot_noise_is_the_thesis_equations():
    x = torch.tensor([[0.0, 1.0, 0.0, 0.0]]).repeat(200, 1)
    n = OneHot("b k").noise(x, torch.Generator().manual_seed(0))
    # eq. 3.1 |x - U(0, 0.4)| keeps the hot entry ≥ 0.6 and the others ≤ 0.4; eq. 3.2's
    # softmax(100·x̂) then puts almost all mass on the hot entry
    assert torch.allclose(n.sum(-1), torch.ones(200))
    assert torch.all(n.argmax(-1) == 1)
    assert float(n[:, 1].min()) > 0.9


def test_saturation_counts_values_far_from_codes():
    assert SoftMask("b").saturation(torch.tensor([0.0, 0.05, 0.5, 0.95])) == 0.25
    assert OneHot("b k").saturation(torch.tensor([[0.0, 1.0], [0.3, 0.7]])) == 0.5
    assert Count("b").saturation(torch.tensor([1.0, 1.5, 2.95, 3.0])) == 0.25
    assert Heatmap("b").saturation(torch.tensor([0.3, 7.0])) == 0.0


def test_table_4_3_pairs_and_subtypes():
    assert SoftMask("b h w").can_feed(Heatmap("b h w"))
    assert Heatmap("b h w").feed_reason(SoftMask("b h w")) == "a Heatmap cannot feed a SoftMask"
    assert OneHot("b k").can_feed(Probs("b k"))
    assert Pointer("b n").can_feed(OneHot("b n")) and Pointer("b n").can_feed(Probs("b n"))
    assert not Probs("b k").can_feed(OneHot("b k"))
    assert not Logits("b k").can_feed(Probs("b k"))
    assert all(t.can_feed(Features("b n")) for t in ALL)
    assert SoftMask("b n").can_feed(Bounded("b n", low=0, high=1))
    assert not Bounded("b n", low=-1, high=1).can_feed(Bounded("b n", low=0, high=1))
    assert Bounded("b n", low=0.2, high=0.5).can_feed(Bounded("b n", low=0, high=1))


def test_axis_unification_in_can_feed():
    b = AxisBindings()
    assert SoftMask("b 1 h w").can_feed(SoftMask("b c h w"), b)
    assert b.resolve("c") == 1
    assert "[b 1 h w] vs [b 2 h w]" in SoftMask("b 1 h w").feed_reason(SoftMask("b 2 h w"))
    assert "2 axes" in SoftMask("b n").feed_reason(SoftMask("b n m"))


def test_serialisation_round_trip_and_parsing():
    for t in ALL:
        assert type_from_json(t.to_json()) == t
        assert parse_type(repr(t)) == t
    with pytest.raises(TypeMismatch, match="unknown type kind 'Nope'"):
        type_from_json({"kind": "Nope", "axes": "b"})
    with pytest.raises(TypeMismatch, match="Kind\\[axes\\]"):
        parse_type("SoftMask")
    with pytest.raises(TypeMismatch, match="neither a name"):
        SoftMask("b -1")


# ----- properties -----------------------------------------------------------------------
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False, width=32)
matrices = st.integers(1, 5).flatmap(
    lambda rows: st.integers(1, 6).flatmap(
        lambda cols: st.lists(finite, min_size=rows * cols, max_size=rows * cols).map(
            lambda v: torch.tensor(v, dtype=torch.float32).reshape(rows, cols)
        )
    )
)


@settings(max_examples=60, deadline=None)
@given(x=matrices, idx=st.integers(0, len(ALL) - 1))
def test_project_always_passes_check(x, idx):
    t = ALL[idx]
    assert t.check(t.project(x)) == ""


axis_specs = st.lists(st.sampled_from(["b", "n", "h", "w", "1", "3"]), min_size=1, max_size=3)


@settings(max_examples=80, deadline=None)
@given(a=axis_specs, b=axis_specs, idx=st.integers(0, len(ALL) - 1))
def test_can_feed_is_consistent_with_unification(a, b, idx):
    t = ALL[idx]
    src, dst = t.with_axes(a), t.with_axes(b)
    fresh = AxisBindings()
    assert src.can_feed(dst) == (fresh.unify(src.axes, dst.axes) == "")
    # and with concrete sizes: when they unify, a tensor shaped by the bindings passes both
    bind = AxisBindings()
    if src.can_feed(dst, bind):
        shape = []
        for ax in src.axes:
            r = bind.resolve(ax)
            shape.append(r if isinstance(r, int) else 2)
        x = src.project(torch.rand(*shape))
        shared = AxisBindings()
        assert src.check(x, shared) == "" and dst.check(x, shared) == ""
