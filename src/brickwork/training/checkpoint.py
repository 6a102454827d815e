"""Checkpoints without pickle: weights, optimizer state and RNG state in safetensors,
everything else in JSON.

A checkpoint folder holds ``checkpoint.json`` (epoch, step, history, callback states,
optimizer hyperparameters, and the digest of the tensors file it points to) and
``ckpt-<step>.safetensors``. The tensors file is written first, the JSON last (both
atomically), so a crash at any moment leaves the previous checkpoint intact.

Example:
    >>> import tempfile, torch
    >>> model = torch.nn.Linear(2, 1)
    >>> opt = torch.optim.Adam(model.parameters(), lr=0.1)
    >>> model(torch.ones(3, 2)).sum().backward(); opt.step()
    >>> folder = tempfile.mkdtemp()
    >>> _ = save_checkpoint(folder, model, opt, {"epoch": 1, "step": 1})
    >>> model2 = torch.nn.Linear(2, 1); opt2 = torch.optim.Adam(model2.parameters(), lr=0.1)
    >>> load_checkpoint(folder, model2, opt2)["epoch"]
    1
    >>> torch.equal(model.weight, model2.weight)
    True
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from brickwork.errors import TrainingError
from brickwork.modules import atomic_write_bytes, atomic_write_json

META = "checkpoint.json"


def optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Flatten an optimizer's state dict into tensors + JSON (works for Adam, SGD, ...)."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim.{idx}.{k}"] = v.detach().cpu().contiguous().clone()
            else:
                scalars.setdefault(str(idx), {})[k] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_flat(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                        meta: dict[str, Any]) -> None:
    """Inverse of :func:`optimizer_to_flat`."""
    state: dict[int, dict[str, Any]] = {}
    for name, t in tensors.items():
        if name.startswith("optim."):
            _, idx, k = name.split(".", 2)
            state.setdefault(int(idx), {})[k] = t
    for idx, kv in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(kv)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(folder: str | os.PathLike[str], model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None, meta: dict[str, Any]) -> Path:
    """Write a checkpoint (model, optimizer, torch RNG state, ``meta``) atomically."""
    folder = Path(folder)
    tensors = {f"model.{k}": v.detach().cpu().contiguous().clone()
               for k, v in model.state_dict().items()}
    opt_meta = None
    if optimizer is not None:
        opt_tensors, opt_meta = optimizer_to_flat(optimizer)
        tensors.update(opt_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    data = st_save(tensors)
    step = int(meta.get("step", 0))
    name = f"ckpt-{step:09d}.safetensors"
    atomic_write_bytes(folder / name, data)
    previous = read_meta(folder)
    atomic_write_json(folder / META, {**meta, "tensors": name,
                                      "tensors_sha256": hashlib.sha256(data).hexdigest(),
                                      "optimizer": opt_meta})
    if previous and previous.get("tensors") != name:
        (folder / str(previous["tensors"])).unlink(missing_ok=True)
    return folder / META


def read_meta(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The checkpoint's JSON, or None when there is no checkpoint."""
    path = Path(folder) / META
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TrainingError(f"{path}: damaged checkpoint metadata ({exc}); delete the folder "
                            "to restart this job from scratch") from None


def load_checkpoint(folder: str | os.PathLike[str], model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None = None, *,
                    restore_rng: bool = True) -> dict[str, Any]:
    """Restore a checkpoint into ``model`` (and ``optimizer``); returns its metadata."""
    folder = Path(folder)
    meta = read_meta(folder)
    if meta is None:
        raise TrainingError(f"{folder}: no checkpoint to resume from")
    path = folder / str(meta["tensors"])
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TrainingError(f"{path}: checkpoint tensors missing") from None
    if hashlib.sha256(data).hexdigest() != meta["tensors_sha256"]:
        raise TrainingError(f"{path}: checkpoint digest mismatch (damaged file); delete "
                            f"{folder} to restart the job")
    tensors = st_load(data)
    model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(model_state, strict=True)
    if optimizer is not None and meta.get("optimizer") is not None:
        optimizer_from_flat(optimizer, tensors, meta["optimizer"])
    if restore_rng and "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
    return meta
