"""``bench/gpu.py``: on a machine without CUDA it reports ``cuda: false`` on its last
line and exits 0; its CUDA branch runs (here with the CUDA calls faked onto the CPU, so
a GPU machine does not meet the code for the first time)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench" / "gpu.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA report")
def test_quick_run_without_cuda_reports_cuda_false_and_exits_0():
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick"], capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    assert last["cuda"] is False
    cpu = last["cpu"]
    assert cpu["autobatch"]["speedup"] > 0 and cpu["fit"]["cpu_samples_per_s"] > 0


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_gpu_under_test", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cuda_branch_runs_with_cuda_faked_onto_the_cpu(monkeypatch, capsys):
    bench = _load_bench()
    synced: list[object] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "fake GPU")
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: synced.append(device))
    # the "GPU" is the CPU: every code path of the CUDA branch runs, on CPU tensors
    assert bench.main(["--quick", "--device", "cpu"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["cuda"] is True and last["gpu"] == "fake GPU"
    assert last["autobatch"]["speedup"] > 0 and last["autobatch_cpu"]["speedup"] > 0
    fit = last["fit"]
    assert fit["cuda_samples_per_s"] > 0 and fit["cpu_samples_per_s"] > 0
    assert fit["cuda_over_cpu"] > 0
    # same seed, same data, same device here: the two fits end at the same loss
    assert fit["cuda_final_train_loss"] == fit["cpu_final_train_loss"]
