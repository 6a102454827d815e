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


def _import_everything() -> None:
    for info in pkgutil.walk_packages(brickwork.__path__, "brickwork."):
        if ".cli" in info.name or info.name.endswith("__main__"):
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
def test_ports_declared_and_outputs_in_domain_after_project(name):
    module, sizes = build(name)
    assert module.inputs and module.outputs, f"{name} declares no ports"
    assert module.kind == name
    json.dumps(module.config)
    with bm.checking(False):
        out = module.outputs_as_dict(module(**example_inputs(module, sizes)))
    for port, t in module.outputs.items():
        assert t.check(t.project(out[port].detach())) == "", (name, port)


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
    res = subprocess.run([sys.executable, "-c", code, json.dumps(list(folders))],
                         capture_output=True, text=True, check=True)
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
    loss = torch.nn.functional.cross_entropy(head(value), torch.zeros(value.shape[0], dtype=torch.long))
    loss.backward()
    params = [p for p in module.parameters() if p.requires_grad]
    assert head.a.weight.grad is not None
    if params and value.requires_grad:
        assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in params), name
