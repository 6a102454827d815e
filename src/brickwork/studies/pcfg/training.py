"""Independent training of the ten function modules on single-function examples only.

Each module trains alone with brickwork's ``fit`` on examples ``f(x)`` / ``f(x, y)``
over random strings of length 1–10 (distinct symbols inside an example, so the symbol
read at each output position names one input position); the modules run in parallel
on a :class:`~brickwork.training.LocalExecutor` and are registered as ``pcfg.<function>``.

Example:
    >>> from brickwork.studies.pcfg.training import single_function_samples
    >>> s = single_function_samples("reverse", 8, seed=0)
    >>> sorted(s), tuple(s["x"].shape)
    (['target', 'target_length', 'x'], (8, 21, 46))
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from brickwork._version import __version__
from brickwork.errors import TrainingError
from brickwork.modules import atomic_write_json, load_module, save_module
from brickwork.registry import Registry
from brickwork.studies.pcfg.data import ARITY, FUNCTIONS, REFERENCE, SYMBOL_ID, SYMBOLS
from brickwork.studies.pcfg.modules import _PointerFunction, make_function_module
from brickwork.studies.pcfg.types import N_LETTERS, NUMBERS, decode_ids, encode_ids, lengths
from brickwork.training import (
    Callback,
    FitConfig,
    FitState,
    LocalExecutor,
    Samples,
    derive_seed,
    fit,
    tensors_digest,
)

logger = logging.getLogger(__name__)

#: longest training string; every module's training width is 2·MAX_TRAIN_LENGTH + 1
MAX_TRAIN_LENGTH = 10
TRAIN_WIDTH = 2 * MAX_TRAIN_LENGTH + 1
#: registry name of a function's module
REGISTRY_KIND = "pcfg"


def registry_name(function: str) -> str:
    """``pcfg.<function>`` (a registry ``kind.tag``)."""
    return f"{REGISTRY_KIND}.{function}"


def single_function_samples(
    function: str, n: int, *, seed: int, max_length: int = MAX_TRAIN_LENGTH
) -> Samples:
    """``n`` examples of ``function`` alone over strings of 1–``max_length`` symbols.

    Columns: ``x`` (and ``y`` for binary functions) as ``SymbolSeq`` tensors of width
    ``2·max_length + 1``, ``target`` symbol ids (``-1`` = pad), ``target_length``.
    """
    rng = random.Random(seed)
    width = 2 * max_length + 1
    arity = ARITY[function]
    ids = torch.full((arity + 1, n, width), -1, dtype=torch.long)
    tlen = torch.zeros(n, dtype=torch.long)
    for i in range(n):
        sizes = [rng.randint(1, max_length) for _ in range(arity)]
        pool = rng.sample(SYMBOLS, sum(sizes))
        args = [pool[: sizes[0]], pool[sizes[0] :]][:arity]
        out = REFERENCE[function](*args)
        for a, s in enumerate(args):
            ids[a, i, : len(s)] = torch.tensor([SYMBOL_ID[t] for t in s])
        ids[arity, i, : len(out)] = torch.tensor([SYMBOL_ID[t] for t in out])
        tlen[i] = len(out)
    cols = {"x": encode_ids(ids[0]), "target": ids[arity], "target_length": tlen}
    if arity == 2:
        cols["y"] = encode_ids(ids[1])
    return Samples(cols)


def _args(batch: Mapping[str, torch.Tensor], arity: int) -> list[torch.Tensor]:
    return [batch["x"]] if arity == 1 else [batch["x"], batch["y"]]


def function_loss(model: _PointerFunction, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Symbol NLL of the soft pointer read (letter + number) + squared length error."""
    out, raw = model.core(_args(batch, model.arity), hard=False, lout=batch["target_length"])
    target = batch["target"]
    valid = target >= 0
    safe = target.clamp(min=0)
    letter = out[..., :N_LETTERS].gather(-1, (safe // NUMBERS).unsqueeze(-1)).squeeze(-1)
    number = out[..., N_LETTERS:].gather(-1, (safe % NUMBERS).unsqueeze(-1)).squeeze(-1)
    nll = -(torch.log(letter.clamp(min=1e-9)) + torch.log(number.clamp(min=1e-9)))
    sym = (nll * valid).sum() / valid.sum().clamp(min=1)
    length = ((raw - batch["target_length"].to(raw.dtype)) ** 2).mean()
    return sym + length


def function_metrics(model: _PointerFunction, samples: Samples) -> dict[str, float]:
    """Exact match with the module's own length and hard pointer, and the length head's
    worst absolute error."""
    with torch.no_grad():
        out, _ = model.core(_args(samples, model.arity), hard=True, integer_length=True)
        pred = decode_ids(out)
        exact = (pred == samples["target"]).all(-1).float().mean()
        raw = model.length_float(
            torch.stack([lengths(x) for x in _args(samples, model.arity)], -1), integer=False
        )
        err = (raw - samples["target_length"].to(raw.dtype)).abs().max()
    return {"exact": float(exact), "length_error": float(err)}


class StopWhenExact(Callback):
    """Stop once validation exact match is 1 and the length head's real-valued error is
    below ``tolerance`` (so its integer projection is unambiguous) for ``patience``
    consecutive epochs."""

    def __init__(self, tolerance: float = 0.05, patience: int = 2):
        self.tolerance, self.patience, self.good = tolerance, patience, 0

    def on_epoch_end(self, state: FitState) -> None:
        rec = state.history[-1]
        ok = rec.get("exact", 0.0) >= 1.0 and rec.get("length_error", 1.0) < self.tolerance
        self.good = self.good + 1 if ok else 0
        if self.good >= self.patience:
            state.stop = True


def _constant(step: int) -> float:
    return 1.0


def _settle(step: int) -> float:
    return 0.995**step


def train_function(job: Mapping[str, Any]) -> dict[str, Any]:
    """Executor job: train one function's module and save it under ``job["out"]``.

    Keys: ``function``, ``out`` (folder), ``seed``, ``examples``, ``epochs``,
    ``max_time`` (seconds), optional ``device``, ``config`` (module hyperparameters).
    """
    torch.set_num_threads(1)
    fn = str(job["function"])
    seed = int(job.get("seed", 0))
    start = time.perf_counter()
    n = int(job.get("examples", 2000))
    train = single_function_samples(fn, n, seed=derive_seed(seed, fn, "train"))
    val = single_function_samples(fn, max(200, n // 5), seed=derive_seed(seed, fn, "val"))
    torch.manual_seed(derive_seed(seed, fn, "init"))
    model = make_function_module(fn, **dict(job.get("config", {})))
    config = FitConfig(
        epochs=int(job.get("epochs", 60)),
        batch_size=64,
        lr=3e-3,
        seed=derive_seed(seed, fn, "fit"),
        max_time=float(job.get("max_time", 120)),
        scheduler=None,
    )
    if job.get("device"):
        model.to(job["device"])
    # the length head is a linear regression onto integer counts: a faster rate, and a
    # slow decay that settles it
    optimizer = torch.optim.Adam(
        [
            {"params": model.score.parameters(), "lr": config.lr},
            {"params": model.length.parameters(), "lr": 0.2},
        ]
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, [_constant, _settle])
    result = fit(
        model,
        function_loss,
        train,
        val=val,
        config=config,
        evaluate=lambda m, s: function_metrics(m, s),
        callbacks=[StopWhenExact()],
        device=job.get("device"),
        optimizer=optimizer,
        scheduler=scheduler,
    )
    model.eval()
    metrics = function_metrics(model.cpu(), val)
    folder = save_module(model, Path(job["out"]) / fn)
    return {
        "function": fn,
        "folder": str(folder),
        "seconds": time.perf_counter() - start,
        "epochs": len(result.history),
        "steps": result.steps,
        "stop_reason": result.stop_reason,
        "metrics": metrics,
        "data_digest": tensors_digest({k: train[k] for k in train}),
        "examples": n,
    }


def train_all(
    out: str | Path,
    *,
    seed: int = 0,
    workers: int = 2,
    examples: int = 2000,
    epochs: int = 60,
    max_time: float = 120.0,
    registry: Registry | None = None,
    functions: Sequence[str] = FUNCTIONS,
    device: str | None = None,
    tag: str = "",
) -> dict[str, Any]:
    """Train every function's module in parallel, save them under ``out/modules`` and
    register each as ``pcfg.<function>`` (a new version); writes ``out/train.json``.

    Returns:
        The summary: config, per-function results, wall ``train_seconds``, registry refs.
    """
    out = Path(out)
    jobs = [
        {
            "name": f,
            "function": f,
            "out": str(out / "modules"),
            "seed": seed,
            "examples": examples,
            "epochs": epochs,
            "max_time": max_time,
        }
        for f in functions
    ]
    ex = LocalExecutor(workers, devices=[device] * workers if device else None)
    try:
        ex.warm_up(["brickwork.studies.pcfg"])
        start = time.perf_counter()
        results = ex.map(train_function, jobs, desc="pcfg modules")
        wall = time.perf_counter() - start
    finally:
        ex.close()
    refs = {}
    for r in results:
        if r["metrics"]["exact"] < 1.0:
            logger.warning(
                "pcfg module %s: validation exact match %.3f", r["function"], r["metrics"]["exact"]
            )
        if registry is not None:
            module = load_module(r["folder"])
            card = registry.put(
                registry_name(r["function"]),
                module,
                mode="direct",
                metrics=r["metrics"],
                hyperparameters={
                    "seed": seed,
                    "examples": examples,
                    "epochs": epochs,
                    "max_time": max_time,
                },
                lineage={"study": "pcfg", "run": str(out.resolve())},
            )
            refs[r["function"]] = card.ref
    summary = {
        "config": {
            "seed": seed,
            "workers": workers,
            "examples": examples,
            "epochs": epochs,
            "max_time": max_time,
            "functions": list(functions),
            "max_train_length": MAX_TRAIN_LENGTH,
        },
        "version": __version__,
        "train_seconds": wall,
        "modules": results,
        "registered": refs,
    }
    atomic_write_json(out / "train.json", summary)
    return summary


def load_run(out: str | Path, functions: Sequence[str] = FUNCTIONS) -> dict[str, _PointerFunction]:
    """The modules a :func:`train_all` run saved under ``out/modules``."""
    folder = Path(out) / "modules"
    mods: dict[str, _PointerFunction] = {}
    for f in functions:
        if not (folder / f).is_dir():
            raise TrainingError(
                f"{folder / f}: no trained module for '{f}'; run "
                f"'brickwork pcfg train --out {out}' first"
            )
        mods[f] = load_module(folder / f).eval()  # type: ignore[assignment]
    return mods


def load_registry(
    registry: Registry, functions: Sequence[str] = FUNCTIONS
) -> dict[str, _PointerFunction]:
    """The latest registered module of every function (``pcfg.<function>``)."""
    return {f: registry.load(registry_name(f)).eval() for f in functions}  # type: ignore[misc]
