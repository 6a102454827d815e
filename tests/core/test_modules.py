"""Typed modules: port declarations, run-time checks, config, fingerprint, ops."""

from __future__ import annotations

import pytest
import torch

import brickwork.modules as bm
from brickwork.errors import PortError, TypeMismatch
from brickwork.types import Features, Heatmap, Logits, Probs, SoftMask


class Find(bm.Module):
    inputs = {"features": Features("b c h w")}
    outputs = {"mask": SoftMask("b 1 h w")}

    def __init__(self, channels: int = 4):
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, 1, 1)

    def forward(self, features):
        return torch.sigmoid(self.conv(features))


def test_ports_must_match_forward_at_class_creation():
    with pytest.raises(
        PortError,
        match=r"forward\(x\) does not match the declared input ports "
        r"\(features\); missing parameters \['features'\]",
    ):

        class Bad(bm.Module):  # noqa: F841
            inputs = {"features": Features("b c")}
            outputs = {"y": Features("b c")}

            def forward(self, x):
                return x


def test_run_time_checks_name_module_port_and_reason():
    find = Find(4)
    with bm.checking():
        with pytest.raises(TypeMismatch, match=r"module Find, input port 'features': 3 dims"):
            find(torch.zeros(2, 4, 3))

    class Leaky(bm.Module):
        inputs = {"x": Features("b n")}
        outputs = {"m": SoftMask("b n")}

        def forward(self, x):
            return x * 2

    with bm.checking():
        with pytest.raises(TypeMismatch, match=r"output port 'm': max 4 is above 1"):
            Leaky()(torch.full((1, 2), 2.0))
    with bm.checking(False):
        assert float(Leaky()(torch.full((1, 2), 2.0)).max()) == 4.0


def test_config_signature_and_fingerprint():
    a, b = Find(channels=4), Find(channels=4)
    assert a.config == {"channels": 4}
    assert str(a.signature) == "(features: Features['b c h w']) -> (mask: SoftMask['b 1 h w'])"
    b.load_state_dict(a.state_dict())
    assert a.fingerprint() == b.fingerprint()
    with torch.no_grad():
        b.conv.bias.add_(1e-3)
    assert a.fingerprint() != b.fingerprint()


def test_non_json_config_is_refused():
    class Holder(bm.Module):
        inputs = {"x": Features("b n")}
        outputs = {"y": Features("b n")}

        def __init__(self, thing=None):
            super().__init__()

        def forward(self, x):
            return x

    with pytest.raises(PortError, match="not JSON-serialisable"):
        Holder(thing=object())


def test_typed_wraps_any_module():
    lin = torch.nn.Linear(3, 2)
    head = bm.typed(lin, inputs={"input": Features("b n")}, outputs={"y": Logits("b k")})
    assert head(torch.zeros(5, 3)).shape == (5, 2)
    assert head.kind == "typed:Linear"
    with pytest.raises(PortError, match="missing parameters"):
        bm.typed(lin, inputs={"x": Features("b n")}, outputs={"y": Logits("b k")})
    with pytest.raises(PortError, match="wraps a torch.nn.Module"):
        bm.typed(lambda x: x, inputs={}, outputs={"y": Logits("b k")})


def test_multi_output_forward_normalised():
    class Two(bm.Module):
        inputs = {"x": Features("b n")}
        outputs = {"p": Probs("b n"), "l": Logits("b n")}

        def forward(self, x):
            return torch.softmax(x, -1), x

    out = Two().call_ports(x=torch.zeros(1, 4))
    assert set(out) == {"p", "l"}
    with pytest.raises(PortError, match="forward returned one tensor"):
        Two().outputs_as_dict(torch.zeros(1))


def test_merge_ops_table_4_3():
    a = torch.tensor([[0.2, 0.9]])
    b = torch.tensor([[0.5, 0.4]])
    assert torch.equal(bm.And.min("b n")(a, b), torch.minimum(a, b))
    assert torch.equal(bm.And.product("b n")(a, b), a * b)
    assert torch.equal(bm.Or.max("b n")(a, b), torch.maximum(a, b))
    assert torch.equal(bm.Or.sum("b n")(a, b), a + b)
    assert bm.And.min().inputs["a"].kind == "SoftMask"
    assert bm.And.product().inputs["a"].kind == "Heatmap"
    assert bm.And.min().codependent and bm.And.product().codependent
    assert bm.Or.max().codependent and not bm.Or.sum().codependent
    assert torch.equal(bm.Sum("b k")(a, b), a + b)
    with pytest.raises(PortError, match="unknown mode 'mean'"):
        bm.And("mean")


def test_adapters():
    assert bm.Adapter("sigmoid").outputs["y"] == SoftMask("b n")
    assert bm.Adapter("relu").outputs["y"] == Heatmap("b n")
    x = torch.tensor([[1.0, 3.0]])
    assert torch.allclose(bm.Adapter("squash")(x), x / (1 + x))
    with pytest.raises(PortError, match="unknown function"):
        bm.Adapter("tanh")


def test_fingerprint_handles_scalar_buffers_and_port_order_does_not_matter(tmp_path):
    class Normed(bm.Module):
        inputs = {"mask": SoftMask("b 1 h w"), "features": Features("b c h w")}
        outputs = {"y": Features("b c h w")}

        def __init__(self) -> None:
            super().__init__()
            self.bn = torch.nn.BatchNorm2d(2)  # holds a 0-dim num_batches_tracked
            self.scale = torch.nn.Parameter(torch.tensor(1.5))

        def forward(self, mask, features):
            return self.bn(features * mask) * self.scale

    m = Normed()
    assert len(m.fingerprint()) == 64
    bm.register_kind("test.normed")(Normed)
    bm.save_module(m, tmp_path / "n")
    assert bm.load_module(tmp_path / "n").fingerprint() == m.fingerprint()
    swapped = bm.Signature(
        {"features": Features("b c h w"), "mask": SoftMask("b 1 h w")}, m.signature.outputs
    )
    assert swapped == m.signature
