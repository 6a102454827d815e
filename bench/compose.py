"""Reuse by composition on HOUDINI's task sequences (8×8 digits): programs found by the
typed search vs standalone networks, low-level transfer and a CNN+LSTM, by data fraction
and list length; search-space counts; forgetting.

Prints progress on stderr and one JSON object on its last line with the keys
``programs_correct``, ``rmse_ratio_2pct``, ``rmse_ratio_10pct``, ``extrapolation``,
``search``, ``forgetting``, ``seconds_per_sequence`` (plus detail). ``--quick``: CS1 and
Summing, one seed, smaller data. ``--out DIR`` keeps the run folder (results.json with
config, version, every record) and writes the RMSE-vs-data-fraction figure there.
``--ensemble K`` (default 3; 1: single fits) with ``--ensemble-scope winner`` (default:
candidates selected as single fits, the winner's new modules and the standalone baseline
ensembles of K) or ``all`` (every full training, candidates and baselines alike).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", help="keep the run folder here (default: a temporary folder)")
    ap.add_argument("--sequences", help="comma-separated subset of cs1,cs2,summing,mixed")
    ap.add_argument("--seeds", type=int, help="number of seeds (default 3, --quick 1)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--device", default="cpu", help="where candidates train and run (cpu, cuda, cuda:N)"
    )
    ap.add_argument(
        "--ensemble",
        type=int,
        help="a trained module is the ensemble of K independent fits (default: the study's, "
        "3; 1: single fits)",
    )
    ap.add_argument(
        "--ensemble-scope",
        choices=("winner", "all"),
        help="winner (default): select among single fits, then ensemble the winner's new "
        "modules and the standalone baseline; all: every full training, baselines too",
    )
    args = ap.parse_args()

    import torch

    from brickwork.compose.jobs import ensemble_options
    from brickwork.errors import DataError
    from brickwork.studies.compose import StudyConfig, run_study
    from brickwork.studies.compose.plots import plot_rmse_by_fraction

    torch.set_num_threads(1)
    cfg = StudyConfig.quick() if args.quick else StudyConfig()
    if args.sequences:
        cfg.sequences = tuple(s.strip() for s in args.sequences.split(","))
    if args.seeds:
        cfg.seeds = tuple(range(args.seeds))
    cfg.workers = args.workers
    cfg.device = args.device
    if args.ensemble is not None:
        cfg.fit = {**cfg.fit, "ensemble": args.ensemble}
    if args.ensemble_scope is not None:
        cfg.fit = {**cfg.fit, "ensemble_scope": args.ensemble_scope}
    try:  # a bad --ensemble stops here, in one line, not in the first solve
        ensemble_options(cfg.fit)
    except DataError as err:
        ap.error(str(err))
    out = args.out or tempfile.mkdtemp(prefix="bench-compose-")
    start = time.perf_counter()
    summary = run_study(cfg, out, progress=lambda text: print(text, file=sys.stderr, flush=True))
    plot_rmse_by_fraction(summary, os.path.join(out, "compose-rmse.png"))
    summary["wall_seconds"] = round(time.perf_counter() - start, 1)
    summary["load_average_1min"] = round(os.getloadavg()[0], 2)
    summary["out"] = out
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
