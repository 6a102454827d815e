"""Downstream NMN training throughput: frozen finds recomputed vs read from the recording.

Usage: python bench/nmn_recorded.py [--cache DIR] [--seconds S] [--quick]
Quick-config data (``--cache`` as for ``brickwork clevr study --cache``, generated there if
missing); random frozen finds and
priors (throughput does not depend on their values). Alternates the two modes three times on
one thread; the JSON on the last line has samples/s of each and the ratio of medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile

import torch

from brickwork.studies.clevr.nmn.data import StudyConfig, prepare_data
from brickwork.studies.clevr.nmn.end_to_end import train_loop
from brickwork.studies.clevr.nmn.layouts import NMN
from brickwork.studies.clevr.nmn.modular import find_modules, freeze, recorded_finds
from brickwork.studies.clevr.nmn.vocab import K


def main() -> None:
    torch.set_num_threads(1)
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cache", default="runs/clevr-cache")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--quick", action="store_true", help="5 s per run")
    args = ap.parse_args()
    cache, seconds = args.cache, (5.0 if args.quick else args.seconds)
    data = prepare_data(cache, StudyConfig.quick())
    out: dict[str, list[float]] = {"recompute": [], "recorded": []}
    rec_seconds = []
    for rep in range(3):
        for mode in ("recompute", "recorded"):
            torch.manual_seed(rep)
            model = NMN("typed", len(data.tokenizer), StudyConfig.quick().channels)
            finds = find_modules(model, data)
            freeze(model, finds)
            priors = {n: torch.randn(len(s), K) for n, s in data.sets.items()}
            reader = None
            if mode == "recorded":
                with tempfile.TemporaryDirectory() as tmp:
                    reader, info = recorded_finds(model, finds, data, ["train"], tmp)
                rec_seconds.append(info["seconds"])
            res = train_loop(
                model,
                data,
                "train",
                seconds,
                seed=rep,
                priors=priors,
                eval_every=1e9,
                recorded=reader,
            )
            out[mode].append(res["samples_per_second"])
            print(
                f"rep {rep} {mode}: {res['samples_per_second']:.0f} samples/s "
                f"({res['steps']} steps)",
                flush=True,
            )
    a, b = statistics.median(out["recompute"]), statistics.median(out["recorded"])
    print(
        json.dumps(
            {
                "recompute_samples_per_second": out["recompute"],
                "recorded_samples_per_second": out["recorded"],
                "ratio_of_medians": b / a,
                "record_seconds": rec_seconds,
                "seconds_per_run": seconds,
            }
        )
    )


if __name__ == "__main__":
    main()
