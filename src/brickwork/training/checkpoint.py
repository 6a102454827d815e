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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from brickwork.errors import TrainingError
from brickwork.modules import atomic_write_bytes, atomic_write_json, module_device

META = "checkpoint.json"


def optimizer_to_flat(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
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


def optimizer_from_flat(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    """Inverse of :func:`optimizer_to_flat`."""
    state: dict[int, dict[str, Any]] = {}
    for name, t in tensors.items():
        if name.startswith("optim."):
            _, idx, k = name.split(".", 2)
            state.setdefault(int(idx), {})[k] = t
    for idx, kv in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(kv)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(
    folder: str | os.PathLike[str],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    meta: dict[str, Any],
    *,
    extra: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Write a checkpoint (model, optimizer, torch RNG state, ``meta``) atomically.

    Tensors are copied to the CPU first, so a model on any device can be saved. The
    CUDA RNG state of the model's device is saved too when the model is on a GPU.

    Args:
        folder: the checkpoint folder (created when missing).
        model: its ``state_dict`` is saved.
        optimizer: its state is saved (tensors in safetensors, the rest in JSON).
        meta: JSON metadata (``step`` names the tensors file).
        extra: more named tensors to keep (e.g. the best weights so far); read back
            with ``load_checkpoint(..., extra=dict)``.
    """
    folder = Path(folder)
    tensors = {
        f"model.{k}": v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()
    }
    opt_meta = None
    if optimizer is not None:
        opt_tensors, opt_meta = optimizer_to_flat(optimizer)
        tensors.update(opt_tensors)
    for k, v in (extra or {}).items():
        tensors[f"extra.{k}"] = v.detach().cpu().contiguous().clone()
    tensors["rng.torch"] = torch.get_rng_state()
    device = module_device(model)
    if device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
    data = st_save(tensors)
    step = int(meta.get("step", 0))
    name = f"ckpt-{step:09d}.safetensors"
    atomic_write_bytes(folder / name, data)
    previous = read_meta(folder)
    atomic_write_json(
        folder / META,
        {
            **meta,
            "tensors": name,
            "tensors_sha256": hashlib.sha256(data).hexdigest(),
            "optimizer": opt_meta,
        },
    )
    if previous and previous.get("tensors") != name:
        (folder / str(previous["tensors"])).unlink(missing_ok=True)
    return folder / META


def read_meta(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The checkpoint's JSON, or None when there is no checkpoint."""
    path = Path(folder) / META
    try:
        meta: dict[str, Any] = json.loads(path.read_text())
        return meta
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TrainingError(
            f"{path}: damaged checkpoint metadata ({exc}); delete the folder "
            "to restart this job from scratch"
        ) from None


def load_checkpoint(
    folder: str | os.PathLike[str],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    restore_rng: bool = True,
    map_location: str | torch.device | None = None,
    extra: dict[str, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Restore a checkpoint into ``model`` (and ``optimizer``); returns its metadata.

    Args:
        folder: a folder written by :func:`save_checkpoint`.
        model: receives the weights (strict: every tensor must match).
        optimizer: receives the optimizer state (moved to its parameters' devices).
        restore_rng: also restore the torch (and, on a GPU, CUDA) RNG state.
        map_location: where to put the loaded tensors (default: the model's device).
        extra: when given, filled with the tensors saved as ``extra`` (on ``map_location``).
    """
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
        raise TrainingError(
            f"{path}: checkpoint digest mismatch (damaged file); delete {folder} to restart the job"
        )
    tensors = st_load(data)
    device = torch.device(map_location) if map_location is not None else module_device(model)
    model_state = {
        k[len("model.") :]: v.to(device) for k, v in tensors.items() if k.startswith("model.")
    }
    try:
        model.load_state_dict(model_state, strict=True)
    except RuntimeError as exc:
        raise TrainingError(
            f"{path}: the checkpoint does not fit this model ({exc}); resume "
            "with the model it was written for or delete the checkpoint"
        ) from None
    if optimizer is not None and meta.get("optimizer") is not None:
        optimizer_from_flat(optimizer, tensors, meta["optimizer"])
    if extra is not None:
        extra.update(
            {k[len("extra.") :]: v.to(device) for k, v in tensors.items() if k.startswith("extra.")}
        )
    if restore_rng and "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
    if restore_rng and "rng.cuda" in tensors and device.type == "cuda":
        torch.cuda.set_rng_state(tensors["rng.cuda"], device)
    return meta
