"""The NMN study benchmark: runs ``brickwork.studies.clevr.nmn.run_study`` and prints
the acceptance figures as JSON on the last line.

    python bench/clevr_nmn.py --quick          # ~10 min smoke run (1 seed, small budgets)
    python bench/clevr_nmn.py                  # full study (3 seeds; ~90 min budget)
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import replace
from pathlib import Path

import torch

from brickwork.studies.clevr.nmn import StudyConfig, run_study

KEYS = (
    "accuracy",
    "error_by_depth",
    "seen_error",
    "unseen_error",
    "sgm_pearson_r",
    "sgm_p_value",
    "cost_ratio_sequential",
    "cost_ratio_parallel",
    "train_samples_per_second",
    "supervision_targets",
    "acceptance",
    "wall_seconds",
    "data_digest",
    "brickwork",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/clevr_nmn")
    ap.add_argument("--cache", default="runs/clevr-cache")
    ap.add_argument(
        "--device", default="cpu", help="where the models train and run (cpu, cuda, cuda:N)"
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    cfg = StudyConfig.quick(args.seed) if args.quick else StudyConfig.full(args.seed)
    cfg = replace(cfg, device=args.device)
    out = Path(args.out) / ("quick" if args.quick else "full")
    summary = run_study(out, cfg, args.cache)
    result = {k: summary[k] for k in KEYS}
    result["mode"] = "quick" if args.quick else "full"
    result["seed"] = args.seed
    print(json.dumps(result))


if __name__ == "__main__":
    main()
