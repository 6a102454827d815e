"""Autobatching benchmark: per-sample loop vs autobatched runner vs an ideal static layout.

Builds random CLEVR-like program layouts (depth 2–12) over small conv/MLP module kinds
with per-argument instances (``filter[red]`` …), then measures forward+backward
samples/s at batch 64 and 256. The *ideal* case runs the same module applications
as one static layout shared by the whole batch (each node one call with shared
weights): its layout applies each kind as often per sample as the batch does on
average, and its time is rescaled by the small rounding difference in applications.
Prints one JSON object on its last line.

    python bench/autobatch.py            # full: 1,000 layouts, 5 repeats
    python bench/autobatch.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

import torch
import torch.nn.functional as F

import brickwork
from brickwork.layouts import Kinds, Layout, LayoutBuilder, Runner
from brickwork.modules import And, Module, Or, stack_param
from brickwork.training.fixtures import random_program_layout
from brickwork.types import Features, Logits, SoftMask

C, H, W, HID, K = 32, 8, 12, 16, 28
FEAT = Features("b c h w")
MASK = SoftMask("b 1 h w")
ANS = Logits("b k")


class _Conv1x1Head(Module):
    """Abstract: x -> 1x1 conv (in -> HID) -> ReLU [-> 3x3 mean] -> 1x1 conv (HID -> out),
    with every weight per instance; all instances of a kind run as one batched matmul."""

    spatial = False

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.w1 = torch.nn.Parameter(torch.randn(HID, cin) / cin**0.5)
        self.b1 = torch.nn.Parameter(torch.zeros(HID))
        self.w2 = torch.nn.Parameter(torch.randn(cout, HID) / HID**0.5)
        self.b2 = torch.nn.Parameter(torch.zeros(cout))

    @classmethod
    def _compute(cls, x, w1, b1, w2, b2):
        n, c, h, w = x.shape
        hid = torch.relu(torch.matmul(w1, x.reshape(n, c, h * w)) + b1.unsqueeze(-1))
        if cls.spatial:
            hid = F.avg_pool2d(hid.reshape(n, -1, h, w), 3, 1, 1).reshape(n, -1, h * w)
        out = torch.matmul(w2, hid) + b2.unsqueeze(-1)
        return out.reshape(n, -1, h, w)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        return self._compute(x, self.w1, self.b1.unsqueeze(0), self.w2, self.b2.unsqueeze(0))

    @classmethod
    def heads(cls, modules: list[Module], instance: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return cls._compute(
            x,
            stack_param(modules, "w1", instance),
            stack_param(modules, "b1", instance),
            stack_param(modules, "w2", instance),
            stack_param(modules, "b2", instance),
        )


class Scene(_Conv1x1Head):
    inputs = {"features": FEAT}
    outputs = {"mask": MASK}

    def __init__(self) -> None:
        super().__init__(C, 1)

    def forward(self, features):
        return torch.sigmoid(self.head(features))


class Filter(_Conv1x1Head):
    inputs = {"mask": MASK, "features": FEAT}
    outputs = {"mask": MASK}

    def __init__(self) -> None:
        super().__init__(C, 1)

    def forward(self, mask, features):
        return mask * torch.sigmoid(self.head(features))

    @classmethod
    def forward_instances(cls, modules, instance, mask, features):
        return mask * torch.sigmoid(cls.heads(modules, instance, features))


class Relate(_Conv1x1Head):
    inputs = {"mask": MASK, "features": FEAT}
    outputs = {"mask": MASK}
    spatial = True

    def __init__(self) -> None:
        super().__init__(C + 1, 1)

    def forward(self, mask, features):
        return torch.sigmoid(self.head(torch.cat([features * mask, mask], 1)))

    @classmethod
    def forward_instances(cls, modules, instance, mask, features):
        return torch.sigmoid(cls.heads(modules, instance, torch.cat([features * mask, mask], 1)))


class _Answer(Module):
    """Abstract: pooled attended features -> MLP -> logits, per instance."""

    def __init__(self) -> None:
        super().__init__()
        self.w1 = torch.nn.Parameter(torch.randn(HID, C + 1) / (C + 1) ** 0.5)
        self.b1 = torch.nn.Parameter(torch.zeros(HID))
        self.w2 = torch.nn.Parameter(torch.randn(K, HID) / HID**0.5)
        self.b2 = torch.nn.Parameter(torch.zeros(K))

    @staticmethod
    def pool(mask, features):
        return torch.cat([(features * mask).mean((2, 3)), mask.mean((2, 3))], 1)

    def forward(self, mask, features):
        h = torch.relu(self.pool(mask, features) @ self.w1.T + self.b1)
        return h @ self.w2.T + self.b2

    @classmethod
    def forward_instances(cls, modules, instance, mask, features):
        x = cls.pool(mask, features)
        h = torch.relu(
            torch.einsum("nc,ndc->nd", x, stack_param(modules, "w1", instance))
            + stack_param(modules, "b1", instance)
        )
        return torch.einsum("nc,ndc->nd", h, stack_param(modules, "w2", instance)) + stack_param(
            modules, "b2", instance
        )


class Query(_Answer):
    inputs = {"mask": MASK, "features": FEAT}
    outputs = {"answer": ANS}


COLORS = [
    "gray",
    "red",
    "blue",
    "green",
    "brown",
    "purple",
    "cyan",
    "yellow",
    "cube",
    "sphere",
    "cylinder",
    "small",
    "large",
    "rubber",
    "metal",
]
RELATIONS = ["left", "right", "front", "behind"]
QUERIES = ["color", "shape", "size", "material", "count", "exist"]


def make_kinds() -> Kinds:
    return Kinds(
        scene=Scene,
        filter=Filter,
        relate=Relate,
        query=Query,
        And=lambda: And.min("b 1 h w"),
        Or=lambda: Or.max("b 1 h w"),
    )


def random_layout(kinds: Kinds, rng: random.Random, depth: int, name: str) -> Layout:
    """A random program of exactly ``depth`` levels (longest chain)."""
    return random_program_layout(
        kinds, rng, depth, name, filters=COLORS, relations=RELATIONS, queries=QUERIES
    )


def ideal_layout(kinds: Kinds, layouts: list[Layout]) -> tuple[Layout, float]:
    """The ideal static case: one layout, shared by the whole batch, applying every kind
    as often per sample as the batch does on average (rounded). Returns the layout and
    the factor that converts its samples/s into samples/s of the batch's exact mix
    (its applications per sample ÷ the batch's)."""
    counts: dict[str, float] = {}
    for lay in layouts:
        for node in lay.nodes:
            counts[node.kind] = counts.get(node.kind, 0) + 1 / len(layouts)
    b = LayoutBuilder(kinds, "ideal")
    feats = b.input("features")
    x = b.add("scene", features=feats).source()
    extra_scenes = max(0, round(counts.get("scene", 1)) - 1)
    merges = round(counts.get("And", 0) + counts.get("Or", 0))
    body = ["filter"] * round(counts.get("filter", 0)) + ["relate"] * round(counts.get("relate", 0))
    for i, kind in enumerate(body):
        arg = COLORS[i % len(COLORS)] if kind == "filter" else RELATIONS[i % len(RELATIONS)]
        x = b.add(f"{kind}[{arg}]", mask=x, features=feats).source()
        if i < merges:
            other = b.add("scene", features=feats).source() if i < extra_scenes else x
            x = b.add("And" if i % 2 == 0 else "Or", a=x, b=other).source()
    b.output("answer", b.add("query[color]", mask=x, features=feats))
    lay = b.build()
    return lay, len(lay) / sum(counts.values())


def run_fwd_bwd(fn, batches) -> float:
    """Seconds to run every batch forward + backward once."""
    cuda = batches[0][1].is_cuda
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for layouts, feats in batches:
        fn(layouts, {"features": feats})["answer"].square().mean().backward()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def interleaved_medians(cases: dict, repeats: int) -> dict[str, float]:
    """Median seconds per case, timing the cases round-robin (one untimed warm-up each)
    so that load from other processes hits every case alike."""
    for fn, batches in cases.values():
        run_fwd_bwd(fn, batches[:1])
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(repeats):
        for name, (fn, batches) in cases.items():
            times[name].append(run_fwd_bwd(fn, batches))
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--layouts", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--device", default="cpu", help="where modules and features live (cpu, cuda, cuda:N)"
    )
    args = ap.parse_args()
    if args.quick:
        args.layouts, args.repeats = 256, 3
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    kinds = make_kinds()
    device = torch.device(args.device)
    layouts = [random_layout(kinds, rng, rng.randint(2, 12), f"q{i}") for i in range(args.layouts)]
    for lay in layouts:  # instantiate every module, then move the vocabulary once
        for name in lay.module_names():
            kinds.module(name)
    kinds.to(device)
    runner = Runner(kinds, cache_size=0)
    result: dict = {
        "layouts": len(layouts),
        "repeats": args.repeats,
        "channels": C,
        "grid": [H, W],
        "torch_threads": 1,
        "device": str(device),
        "brickwork": brickwork.__version__,
        "mean_nodes": statistics.mean(len(lay) for lay in layouts),
    }
    for bs in (64, 256):
        n_batches = max(1, min(len(layouts) // bs, 4))
        batches = [
            (layouts[i * bs : (i + 1) * bs], torch.randn(bs, C, H, W).to(device))
            for i in range(n_batches)
        ]
        samples = bs * n_batches
        ideals = [ideal_layout(kinds, ls) for ls, _ in batches]
        kinds.to(device)  # modules the ideal layouts added
        ideal = [([lay] * bs, f) for (lay, _), (_, f) in zip(ideals, batches)]
        mix = statistics.mean(factor for _, factor in ideals)
        med = interleaved_medians(
            {
                "per_sample": (Runner.per_sample, batches[:1]),
                "auto": (runner, batches),
                "ideal": (runner, ideal),
            },
            args.repeats,
        )
        t_ref, t_auto, t_ideal = med["per_sample"] * n_batches, med["auto"], med["ideal"]
        runner(batches[0][0], {"features": batches[0][1]})
        result[f"per_sample_{bs}"] = samples / t_ref
        result[f"autobatched_{bs}"] = samples / t_auto
        t_ideal /= mix  # seconds for the batch's exact mix of applications
        result[f"ideal_{bs}"] = samples / t_ideal
        result[f"ideal_mix_factor_{bs}"] = mix
        result[f"calls_{bs}"] = runner.last_schedule.calls if runner.last_schedule else None
        result[f"speedup_{bs}"] = t_ref / t_auto
        result[f"efficiency_{bs}"] = t_ideal / t_auto
    print(json.dumps(result))


if __name__ == "__main__":
    main()
