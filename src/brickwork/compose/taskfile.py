"""Task and sequence files for ``brickwork compose``.

A task file (JSON)::

    {"name": "count_3",
     "input": "List[Features[b 1 8 8]]",
     "output": "Count[b 1]",
     "data": {"train": "train.safetensors", "val": "val.safetensors",
              "tests": {"len20": "test20.safetensors"}},
     "search": {"size_bound": 10, "max_holes": 2, "top_k": 6},
     "seed": 0}

``data`` may also be one file, split 80/20 (seeded) into train and validation. Data
files are ``Samples`` safetensors with ``x`` (``x_mask`` for lists) and ``y``; paths are
relative to the task file. Loss and metric follow the output type (Bool: BCE and
accuracy; Probs: NLL and accuracy; anything else: MSE and RMSE). A sequence file lists
tasks (file paths or inline task objects): ``{"name": "cs1", "tasks": ["r3.json", ...]}``.

Example:
    >>> import json, tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "t.json").write_text(json.dumps({"name": "t", "input": "Unknown[b 1]",
    ...                                                 "output": "Count[b 1]", "data": "d.st"}))
    >>> load_task_file(folder / "t.json")
    Traceback (most recent call last):
    ...
    brickwork.errors.DataError: ...t.json: input: unknown type kind 'Unknown'; known: ...
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from brickwork.compose.jobs import ensemble_options
from brickwork.compose.solve import SolveConfig, Task
from brickwork.compose.types import ListOf, parse_ctype
from brickwork.errors import BrickworkError, DataError

_SEARCH_KEYS = {
    "size_bound",
    "max_holes",
    "rank_limit",
    "rank_steps",
    "rank_val",
    "top_k",
    "reuse_k",
    "fit",
    "tolerance",
    "relative_tolerance",
}


def _type(where: str, text: Any) -> Any:
    if not isinstance(text, str):
        raise DataError(
            f"{where}: expected a type such as 'Count[b 1]' or "
            f"'List[Features[b 1 8 8]]', got {text!r}"
        )
    try:
        return parse_ctype(text)
    except BrickworkError as exc:
        raise DataError(f"{where}: {exc}") from None


def _file(base: Path, where: str, name: Any) -> str:
    if not isinstance(name, str):
        raise DataError(f"{where}: expected a file name, got {name!r}")
    path = (base / name) if not os.path.isabs(name) else Path(name)
    if not path.is_file():
        raise DataError(
            f"{where}: data file {path} not found; write it with Samples.save "
            "(columns x, x_mask for lists, y)"
        )
    return str(path)


def task_from_json(
    data: Any, base: Path, where: str, workdir: Path | None = None
) -> tuple[Task, SolveConfig]:
    """Build a task and its search configuration from a task object."""
    if not isinstance(data, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(data).__name__}")
    unknown = set(data) - {"name", "input", "output", "data", "search", "seed", "description"}
    if unknown:
        raise DataError(
            f"{where}: unknown keys {sorted(unknown)}; expected name, input, output, "
            "data, search, seed"
        )
    for key in ("name", "input", "output", "data"):
        if key not in data:
            raise DataError(f"{where}: missing key {key!r}")
    name = data["name"]
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        raise DataError(f"{where}: name must be letters, digits, '_' or '-', got {name!r}")
    inp = _type(f"{where}: input", data["input"])
    out = _type(f"{where}: output", data["output"])
    if isinstance(out, ListOf) or len(out.axes) != 2:
        raise DataError(
            f"{where}: output {out!r} must be a vector type such as Count[b 1], "
            "Bool[b 1] or Probs[b 10]"
        )
    spec = data["data"]
    tests: dict[str, str] = {}
    if isinstance(spec, str):
        from brickwork.training import Samples

        path = _file(base, f"{where}: data", spec)
        samples = Samples.load(path)
        train, val = samples.split(0.8, seed=int(data.get("seed", 0)))
        folder = workdir or base
        folder.mkdir(parents=True, exist_ok=True)
        tr, va = folder / f"{name}-train.safetensors", folder / f"{name}-val.safetensors"
        train.save(tr)
        val.save(va)
        train_path, val_path = str(tr), str(va)
    elif isinstance(spec, dict):
        train_path = _file(base, f"{where}: data.train", spec.get("train"))
        val_path = _file(base, f"{where}: data.val", spec.get("val"))
        for k, v in (spec.get("tests") or {}).items():
            tests[str(k)] = _file(base, f"{where}: data.tests.{k}", v)
    else:
        raise DataError(f"{where}: data must be a file name or {{train, val, tests}}, got {spec!r}")
    search = data.get("search") or {}
    bad = set(search) - _SEARCH_KEYS
    if bad:
        raise DataError(
            f"{where}: unknown search keys {sorted(bad)}; expected {sorted(_SEARCH_KEYS)}"
        )
    config = SolveConfig(**{**search, "seed": int(data.get("seed", 0))})
    if config.top_k > 10 or config.max_holes > 2:
        raise DataError(f"{where}: search.top_k must be <= 10 and max_holes <= 2")
    if not isinstance(config.fit, dict):
        raise DataError(
            f"{where}: search.fit got {config.fit!r}, expected an object of fit options "
            'such as {"epochs": 15, "ensemble": 3}'
        )
    try:  # checked on reading: a sequence's last task must not fail after the others ran
        ensemble_options(config.fit)
    except DataError as exc:
        raise DataError(f"{where}: search.fit: {str(exc).removeprefix('compose fit: ')}") from None
    return Task(name, inp, out, train_path, val_path, tests), config


def _read(path: str | os.PathLike[str]) -> Any:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: task file not found")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{p}: not JSON ({exc.msg} at line {exc.lineno})") from None


def load_task_file(
    path: str | os.PathLike[str], workdir: Path | None = None
) -> tuple[Task, SolveConfig]:
    """Read a task file (see the module docstring); errors are one line naming the file."""
    p = Path(path)
    return task_from_json(_read(p), p.parent, str(p), workdir)


def load_sequence_file(
    path: str | os.PathLike[str], workdir: Path | None = None
) -> list[tuple[Task, SolveConfig]]:
    """Read a sequence file: ``{"name": ..., "tasks": [file or task object, ...]}``."""
    p = Path(path)
    data = _read(p)
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), list) or not data["tasks"]:
        raise DataError(f'{p}: expected {{"name": ..., "tasks": [task file or object, ...]}}')
    out = []
    for i, t in enumerate(data["tasks"]):
        if isinstance(t, str):
            out.append(load_task_file(p.parent / t, workdir))
        else:
            out.append(task_from_json(t, p.parent, f"{p}: tasks[{i}]", workdir))
    return out
