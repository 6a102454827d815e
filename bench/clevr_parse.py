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
from typing import Any

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


def _stages(s: dict[str, Any]) -> dict[str, Any]:
    """Validation exact programs after each stage: depth 1-5 (200 test questions),
    6-10 and 11-20 (100 each); the stage-2 reward; the self-trained stage's pseudo-labels
    per round (kept of decoded, and how many are the dataset's own programs); the
    labelled words."""
    out: dict[str, Any] = {}
    for stage in ("supervised", "recombined", "answers", "self"):
        rep = s.get(stage) or {}
        if not rep:
            continue
        deep = rep.get("val_deep") or {}
        out[stage] = {
            "1-5": (rep.get("val") or {}).get("1-5"),
            "6-10": deep.get("6-10"),
            "11-20": deep.get("11-20"),
            "seconds": rep.get("seconds"),
        }
    rec = s.get("recombined") or {}
    out["recombined_questions"] = rec.get("questions")
    out["reward_first"] = (s.get("answers") or {}).get("reward_first")
    out["reward_last"] = (s.get("answers") or {}).get("reward_last")
    out["pseudo_labels"] = [
        {
            "kept": r["kept"],
            "decoded": r["decoded"],
            "rejected": r.get("rejected"),
            "precision": r["precision"],
        }
        for r in (s.get("self") or {}).get("rounds", [])
    ]
    out["labelled_words"] = s["labelled_words"]
    out["words"] = s["words"]
    return out


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
    result["stages"] = {n: _stages(s) for n, s in res["stages"].items()}
    result["mode"] = "quick" if args.quick else "full"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
