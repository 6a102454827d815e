"""``Samples``: named tensors that share their first axis, with stable sample ids.

The unit of data the training engine passes around: a dataset file, a cached
intermediate dataset and a batch are all ``Samples``. Saved as one safetensors file.

Example:
    >>> import torch
    >>> s = Samples({"x": torch.arange(6.).reshape(3, 2), "y": torch.tensor([0, 1, 0])})
    >>> len(s), s.ids.tolist()
    (3, [0, 1, 2])
    >>> s.select(torch.tensor([2, 0]))["x"].tolist()
    [[4.0, 5.0], [0.0, 1.0]]
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import final

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from brickwork.errors import DataError
from brickwork.modules import atomic_write_bytes

IDS = "ids"


def tensors_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of the tensors (order-independent)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        if t.numel():
            h.update(t.view(torch.uint8).numpy().tobytes() if t.dtype != torch.bool
                     else t.to(torch.uint8).numpy().tobytes())
    return h.hexdigest()


@final
class Samples(Mapping[str, torch.Tensor]):
    """Named tensors with a common first axis plus an ``ids`` column (int64).

    Args:
        tensors: name -> tensor, every first dimension equal.
        ids: one id per sample (defaults to ``0..n-1``; also taken from ``tensors["ids"]``).
    """

    def __init__(self, tensors: Mapping[str, torch.Tensor], ids: torch.Tensor | None = None):
        data = dict(tensors)
        if ids is None:
            ids = data.pop(IDS, None)
        else:
            data.pop(IDS, None)
        if not data:
            raise DataError("Samples: no tensors given; pass at least one named tensor")
        sizes = {k: int(v.shape[0]) if v.dim() else -1 for k, v in data.items()}
        n = next(iter(sizes.values()))
        bad = {k: s for k, s in sizes.items() if s != n}
        if bad or n < 0:
            raise DataError(f"Samples: every tensor needs the same first dimension; got {sizes}")
        if ids is None:
            ids = torch.arange(n, dtype=torch.int64)
        ids = torch.as_tensor(ids, dtype=torch.int64)
        if ids.shape != (n,):
            raise DataError(f"Samples: ids must have shape ({n},), got {tuple(ids.shape)}")
        self._data = data
        self.ids = ids

    def __getitem__(self, key: str) -> torch.Tensor:
        if key == IDS:
            return self.ids
        try:
            return self._data[key]
        except KeyError:
            raise DataError(f"Samples: no column {key!r}; columns are {sorted(self._data)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def __repr__(self) -> str:
        cols = ", ".join(f"{k}{list(v.shape)}" for k, v in self._data.items())
        return f"Samples(n={len(self)}, {cols})"

    def select(self, index: torch.Tensor) -> Samples:
        """The samples at ``index`` (a LongTensor of positions)."""
        return Samples({k: v[index] for k, v in self._data.items()}, self.ids[index])

    def columns(self, names: Mapping[str, str]) -> dict[str, torch.Tensor]:
        """``{new_name: self[old_name]}`` for a renaming map."""
        return {new: self[old] for new, old in names.items()}

    def batches(self, batch_size: int, *, shuffle: bool = True,
                generator: torch.Generator | None = None) -> Iterator[Samples]:
        """Mini-batches (a permutation drawn from ``generator`` when shuffling)."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for start in range(0, n, batch_size):
            yield self.select(order[start:start + batch_size])

    def split(self, fraction: float, seed: int = 0) -> tuple[Samples, Samples]:
        """A seeded random split into ``(first, rest)`` with ``fraction`` in the first."""
        g = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(self), generator=g)
        k = int(round(len(self) * fraction))
        return self.select(order[:k]), self.select(order[k:])

    def digest(self) -> str:
        """Content digest of every column and the ids."""
        return tensors_digest({**self._data, IDS: self.ids})

    def to_bytes(self) -> bytes:
        return st_save({k: v.detach().cpu().contiguous() for k, v in {**self._data, IDS: self.ids}.items()})

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write to one safetensors file (atomically)."""
        atomic_write_bytes(path, self.to_bytes())
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Samples:
        """Read a file written by :meth:`save` (safetensors; nothing is unpickled)."""
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            raise DataError(f"{path}: dataset file not found") from None
        try:
            tensors = st_load(data)
        except Exception as exc:
            raise DataError(f"{path}: not a safetensors file ({exc})") from None
        return cls(tensors)

    @classmethod
    def concat(cls, parts: list[Samples]) -> Samples:
        """Concatenate along the sample axis."""
        if not parts:
            raise DataError("Samples.concat: nothing to concatenate")
        keys = list(parts[0])
        return cls({k: torch.cat([p[k] for p in parts]) for k in keys},
                   torch.cat([p.ids for p in parts]))
