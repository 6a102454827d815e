"""A small typed layout trained and checked end to end (the core demo).

Synthetic 4×4 "images" with 3 channels; ``find[c]`` (features → SoftMask) marks cells
whose channel ``c`` is on, ``exist`` (SoftMask → Bool) says whether any cell is marked.
Programs ``exist(find[c])`` for the three channels are trained together through the
autobatched runner, with run-time type checks on, then checked on fresh data.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from brickwork._version import __version__
from brickwork.layouts import Kinds, Runner, from_program
from brickwork.modules import Module, atomic_write_json, checking
from brickwork.types import Bool, Features, SoftMask


class Find(Module):
    """features → per-cell soft mask."""

    inputs = {"features": Features("b c h w")}
    outputs = {"mask": SoftMask("b 1 h w")}

    def __init__(self, channels: int = 3):
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, 1, 1)
        with torch.no_grad():  # start from "nothing is marked": no dead or inverted finder
            assert self.conv.bias is not None  # Conv2d builds one by default
            self.conv.weight.zero_()
            self.conv.bias.fill_(-3.0)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(features))


class Exist(Module):
    """mask → probability that some cell is marked: noisy-OR, ``1 − Π(1 − m)``
    (permutation-invariant, and every cell gets a gradient)."""

    inputs = {"mask": SoftMask("b 1 h w")}
    outputs = {"answer": Bool("b")}

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        log_none = torch.log1p(-mask.flatten(1).clamp(max=1 - 1e-6)).sum(1)
        return 1.0 - torch.exp(log_none)


def _data(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    feats = (torch.rand(n, 3, 4, 4, generator=g) < 0.04).float()
    channel = torch.randint(0, 3, (n,), generator=g)
    answers = feats[torch.arange(n), channel].flatten(1).amax(1)
    return feats + 0.1 * torch.randn(feats.shape, generator=g), answers, channel.tolist()


def run_core_demo(
    out: Path, seed: int = 0, steps: int = 300, *, device: str = "cpu", progress: bool = False
) -> dict[str, Any]:
    """Train and check the demo; writes ``summary.json`` under ``out``.

    Data are drawn on the CPU (the same for every device) and moved to ``device``, where
    the modules train; ``progress`` shows a tqdm bar over the steps on stderr.
    """
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    kinds = Kinds(find=Find, exist=Exist)
    ext = {"features": Features("b c h w")}
    layouts = [
        from_program(
            [
                {"function": "find", "inputs": [], "value_inputs": [str(c)]},
                {"function": "exist", "inputs": [0]},
            ],
            kinds,
            externals=ext,
            name=f"exist(find[{c}])",
        )
        for c in range(3)
    ]
    runner = Runner(kinds)
    for c in range(3):  # instantiate every finder so the optimiser sees them all
        kinds.module(f"find[{c}]")
    kinds.module("exist")
    kinds.to(device)
    opt = torch.optim.Adam(kinds.parameters(), lr=0.05)
    t0 = time.perf_counter()
    with checking():
        for _ in tqdm(range(steps), disable=not progress, desc="core demo", unit="step"):
            feats, answers, chans = _data(64, g)
            feats, answers = feats.to(device), answers.to(device)
            pred = runner([layouts[c] for c in chans], {"features": feats})["answer"]
            loss = torch.nn.functional.binary_cross_entropy(pred, answers)
            opt.zero_grad()
            loss.backward()
            opt.step()
        feats, answers, chans = _data(2000, g)
        feats, answers = feats.to(device), answers.to(device)
        with torch.no_grad():
            pred = runner([layouts[c] for c in chans], {"features": feats})["answer"]
    acc = float(((pred > 0.5).float() == answers).float().mean())
    summary = {
        "task": "exist(find[c]) on synthetic 4x4 grids",
        "seed": seed,
        "steps": steps,
        "test_accuracy": acc,
        "train_seconds": time.perf_counter() - t0,
        "device": str(device),
        "modules": sorted(kinds.names()),
        "brickwork_version": __version__,
        "layouts": [str(lay) for lay in layouts],
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "summary.json", summary)
    return summary


def print_summary(summary: dict[str, Any], out: Path) -> None:
    print(json.dumps(summary, indent=2))
    print(f"wrote {out / 'summary.json'}")
