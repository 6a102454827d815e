"""Seeds: one base seed per run, derived seeds per module, trial and epoch.

Example:
    >>> derive_seed(0, "find[red]") == derive_seed(0, "find[red]")
    True
    >>> derive_seed(0, "find[red]") != derive_seed(1, "find[red]")
    True
"""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch


def derive_seed(base: int, *parts: object) -> int:
    """A 31-bit seed derived from ``base`` and any labels (stable across processes)."""
    text = "/".join([str(int(base))] + [str(p) for p in parts])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
