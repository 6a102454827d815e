"""Save a module to a folder and load it back, safely.

A saved module is a folder with ``model.safetensors`` (the weights; safetensors holds no
code) and ``config.json`` (kind, config, signature, fingerprint, weights digest, package
version). Loading checks the weights digest *before* parsing the weights, rebuilds the
module through the kind registry and verifies signature and fingerprint. Nothing is ever
unpickled.

Example:
    >>> import tempfile, torch
    >>> from brickwork.modules import And, save_module, load_module
    >>> folder = tempfile.mkdtemp()
    >>> _ = save_module(And.min("b n"), folder)
    >>> load_module(folder).mode
    'min'
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from brickwork._version import __version__
from brickwork.errors import LoadError
from brickwork.modules.kinds import build
from brickwork.modules.module import Module
from brickwork.modules.signature import Signature

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write JSON atomically (sorted keys, indented)."""
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def atomic_write_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 100) -> Path:
    """Save a matplotlib figure as PNG atomically, then close it; returns the path."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def state_bytes(module: torch.nn.Module) -> bytes:
    """The module's state dict serialised as safetensors bytes (contiguous copies)."""
    state = {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
    return st_save(state, metadata={"format": "pt"})


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def module_card(module: Module, weights_digest: str) -> dict[str, Any]:
    """The ``config.json`` content for a module."""
    return {
        "kind": module.kind,
        "config": module.config,
        "signature": module.signature.to_json(),
        "signature_text": str(module.signature),
        "fingerprint": module.fingerprint(),
        "weights_sha256": weights_digest,
        "brickwork_version": __version__,
    }


def save_module(module: Module, folder: str | os.PathLike[str]) -> Path:
    """Save ``module`` to ``folder`` (created); returns the folder.

    Both files are written atomically, weights first, so a crash leaves either the old
    pair or a folder whose digest check fails on load — never a silent mix.
    """
    if not isinstance(module, Module):
        raise LoadError(f"save_module saves a brickwork Module, got {type(module).__name__}; "
                        "wrap it with brickwork.typed(...)")
    folder = Path(folder)
    data = state_bytes(module)
    atomic_write_bytes(folder / WEIGHTS, data)
    atomic_write_json(folder / CONFIG, module_card(module, sha256_bytes(data)))
    return folder


def read_card(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a saved module's ``config.json``."""
    path = Path(folder) / CONFIG
    try:
        card = json.loads(path.read_text())
    except FileNotFoundError:
        raise LoadError(f"{path}: missing; a saved module folder holds {CONFIG} and {WEIGHTS}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LoadError(f"{path}: not valid JSON ({exc}); the file is damaged, save the module again") from None
    if not isinstance(card, dict):
        raise LoadError(f"{path}: expected a JSON object, found {type(card).__name__}")
    for key in ("kind", "config", "signature", "fingerprint", "weights_sha256"):
        if key not in card:
            raise LoadError(f"{path}: field {key!r} is missing")
    return card


def load_weights_checked(path: Path, expected_sha256: str) -> dict[str, torch.Tensor]:
    """Read a safetensors file after checking its digest; never unpickles anything."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise LoadError(f"{path}: missing weights file") from None
    digest = sha256_bytes(data)
    if digest != expected_sha256:
        raise LoadError(f"{path}: weights digest {digest[:12]}… does not match the recorded "
                        f"{expected_sha256[:12]}…; the file is truncated or altered")
    try:
        return st_load(data)
    except Exception as exc:  # safetensors raises its own error types
        raise LoadError(f"{path}: not a valid safetensors file ({exc})") from None


def load_module(folder: str | os.PathLike[str], *, expect_signature: Signature | None = None) -> Module:
    """Load a module saved by :func:`save_module`.

    Raises:
        LoadError: a missing, truncated or altered file; an unknown kind; a signature or
            fingerprint that does not match.
    """
    folder = Path(folder)
    card = read_card(folder)
    state = load_weights_checked(folder / WEIGHTS, str(card["weights_sha256"]))
    module = build(str(card["kind"]), dict(card["config"]))
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise LoadError(f"{folder}: weights do not fit kind {card['kind']!r}: {exc}") from None
    saved_sig = Signature.from_json(card["signature"])
    if module.signature != saved_sig:
        raise LoadError(f"{folder}: signature mismatch: saved {saved_sig}, rebuilt {module.signature}")
    if expect_signature is not None and module.signature != expect_signature:
        raise LoadError(f"{folder}: signature {module.signature} is not the expected {expect_signature}")
    if module.fingerprint() != card["fingerprint"]:
        raise LoadError(f"{folder}: fingerprint mismatch after loading; the card was edited "
                        "or the kind's code changed")
    return module
