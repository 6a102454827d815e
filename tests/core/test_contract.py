"""Contract tests over every registered module kind (add a kind, get its tests)."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys

import pytest
import torch

import brickwork
import brickwork.modules as bm

#: deprecated alias modules (they only warn and re-export)
_ALIASES = {"brickwork.modules.kinds", "brickwork.training.examples"}


def _import_everything() -> None:
    for info in pkgutil.walk_packages(brickwork.__path__, "brickwork."):
        if ".cli" in info.name or info.name.endswith("__main__") or info.name in _ALIASES:
            continue
        importlib.import_module(info.name)


_import_everything()
KINDS = sorted(bm.registered_kinds())


def example_inputs(module: bm.Module, sizes: dict[str, int], seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, t in module.inputs.items():
        shape = [a if isinstance(a, int) else sizes.get(a, 3) for a in t.axes]
        raw = torch.rand(shape, generator=g, dtype=torch.float32) * 2 - 0.5
        out[name] = t.project(raw).to(t.dtype)
    return out


def build(name: str) -> tuple[bm.Module, dict]:
    info = bm.kind_info(name)
    torch.manual_seed(0)
    return bm.build_kind(name, info.example_config), info.sizes


def test_every_kind_has_a_description_and_registers_something():
    assert {"And", "Or", "Sum", "Adapter"} <= set(KINDS)


@pytest.mark.parametrize("name", KINDS)
def test_ports_declared_and_own_outputs_in_domain(name):
    """The kind's own outputs (no projection) are in their declared domains, for seeded
    inputs in the input types' domains, in training and in eval mode."""
    module, sizes = build(name)
    assert module.inputs and module.outputs, f"{name} declares no ports"
    assert module.kind == name
    json.dumps(module.config)
    for train in (True, False):
        module.train(train)
        for seed in (0, 1, 2):
            with bm.checking(False), torch.no_grad():
                out = module.outputs_as_dict(module(**example_inputs(module, sizes, seed)))
            for port, t in module.outputs.items():
                reason = t.check(out[port])
                assert reason == "", f"{name}, output port {port!r} (seed {seed}): {reason}"


def test_the_domain_check_can_fail():
    """The check above is not vacuous: a kind whose output leaves its domain is caught."""
    from brickwork.types import SoftMask

    class Leaky(bm.Module):
        inputs = {"x": SoftMask("b n")}
        outputs = {"y": SoftMask("b n")}

        def forward(self, x):
            return x * 2 - 0.5

    m = Leaky()
    with bm.checking(False):
        out = m(**example_inputs(m, {"b": 3, "n": 4}))
    assert "below 0" in m.outputs["y"].check(out) or "above 1" in m.outputs["y"].check(out)


def _fast_path_kinds() -> list[str]:
    out = []
    for name in KINDS:
        module, _ = build(name)
        if type(module).defines_forward_instances():
            out.append(name)
    return out


FAST_PATH_KINDS = _fast_path_kinds()


def test_fast_path_kinds_are_found():
    """The NMN study's kinds declare forward_instances: the contract test below reaches them."""
    assert {"nmn_find", "nmn_relate", "nmn_same"} <= set(FAST_PATH_KINDS)


def _instances(name: str, n: int) -> list[bm.Module]:
    """``n`` instances of the kind, each with its own (seeded, perturbed) weights."""
    info = bm.kind_info(name)
    mods = []
    for i in range(n):
        torch.manual_seed(100 + i)
        m = bm.build_kind(name, info.example_config)
        g = torch.Generator().manual_seed(200 + i)
        with torch.no_grad():
            for p in m.parameters():
                if p.is_floating_point():
                    p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
        mods.append(m)
    return mods


@pytest.mark.parametrize("name", FAST_PATH_KINDS)
def test_forward_instances_matches_per_sample(name):
    """Runner (one forward_instances call for the mixed instances) equals
    Runner.per_sample (one call per row), outputs and gradients, parameters and inputs."""
    from brickwork.layouts import Kinds, LayoutBuilder, Runner

    sizes = dict(bm.kind_info(name).sizes)
    mods = _instances(name, 3)
    for m in mods:
        m.eval()  # dropout would draw differently in the two paths
    kinds = Kinds()
    names = [f"{name}[i{k}]" for k in range(3)]
    for n, m in zip(names, mods):
        kinds.add(n, m)
    order = [1, 0, 2, 0, 1, 2, 2, 0]  # mixed, unsorted, every instance more than once
    layouts = []
    for row, k in enumerate(order):
        b = LayoutBuilder(kinds, f"row{row}")
        node = b.add(names[k], **{p: b.input(p) for p in mods[0].inputs})
        for port in mods[0].outputs:
            b.output(port, node[port])
        layouts.append(b.build())
    sizes["b"] = len(order)
    base = example_inputs(mods[0], sizes, seed=3)

    def run(fn):
        kinds.zero_grad()
        x = {p: v.clone().requires_grad_(v.is_floating_point()) for p, v in base.items()}
        out = fn(layouts, x)
        g = torch.Generator().manual_seed(4)
        loss = sum(
            (v.float() * torch.randn(v.shape, generator=g)).sum()
            for _, v in sorted(out.items())
            if v.is_floating_point()
        )
        grads = {}
        if isinstance(loss, torch.Tensor) and loss.requires_grad:
            loss.backward()
            grads = {n: p.grad.clone() for n, p in kinds.named_parameters() if p.grad is not None}
            grads.update({f"input {p}": v.grad.clone() for p, v in x.items() if v.grad is not None})
        return {k: v.detach() for k, v in out.items()}, grads

    runner = Runner(kinds)
    fast, fast_grads = run(runner)
    assert runner.last_schedule.calls == 1, "the mixed instances ran in one call"
    ref, ref_grads = run(Runner.per_sample)
    assert set(fast) == set(ref)
    for port in ref:
        assert torch.allclose(fast[port], ref[port], atol=1e-5, rtol=1e-4), (name, port)
    assert set(fast_grads) == set(ref_grads)
    if any(p.requires_grad for m in mods for p in m.parameters()):
        assert any(k.startswith("instances") for k in ref_grads), f"{name}: no parameter gradient"
    for k in ref_grads:
        assert torch.allclose(fast_grads[k], ref_grads[k], atol=1e-5, rtol=1e-4), (name, k)


def test_default_forward_instances_matches_per_instance_calls():
    """A kind without a fast path still answers forward_instances (the documented default)."""
    mods = [bm.And.min("b n"), bm.And.min("b n")]
    a, b = torch.rand(5, 3), torch.rand(5, 3)
    inst = torch.tensor([1, 0, 1, 1, 0])
    got = bm.And.forward_instances(mods, inst, a=a, b=b)
    assert torch.equal(got, torch.minimum(a, b))
    assert not bm.And.defines_forward_instances()


def test_a_staticmethod_fast_path_is_recognised_and_called():
    from brickwork.layouts import Kinds, LayoutBuilder, Runner
    from brickwork.types import Features

    calls = []

    class Shift(bm.Module):
        inputs = {"x": Features("b n")}
        outputs = {"y": Features("b n")}

        def __init__(self, by: float = 0.0):
            super().__init__()
            self.by = torch.nn.Parameter(torch.tensor(by))

        def forward(self, x):
            return x + self.by

        @staticmethod
        def forward_instances(modules, instance, x):
            calls.append(len(modules))
            return x + bm.stack_param(modules, "by", instance).unsqueeze(1)

    assert Shift.defines_forward_instances()
    kinds = Kinds()
    kinds.add("s[a]", Shift(1.0))
    kinds.add("s[b]", Shift(2.0))
    layouts = []
    for arg in "abba":
        b = LayoutBuilder(kinds, arg)
        b.output("y", b.add(f"s[{arg}]", x=b.input("x")))
        layouts.append(b.build())
    out = Runner(kinds)(layouts, {"x": torch.zeros(4, 2)})["y"]
    assert calls == [2]
    assert torch.equal(out[:, 0], torch.tensor([1.0, 2.0, 2.0, 1.0]))


@pytest.mark.parametrize("name", KINDS)
def test_save_load_round_trip_bit_identical(name, tmp_path):
    module, sizes = build(name)
    bm.save_module(module, tmp_path / "m")
    back = bm.load_module(tmp_path / "m")
    assert back.fingerprint() == module.fingerprint()
    module.eval()
    back.eval()
    x = example_inputs(module, sizes, seed=1)
    with torch.no_grad(), bm.checking(False):
        a, b = module.outputs_as_dict(module(**x)), back.outputs_as_dict(back(**x))
    for port in a:
        assert torch.equal(a[port], b[port]), (name, port)


def test_fingerprints_stable_across_processes(tmp_path):
    folders = {}
    for i, name in enumerate(KINDS):
        module, _ = build(name)
        bm.save_module(module, tmp_path / f"k{i}")
        folders[str(tmp_path / f"k{i}")] = module.fingerprint()
    code = (
        "import json,sys,importlib,pkgutil,brickwork,brickwork.modules as bm\n"
        "for i in pkgutil.walk_packages(brickwork.__path__,'brickwork.'):\n"
        "    ('.cli' in i.name or i.name.endswith('__main__')) or importlib.import_module(i.name)\n"
        "print(json.dumps({f: bm.load_module(f).fingerprint() for f in json.loads(sys.argv[1])}))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, json.dumps(list(folders))],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(res.stdout.strip().splitlines()[-1]) == folders


@pytest.mark.parametrize("name", KINDS)
def test_accepts_a_surrogate_head(name):
    """A kind with no loss of its own can be trained through a surrogate head (§4.2.3)."""
    from brickwork.training import SurrogateHead

    module, sizes = build(name)
    module.train()
    with bm.checking(False):
        out = module.outputs_as_dict(module(**example_inputs(module, sizes)))
    port, value = next(iter(out.items()))
    value = value.float()
    if value.dim() == 1:
        value = value.unsqueeze(1)
    head = SurrogateHead(in_features=value[0].numel(), out_features=3, rank=2)
    loss = torch.nn.functional.cross_entropy(
        head(value), torch.zeros(value.shape[0], dtype=torch.long)
    )
    loss.backward()
    params = [p for p in module.parameters() if p.requires_grad]
    assert head.a.weight.grad is not None
    if params and value.requires_grad:
        assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in params), name
