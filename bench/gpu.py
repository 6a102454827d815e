"""GPU benchmark: the runner's autobatch speedup and ``fit``'s throughput on CUDA.

Two measurements, each a ratio within one run (medians of interleaved repeats after an
untimed warm-up; ``torch.cuda.synchronize()`` around every timed region):

* **autobatch** — forward + backward samples/s of a batch of random CLEVR-like layouts
  (depth 2–12, per-argument module instances; the kinds of ``bench/autobatch.py``) run
  by the autobatching ``Runner`` vs ``Runner.per_sample`` (one layout at a time), on
  CUDA; the CPU figures of the same batch are measured alongside.
* **fit** — training samples/s of a small MLP classifier through ``brickwork.training.fit``
  with ``device="cuda"`` vs ``device="cpu"`` (same data, seed and config).

Prints one JSON object on its last line. Without CUDA it prints ``{"cuda": false, ...}``
(with the CPU figures under ``"cpu"``) and exits 0.

    python bench/gpu.py            # full
    python bench/gpu.py --quick    # smoke run (seconds)
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import brickwork  # noqa: E402
from autobatch import C, H, W, make_kinds, random_layout  # noqa: E402
from brickwork.layouts import Runner  # noqa: E402
from brickwork.training import FitConfig, Samples, fit  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    """Wall seconds of ``fn()``, with the device's queue drained before and after."""
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def interleaved_medians(
    cases: dict[str, Callable[[], Any]], device: torch.device, repeats: int, warmup: int = 1
) -> dict[str, float]:
    """Median seconds per case; cases run round-robin after ``warmup`` untimed runs each."""
    for fn in cases.values():
        for _ in range(warmup):
            timed(fn, device)
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            times[name].append(timed(fn, device))
    return {k: statistics.median(v) for k, v in times.items()}


# ----- autobatch ---------------------------------------------------------------------------
def autobatch(
    device: torch.device, *, layouts: int, batch: int, repeats: int, seed: int
) -> dict[str, Any]:
    """Runner vs Runner.per_sample, forward + backward, on ``device``."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    kinds = make_kinds()
    lays = [random_layout(kinds, rng, rng.randint(2, 12), f"q{i}") for i in range(layouts)]
    # every instance the layouts name exists now (built with the layouts); moved by hand
    # because autobatch.py's kinds define a classmethod ``_apply`` that nn.Module.to uses
    with torch.no_grad():
        for p in kinds.parameters():
            p.data = p.data.to(device)
    runner = Runner(kinds, cache_size=0)
    gen = torch.Generator().manual_seed(seed)
    n_batches = max(1, len(lays) // batch)
    batches = [
        (lays[i * batch : (i + 1) * batch], torch.randn(batch, C, H, W, generator=gen).to(device))
        for i in range(n_batches)
    ]

    def run(fn: Callable[..., dict[str, torch.Tensor]], which: list) -> Callable[[], None]:
        def go() -> None:
            for ls, feats in which:
                fn(ls, {"features": feats})["answer"].square().mean().backward()

        return go

    # per-sample is slow: time it on one batch, the runner on all of them
    med = interleaved_medians(
        {"per_sample": run(Runner.per_sample, batches[:1]), "autobatched": run(runner, batches)},
        device,
        repeats,
    )
    t_ref, t_auto = med["per_sample"] * n_batches, med["autobatched"]
    samples = batch * n_batches
    runner(batches[0][0], {"features": batches[0][1]})
    return {
        "device": str(device),
        "batch": batch,
        "batches": n_batches,
        "mean_nodes": statistics.mean(len(lay) for lay in lays),
        "per_sample_samples_per_s": samples / t_ref,
        "autobatched_samples_per_s": samples / t_auto,
        "speedup": t_ref / t_auto,
        "calls_per_batch": runner.last_schedule.calls if runner.last_schedule else None,
    }


# ----- fit ---------------------------------------------------------------------------------
class _MLP(torch.nn.Module):
    def __init__(self, d_in: int, hidden: int, classes: int):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(d_in, hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden, hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _loss(model: torch.nn.Module, batch: Samples) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(model(batch["x"]), batch["y"])


def fit_throughput(
    devices: dict[str, torch.device],
    *,
    samples: int,
    epochs: int,
    batch: int,
    hidden: int,
    repeats: int,
    seed: int,
) -> dict[str, Any]:
    """Training samples/s of the same small model and data through ``fit`` on each
    device (``{"cpu": ..., "cuda": ...}``), timed round-robin."""
    gen = torch.Generator().manual_seed(seed)
    d_in, classes = 64, 10
    x = torch.randn(samples, d_in, generator=gen)
    y = x[:, :classes].argmax(-1)  # a learnable target
    data = Samples({"x": x, "y": y})
    cfg = FitConfig(epochs=epochs, batch_size=batch, lr=1e-3, seed=seed)
    losses: dict[str, float] = {}

    def one(label: str, device: torch.device) -> Callable[[], None]:
        def go() -> None:
            torch.manual_seed(seed)
            res = fit(_MLP(d_in, hidden, classes), _loss, data, config=cfg, device=device)
            losses[label] = float(res.history[-1]["train_loss"]) if res.history else float("nan")

        return go

    sync = next((d for d in devices.values() if d.type == "cuda"), torch.device("cpu"))
    med = interleaved_medians({k: one(k, d) for k, d in devices.items()}, sync, repeats)
    out: dict[str, Any] = {"samples": samples, "epochs": epochs, "batch": batch, "hidden": hidden}
    for k in devices:
        out[f"{k}_samples_per_s"] = samples * epochs / med[k]
        out[f"{k}_final_train_loss"] = losses.get(k)
    if "cpu" in devices and "cuda" in devices:
        out["cuda_over_cpu"] = out["cuda_samples_per_s"] / out["cpu_samples_per_s"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="smoke run: small sizes, 1 repeat")
    ap.add_argument("--device", default="cuda", help="the CUDA device to measure (cuda, cuda:N)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats (median)")
    args = ap.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 5)
    sizes = (
        {"layouts": 64, "batch": 32, "samples": 2048, "epochs": 1, "fit_batch": 256, "hidden": 128}
        if args.quick
        else {
            "layouts": 1024,
            "batch": 256,
            "samples": 65536,
            "epochs": 3,
            "fit_batch": 512,
            "hidden": 512,
        }
    )
    torch.set_num_threads(1)
    cpu = torch.device("cpu")
    result: dict[str, Any] = {
        "brickwork": brickwork.__version__,
        "torch": torch.__version__,
        "quick": args.quick,
        "repeats": repeats,
        "torch_threads": 1,
    }
    cuda_ok = torch.cuda.is_available()
    result["cuda"] = cuda_ok
    if not cuda_ok:
        # no GPU: the CPU figures only (tiny in --quick), and a clean exit
        result["cpu"] = {
            "autobatch": autobatch(
                cpu, layouts=min(sizes["layouts"], 64), batch=32, repeats=1, seed=args.seed
            ),
            "fit": fit_throughput(
                {"cpu": cpu},
                samples=min(sizes["samples"], 2048),
                epochs=1,
                batch=256,
                hidden=128,
                repeats=1,
                seed=args.seed,
            ),
        }
        print(json.dumps(result))
        return 0
    dev = torch.device(args.device)
    result["gpu"] = torch.cuda.get_device_name(dev)
    result["autobatch"] = autobatch(
        dev, layouts=sizes["layouts"], batch=sizes["batch"], repeats=repeats, seed=args.seed
    )
    result["autobatch_cpu"] = autobatch(
        cpu,
        layouts=min(sizes["layouts"], 256),
        batch=min(sizes["batch"], 64),
        repeats=repeats,
        seed=args.seed,
    )
    result["fit"] = fit_throughput(
        {"cpu": cpu, "cuda": dev},
        samples=sizes["samples"],
        epochs=sizes["epochs"],
        batch=sizes["fit_batch"],
        hidden=sizes["hidden"],
        repeats=repeats,
        seed=args.seed,
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
