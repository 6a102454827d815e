"""Speedup of training 4 independent modules with 2 workers vs 1 worker (same run).

Prints one JSON object on its last line with key ``speedup`` (target >= 1.7 on 2 cores).
Both pools are started and warmed up before timing; every job is the same fixed amount of
work (no early stopping), one torch thread per worker.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import torch

from brickwork.training import Samples
from brickwork.training.executor import LocalExecutor
from brickwork.training.job import ModuleJob, run_job


def make_jobs(root: str, tag: str, epochs: int, n: int, device: str = "cpu") -> list[dict]:
    jobs = []
    for m in range(4):
        g = torch.Generator().manual_seed(m)
        x = torch.randn(n, 32, generator=g)
        y = (x[:, :4].sum(1) > 0).long()
        path = os.path.join(root, f"data{m}.safetensors")
        if not os.path.exists(path):
            Samples({"x": x, "y": y}).save(path)
        jobs.append(
            ModuleJob(
                name=f"m{m}",
                kind="toy_classifier",
                config={"dim": 32, "classes": 2, "hidden": 64, "layers": 2},
                imports=("brickwork.training.fixtures",),
                mode="direct",
                data=path,
                device=device,
                inputs={"x": "x"},
                target="y",
                seed=m,
                workdir=os.path.join(root, tag, f"m{m}"),
                hparams={"epochs": epochs, "batch_size": 32, "lr": 1e-3, "patience": 10**6},
            ).to_json()
        )
    return jobs


def timed(workers: int, jobs: list[dict]) -> tuple[float, float]:
    """(elapsed seconds, sum of the jobs' own wall times)."""
    with LocalExecutor(workers) as ex:
        ex.warm_up(["brickwork.training.fixtures"])
        t = time.perf_counter()
        results = ex.map(run_job, jobs)
        return time.perf_counter() - t, sum(r["wall_time"] for r in results)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--device", default="cpu", help="where the jobs train (cpu, cuda, cuda:N)")
    args = ap.parse_args()
    epochs, n = (6, 2048) if args.quick else (12, 4096)
    repeats = args.repeats or (1 if args.quick else 3)
    root = tempfile.mkdtemp(prefix="bw-parallel-")
    t1s, t2s, busy1, busy2 = [], [], [], []
    for r in range(repeats):
        e, b = timed(1, make_jobs(root, f"w1-{r}", epochs, n, args.device))
        t1s.append(e)
        busy1.append(b)
        e, b = timed(2, make_jobs(root, f"w2-{r}", epochs, n, args.device))
        t2s.append(e)
        busy2.append(b)
    ratios = [a / b for a, b in zip(t1s, t2s)]
    out = {
        "bench": "parallel",
        "modules": 4,
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "seconds_1_worker": t1s,
        "seconds_2_workers": t2s,
        "speedups": ratios,
        # jobs alive at once (~2 means both workers ran concurrently); per-job slowdown
        # from 1 to 2 workers shows CPU contention (other processes on the machine)
        "concurrency_2_workers": statistics.median(b / e for b, e in zip(busy2, t2s)),
        "per_job_slowdown_2_vs_1": statistics.median(b2 / b1 for b1, b2 in zip(busy1, busy2)),
        "speedup": statistics.median(ratios),
        "target": 1.7,
        "quick": args.quick,
        "device": args.device,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
