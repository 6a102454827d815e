"""Per-epoch speedup of training a downstream module from an intermediate dataset vs
recomputing its (frozen) upstream module at every step.

Prints one JSON object on its last line with key ``speedup`` (target >= 5). The time to
record the intermediate dataset once is reported too (``build_seconds``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

import torch

from brickwork.training import CacheKey, FitConfig, IntermediateDataset, Samples, fit
from brickwork.training.fixtures import ToyFind, ToyMeasure
from brickwork.training.losses import type_loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu", help="where the modules train (cpu, cuda, cuda:N)")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(1)
    n, epochs = (512, 2) if args.quick else (2048, 3)
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(n, 32, 12, 16, generator=g)
    answer = torch.randint(0, 5, (n,), generator=g)
    data = Samples({"features": feats, "answer": answer})
    torch.manual_seed(0)
    find = ToyFind(channels=32, out="heatmap", hidden=128).eval().to(device)
    for p in find.parameters():
        p.requires_grad_(False)
    out_t = ToyMeasure(answers=5).outputs["answer"]

    def recompute_loss(model: torch.nn.Module, batch: Samples) -> torch.Tensor:
        with torch.no_grad():
            mask = find(batch["features"].to(device))
        return type_loss(out_t, model(mask), batch["answer"])

    def cached_loss(model: torch.nn.Module, batch: Samples) -> torch.Tensor:
        return type_loss(out_t, model(batch["mask"]), batch["answer"])

    cfg = FitConfig(epochs=epochs, batch_size=32, lr=1e-3, seed=0)
    torch.manual_seed(1)
    slow = fit(ToyMeasure(answers=5), recompute_loss, data, config=cfg, device=device)

    root = tempfile.mkdtemp(prefix="bw-cache-")
    key = CacheKey(upstream={"find": find.fingerprint()}, data_digest=data.digest())
    t = time.perf_counter()

    def produce():
        with torch.no_grad():
            for s in range(0, n, 512):
                part = data.select(torch.arange(s, min(n, s + 512)))
                mask = find(part["features"].to(device)).cpu()
                yield Samples({"mask": mask, "answer": part["answer"]}, part.ids)

    ds, hit = IntermediateDataset.get_or_build(root, key, produce)
    build_seconds = time.perf_counter() - t
    cached = ds.load()
    torch.manual_seed(1)
    fast = fit(ToyMeasure(answers=5), cached_loss, cached, config=cfg, device=device)
    per_epoch_slow = slow.wall_time / slow.epochs
    per_epoch_fast = fast.wall_time / fast.epochs
    hit_again = IntermediateDataset.get_or_build(root, key, produce)[1]
    out = {
        "bench": "cache",
        "samples": n,
        "epochs": epochs,
        "epoch_seconds_recompute": per_epoch_slow,
        "epoch_seconds_cached": per_epoch_fast,
        "speedup": per_epoch_slow / per_epoch_fast,
        "build_seconds": build_seconds,
        "second_lookup_hit": hit_again,
        "first_lookup_hit": hit,
        "same_final_loss": abs(slow.final["train_loss"] - fast.final["train_loss"]) < 1e-4,
        "target": 5.0,
        "quick": args.quick,
        "device": str(device),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
