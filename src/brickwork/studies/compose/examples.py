"""Example task files for ``brickwork compose`` (small: they solve in about a minute).

Example:
    >>> import tempfile, json
    >>> folder = write_example_tasks(tempfile.mkdtemp(), n_lists=40)
    >>> json.loads((folder / "count3.json").read_text())["output"]
    'Count[b 1]'
"""

from __future__ import annotations

import os
from pathlib import Path

from brickwork.modules import atomic_write_json
from brickwork.studies.compose.data import count_samples, digit_pools, recognise_samples


def write_example_tasks(
    folder: str | os.PathLike[str], *, digit: int = 3, n_lists: int = 300, seed: int = 0
) -> Path:
    """Write ``recognise3.json``, ``count3.json`` and ``sequence.json`` (recognise, then
    count) with their data files into ``folder``; returns the folder."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    pools = digit_pools(seed)
    recognise_samples(pools["train"], digit, seed=seed).save(root / "recognise-train.safetensors")
    recognise_samples(pools["val"], digit, seed=seed + 1).save(root / "recognise-val.safetensors")
    count_samples(pools["train"], digit, n=n_lists, lengths=(2, 5), seed=seed).save(
        root / "count-train.safetensors"
    )
    count_samples(pools["val"], digit, n=max(20, n_lists // 3), lengths=(2, 5), seed=seed + 1).save(
        root / "count-val.safetensors"
    )
    count_samples(
        pools["test"], digit, n=max(20, n_lists // 3), lengths=(20, 20), seed=seed + 2
    ).save(root / "count-test20.safetensors")
    search = {
        "rank_limit": 8,
        "top_k": 2,
        "fit": {"epochs": 5, "batch_size": 32, "lr": 3e-3, "keep_best": "val_loss"},
    }
    atomic_write_json(
        root / f"recognise{digit}.json",
        {
            "name": f"recognise_{digit}",
            "input": "Features[b 1 8 8]",
            "output": "Bool[b 1]",
            "data": {"train": "recognise-train.safetensors", "val": "recognise-val.safetensors"},
            "search": search,
            "seed": seed,
        },
    )
    atomic_write_json(
        root / f"count{digit}.json",
        {
            "name": f"count_{digit}",
            "input": "List[Features[b 1 8 8]]",
            "output": "Count[b 1]",
            "data": {
                "train": "count-train.safetensors",
                "val": "count-val.safetensors",
                "tests": {"len20": "count-test20.safetensors"},
            },
            "search": search,
            "seed": seed,
        },
    )
    atomic_write_json(
        root / "sequence.json",
        {"name": "recognise-then-count", "tasks": [f"recognise{digit}.json", f"count{digit}.json"]},
    )
    return root
