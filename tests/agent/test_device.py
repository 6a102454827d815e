"""Devices in the agent framework: every tensor an agent makes is made on the device of
its representation (or a ``device`` argument), never implicitly on the CPU.

A CPU-only machine has no second real device, so the proof is a torch function mode that
records every factory call (``torch.zeros``, ``torch.full``, ``torch.tensor`` …) made
from brickwork's own code without a ``device=`` argument, and every ``.cpu()`` /
``.numpy()``: a batched, recursive episode with a recurrent controller makes none. The
``meta`` device (no data) checks the pieces that need no values.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from brickwork.agent import (
    EOP,
    Agent,
    Controller,
    Interface,
    ModuleOperator,
    Recurse,
    Representation,
    SubInterface,
    TensorEnvironment,
)
from brickwork.errors import AgentError
from brickwork.modules import Adapter, Module, typed
from brickwork.types import Count, Features, OneHot, Probs, SoftMask

SRC = str(Path(__file__).resolve().parents[2] / "src" / "brickwork")
FACTORIES = {
    torch.zeros,
    torch.ones,
    torch.full,
    torch.empty,
    torch.arange,
    torch.eye,
    torch.tensor,
    torch.rand,
    torch.randn,
    torch.randint,
    torch.linspace,
    torch.as_tensor,
    torch.randperm,
    torch.from_numpy,
}
HOST = {torch.Tensor.cpu, torch.Tensor.numpy}


class ImplicitCPU(TorchFunctionMode):
    """Records factory calls without ``device=`` and host copies made by brickwork code."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        implicit = (func in FACTORIES and kwargs.get("device") is None) or func in HOST
        if implicit:
            frame = sys._getframe(1)  # the code that called the torch function
            if frame.f_code.co_filename.startswith(SRC):
                name = getattr(func, "__name__", repr(func))
                self.calls.append(f"{name} at {frame.f_code.co_filename}:{frame.f_lineno}")
        return func(*args, **kwargs)


X = Count("b 1")


class _Fn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class _Add(nn.Module):
    def forward(self, x, y):
        return x + y


class _Concat(nn.Module):
    def forward(self, x):
        return x


class _TrianglePolicy(Module):
    """A hand-coded recurrent policy (state port ``h`` counts the steps): add, then
    recurse while x > 0, then EOP."""

    inputs = {"embedding": Features("b 1"), "previous": OneHot("b 4"), "h": Features("b 1")}
    outputs = {"selection": Probs("b 3"), "h": Features("b 1")}

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("unit", torch.ones(1))

    def initial_state(self, batch, device=None):
        return {"h": torch.zeros(batch, 1, device=self.unit.device if device is None else device)}

    def forward(self, embedding, previous, h):
        prev = previous.argmax(-1)
        choice = torch.where(prev == 0, 1, torch.where((prev == 3) & (embedding[:, 0] > 0), 0, 2))
        return nn.functional.one_hot(choice, 3).float(), h + self.unit


def _triangular_agent():
    types = {"x": X, "y": X}
    add = ModuleOperator(
        "add",
        typed(_Add(), {"x": X, "y": X}, {"out": X}),
        inputs={"x": "x", "y": "y"},
        outputs={"out": "y"},
    )
    dec = ModuleOperator(
        "dec",
        typed(_Fn(lambda x: x - 1), {"x": X}, {"y": X}),
        inputs={"x": "x"},
        outputs={"y": "x"},
    )
    sub = SubInterface(types, reads={"x": "x", "y": "y"}, enter=[dec], writes={"y": "y"})
    policy = _TrianglePolicy()
    ctl = Controller(
        typed(_Concat(), {"x": X}, {"e": Features("b 1")}),
        policy,
        reads={"x": "x"},
        choices=["add", "again", "EOP"],
    )
    return Agent("triangle", types, [add, Recurse("again", sub), EOP()], ctl)


def test_the_recorder_sees_an_implicit_cpu_tensor():
    # the check itself can fail: a factory call without device= in brickwork code is seen
    fake = compile(
        "torch.zeros(2)\nx = torch.ones(1, device='cpu').cpu()", SRC + "/fake.py", "exec"
    )
    with ImplicitCPU() as mode:
        torch.zeros(2)  # test code: not brickwork's, not recorded
        exec(fake, {"torch": torch})
    assert mode.calls == [f"zeros at {SRC}/fake.py:1", f"cpu at {SRC}/fake.py:2"]
    from brickwork.agent import selection

    with ImplicitCPU() as mode:
        selection.shift(torch.tensor([[1.0, 0.0]]), 5)  # zeros_like: follows its input
    assert mode.calls == []


def test_episode_makes_no_tensor_implicitly_on_the_cpu():
    agent = _triangular_agent()
    xs = [0, 1, 3, 5]
    env = TensorEnvironment(
        {"x": torch.tensor([[float(v)] for v in xs]), "y": torch.zeros(len(xs), 1)}
    )
    ui = Interface(env, agent.types)
    start = ui.representation
    with ImplicitCPU() as mode:
        ep = agent.run(ui)
        ep2 = agent.run(start, step_limit=torch.tensor([50, 50, 50, 50]))
        direct = agent(start)
    assert mode.calls == [], "\n".join(mode.calls)
    assert ep.all_terminated and ep2.all_terminated
    assert ep.representation["y"].flatten().tolist() == [v * (v + 1) / 2 for v in xs]
    assert direct["y"].flatten().tolist() == [v * (v + 1) / 2 for v in xs]
    # CPU behaviour unchanged: the steps of test_agent's triangular agent
    assert ep.steps.tolist() == [1 + 3 * v for v in xs]
    assert ep.steps.device == ep.terminated.device == torch.device("cpu")


def test_controller_state_follows_the_device_argument_or_the_policy():
    ctl = _triangular_agent().controller
    state = ctl.initial_state(3, device="meta")
    assert {k: v.device.type for k, v in state.items()} == {"previous": "meta", "h": "meta"}
    assert state["previous"].shape == (3, 4) and state["h"].shape == (3, 1)
    cpu = ctl.initial_state(2)  # default: the policy's device
    assert cpu["previous"][:, -1].tolist() == [1.0, 1.0]
    assert {v.device.type for v in cpu.values()} == {"cpu"}

    class OldStyle(Module):  # initial_state without a device keyword: moved there
        inputs = {"embedding": Features("b 1"), "h": Features("b 1")}
        outputs = {"selection": Probs("b 2"), "h": Features("b 1")}

        def initial_state(self, batch):
            return {"h": torch.zeros(batch, 1)}

        def forward(self, embedding, h):
            return torch.ones(embedding.shape[0], 2) / 2, h

    old = Controller(
        typed(_Concat(), {"x": X}, {"e": Features("b 1")}),
        OldStyle(),
        reads={"x": "x"},
        choices=["a", "EOP"],
    )
    assert old.initial_state(2, device="meta")["h"].device.type == "meta"


def test_representation_device_and_to():
    rep = Representation(
        {"x": X, "m": SoftMask("b n")}, {"x": torch.zeros(2, 1), "m": torch.ones(2, 3)}
    )
    assert rep.device == torch.device("cpu")
    meta = rep.to("meta")
    assert meta.device.type == "meta" and meta["m"].shape == (2, 3)
    mixed = Representation(
        {"x": X, "m": SoftMask("b n")},
        {"x": torch.zeros(2, 1), "m": torch.ones(2, 3, device="meta")},
    )
    with pytest.raises(
        AgentError,
        match=r"different devices \('x' on cpu, 'm' on meta\); "
        r"move them to one device with Representation.to",
    ):
        _ = mixed.device


def test_selective_input_update_and_projection_stay_on_the_meta_device():
    op = ModuleOperator("squash", Adapter("sigmoid", "b n"), inputs={"x": "s"}, outputs={"y": "m"})
    rep = Representation(
        {"s": Features("b n"), "m": SoftMask("b n")},
        {"s": torch.ones(4, 3, device="meta"), "m": torch.ones(4, 3, device="meta")},
    )
    assert op.gather(rep)["x"].device.type == "meta"
    out = op.scatter(rep, {"y": torch.zeros(4, 3, device="meta")})
    assert out["m"].device.type == "meta" and out.project().device.type == "meta"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_episode_on_cuda_matches_cpu():
    agent = _triangular_agent()
    agent.controller.to("cuda")
    xs = [0, 2, 4]
    rep = Representation(
        agent.types, {"x": torch.tensor([[float(v)] for v in xs]), "y": torch.zeros(len(xs), 1)}
    )
    ep = agent.run(rep.to("cuda"))
    assert ep.steps.device.type == "cuda"
    assert ep.representation["y"].cpu().flatten().tolist() == [v * (v + 1) / 2 for v in xs]


def test_tensor_environment_keeps_its_state_on_its_device():
    env = TensorEnvironment({"x": torch.zeros(2, 1)}, device="meta")
    assert env.observe()["x"].device.type == "meta"
    cpu = TensorEnvironment({"x": torch.zeros(2, 1)})
    cpu.apply({"x": torch.ones(2, 1)})
    assert cpu.observe()["x"].device.type == "cpu" and cpu.observe()["x"].sum().item() == 2.0
