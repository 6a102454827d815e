"""The program-generator benchmark (issue 19): exact programs by N and depth, held-out
templates, NMN answers from generated vs given programs, and the seq2seq baseline, as
JSON on the last line.

    python bench/clevr_parse.py --quick                       # N = 90, 270 (a few minutes)
    python bench/clevr_parse.py --run runs/clevr_nmn/full --cache runs/clevr-cache
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import replace
from pathlib import Path

import torch

from brickwork.studies.clevr.parse.study import ParseStudyConfig, run_parse_study

KEYS = (
    "program_exact",
    "program_exact_heldout_templates",
    "answer_accuracy_from_text",
    "baseline",
    "pointer",
    "train_seconds",
    "data_digest",
    "brickwork",
    "wall_seconds",
    "machine",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/clevr_parse")
    ap.add_argument("--run", default=None, help="a finished NMN study run (for answers)")
    ap.add_argument("--cache", default=None, help="that study's --cache folder")
    ap.add_argument("--workers", type=int, default=2, help="settings trained at a time")
    ap.add_argument("--ns", help="comma-separated N settings instead of the mode's (e.g. 270,all)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    cfg = ParseStudyConfig.quick(args.seed) if args.quick else ParseStudyConfig(seed=args.seed)
    if args.ns:
        ns = tuple(None if n.strip() == "all" else int(n) for n in args.ns.split(","))
        cfg = replace(cfg, ns=ns)
    out = Path(args.out) / ("quick" if args.quick else "full")
    res = run_parse_study(out, cfg, run=args.run, cache=args.cache, workers=args.workers)
    result = {k: res[k] for k in KEYS if k in res}
    result["stages"] = {
        n: {
            "supervised_val_1_5": (s["supervised"].get("val") or {}).get("1-5"),
            "answers_val_1_5": ((s.get("answers") or {}).get("val") or {}).get("1-5"),
            "reward_first": (s.get("answers") or {}).get("reward_first"),
            "reward_last": (s.get("answers") or {}).get("reward_last"),
            "labelled_words": s["labelled_words"],
            "words": s["words"],
        }
        for n, s in res["stages"].items()
    }
    result["mode"] = "quick" if args.quick else "full"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
