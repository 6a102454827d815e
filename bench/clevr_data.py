"""Benchmark of CLEVR-format data generation (not a test).

Generates N scenes with K questions each and their images (96×64) in the release
layout with 2 processes, times it, then answers every question with the executor
(`brickwork clevr execute`'s check) and times rendering alone on one process.
The last line printed is one JSON object.

    python bench/clevr_data.py            # 10,000 scenes × 10 questions, depth 1–25
    python bench/clevr_data.py --quick    # 500 scenes
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="500 scenes instead of 10,000")
    parser.add_argument("--scenes", type=int, default=None)
    parser.add_argument("--questions-per-scene", type=int, default=10)
    parser.add_argument("--max-depth", type=int, default=25)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--out", help="keep the dataset here (default: a temporary folder)")
    args = parser.parse_args()
    n = args.scenes or (500 if args.quick else 10_000)

    from brickwork.cli.clevr import check_agreement
    from brickwork.studies.clevr.data import generate_dataset, load_scenes, render_scene

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="clevr-bench-"))
    try:
        t0 = time.perf_counter()
        summary = generate_dataset(
            out, n, args.questions_per_scene, args.max_depth, seed=0, processes=args.processes
        )
        seconds = time.perf_counter() - t0

        t0 = time.perf_counter()
        report = check_agreement(summary["scenes_file"], summary["questions_file"])
        execute_seconds = time.perf_counter() - t0

        scenes = load_scenes(summary["scenes_file"])[: min(n, 1000)]
        t0 = time.perf_counter()
        for s in scenes:
            render_scene(s, 96, 64)
        render_rate = len(scenes) / (time.perf_counter() - t0)
        size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    finally:
        if not args.out:
            shutil.rmtree(out, ignore_errors=True)

    result = {
        "scenes": summary["scenes"],
        "questions": summary["questions"],
        "max_depth": args.max_depth,
        "processes": args.processes,
        "seconds": round(seconds, 1),
        "scenes_per_second": round(summary["scenes"] / seconds, 1),
        "images_per_second": round(render_rate, 1),
        "images_per_second_note": "render_scene alone, 96x64, supersample 2, one process",
        "agreement": report["agreement"],
        "disagreements": len(report["disagreements"]),
        "execute_seconds": round(execute_seconds, 1),
        "dataset_megabytes": round(size / 1e6, 1),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
