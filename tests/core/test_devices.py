"""Devices: the Runner makes its schedules' index tensors on the inputs' device and
creates nothing on the CPU implicitly (proved with meta tensors); loading takes a
``map_location``; type noise follows the input's device."""

from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode

from brickwork.errors import LayoutError
from brickwork.layouts import Kinds, LayoutBuilder, Runner, load_kinds, save_kinds
from brickwork.modules import And
from brickwork.types import Bounded, Features, SoftMask


class CpuTensorRecorder(TorchFunctionMode):
    """Records every torch function whose result is a CPU tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.cpu: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor) and t.device.type == "cpu":
                self.cpu.append(getattr(func, "__name__", repr(func)))
        return out


def family():
    kinds = Kinds(And=lambda: And.min("b n"))

    def lay(depth, arg):
        b = LayoutBuilder(kinds, name=f"d{depth}{arg}")
        x = b.input("x")
        for _ in range(depth):
            x = b.add(f"And[{arg}]", a=x, b=b.input("y")).source()
        return b.build()

    return kinds, [lay(1, "p"), lay(3, "q"), lay(2, "p"), lay(2, "r")]


def test_recorder_sees_cpu_tensors():
    with CpuTensorRecorder() as rec:
        torch.tensor([1, 2])
        torch.arange(3)
    assert rec.cpu == ["tensor", "arange"]


def test_runner_on_meta_creates_nothing_on_the_cpu():
    kinds, batch = family()
    x, y = torch.rand(4, 5), torch.rand(4, 5)
    want = Runner(kinds)(batch, {"x": x, "y": y})["out"]
    kinds.to("meta")
    mx, my = x.to("meta"), y.to("meta")
    with CpuTensorRecorder() as rec:
        runner = Runner(kinds)
        out = runner(batch, {"x": mx, "y": my})
        ref = Runner.per_sample(batch, {"x": mx, "y": my})
    assert rec.cpu == []
    assert out["out"].device.type == "meta" and ref["out"].device.type == "meta"
    assert out["out"].shape == want.shape
    sched = runner.last_schedule
    idx = [g.index for s in sched.steps for g in s.gathers.values() if g.index is not None]
    idx += [s.instance for s in sched.steps if s.instance is not None]
    assert idx and all(t.device.type == "meta" for t in idx)


def test_runner_device_moves_inputs_and_keys_the_cache_by_device():
    kinds, batch = family()
    x, y = torch.rand(4, 5), torch.rand(4, 5)
    runner = Runner(kinds)
    runner(batch, {"x": x, "y": y})
    cpu_sched = runner.last_schedule
    kinds.to("meta")
    with CpuTensorRecorder() as rec:
        out = Runner(kinds, device="meta")(batch, {"x": x, "y": y})
    assert out["out"].device.type == "meta"
    assert rec.cpu == []
    runner(batch, {"x": x.to("meta"), "y": y.to("meta")})
    assert runner.last_schedule is not cpu_sched
    assert len(runner._cache) == 2


def test_mixed_devices_and_bad_device_are_refused():
    kinds, batch = family()
    with pytest.raises(
        LayoutError, match=r"inputs on different devices \('x' on cpu, 'y' on meta\)"
    ):
        Runner(kinds)(batch, {"x": torch.rand(4, 5), "y": torch.rand(4, 5, device="meta")})
    with pytest.raises(LayoutError, match=r"Runner\(device=\.\.\.\): 'gpu7' is not a device"):
        Runner(kinds, device="gpu7")


def test_load_kinds_map_location(tmp_path):
    kinds, batch = family()
    Runner(kinds)(batch, {"x": torch.rand(4, 5), "y": torch.rand(4, 5)})
    back = load_kinds(save_kinds(kinds, tmp_path / "k"), map_location="meta")
    assert sorted(back.names()) == sorted(kinds.names())
    out = Runner(back)(
        batch, {"x": torch.rand(4, 5, device="meta"), "y": torch.rand(4, 5, device="meta")}
    )
    assert out["out"].device.type == "meta"


def test_type_noise_follows_the_input_device():
    for t, x in (
        (SoftMask("b n"), torch.rand(2, 3)),
        (Features("b n"), torch.rand(2, 3)),
        (Bounded("b n", low=0.0, high=1.0), torch.rand(2, 3)),
    ):
        with CpuTensorRecorder() as rec:
            y = t.noise(x.to("meta"))
        assert y.device.type == "meta" and rec.cpu == [], (t, rec.cpu)
        g = torch.Generator().manual_seed(0)
        a = t.noise(x, generator=g)
        g.manual_seed(0)
        assert torch.equal(a, t.noise(x, generator=g))
