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


def _same_device(a: torch.device, b: torch.device) -> bool:
    """``cuda`` and ``cuda:0`` name the same device when 0 is the current one."""
    if a.type != b.type:
        return False
    if a.index is None or b.index is None:
        if a.type != "cuda":
            return True
        current = torch.cuda.current_device() if torch.cuda.is_available() else 0
        return (a.index if a.index is not None else current) == (
            b.index if b.index is not None else current
        )
    return a.index == b.index


def tensors_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of the tensors (order-independent)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        if t.numel():
            h.update(
                t.view(torch.uint8).numpy().tobytes()
                if t.dtype != torch.bool
                else t.to(torch.uint8).numpy().tobytes()
            )
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
            ids = torch.arange(n, dtype=torch.int64, device=next(iter(data.values())).device)
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
            raise DataError(
                f"Samples: no column {key!r}; columns are {sorted(self._data)}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` names a column (``ids`` included); never raises."""
        return key == IDS or key in self._data

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def __repr__(self) -> str:
        cols = ", ".join(f"{k}{list(v.shape)}" for k, v in self._data.items())
        return f"Samples(n={len(self)}, {cols})"

    def select(self, index: torch.Tensor) -> Samples:
        """The samples at ``index`` (a LongTensor of positions)."""
        return Samples(
            {k: v[index.to(v.device)] for k, v in self._data.items()},
            self.ids[index.to(self.ids.device)],
        )

    def columns(self, names: Mapping[str, str]) -> dict[str, torch.Tensor]:
        """``{new_name: self[old_name]}`` for a renaming map."""
        return {new: self[old] for new, old in names.items()}

    def batches(
        self, batch_size: int, *, shuffle: bool = True, generator: torch.Generator | None = None
    ) -> Iterator[Samples]:
        """Mini-batches (a permutation drawn from ``generator`` when shuffling)."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        if len(self._data) and self.device.type != "cpu":
            order = order.to(self.device)
        for start in range(0, n, batch_size):
            yield self.select(order[start : start + batch_size])

    def to(self, device: str | torch.device, *, non_blocking: bool = False) -> Samples:
        """The same samples with every column (and the ids) on ``device``.

        Returns ``self`` when everything is already there.

        Example:
            >>> s = Samples({"x": torch.zeros(2, 3)})
            >>> s.to("cpu") is s, s.to("meta")["x"].device.type
            (True, 'meta')
        """
        dev = torch.device(device)
        if all(_same_device(v.device, dev) for v in self._data.values()) and _same_device(
            self.ids.device, dev
        ):
            return self
        return Samples(
            {k: v.to(dev, non_blocking=non_blocking) for k, v in self._data.items()},
            self.ids.to(dev, non_blocking=non_blocking),
        )

    @property
    def device(self) -> torch.device:
        """The device of the first column."""
        return next(iter(self._data.values())).device

    def split(
        self, fraction: float, seed: int = 0, *, groups: str | None = None
    ) -> tuple[Samples, Samples]:
        """A seeded random split into ``(first, rest)`` with ``fraction`` in the first.

        Args:
            fraction: share of the rows (or of the groups) that go to the first part,
                in ``[0, 1]``.
            seed: seeds the permutation; the same seed gives the same split.
            groups: a column naming each row's group (a question, a program, a scene).
                Whole groups go to one side: every row with the same value of that
                column lands in the same part, and ``fraction`` counts groups, not rows.
                With ``0 < fraction < 1`` each side gets at least one group.

        Raises:
            DataError: ``fraction`` out of range, an unknown ``groups`` column, or fewer
                than two groups.

        Example:
            >>> s = Samples({"q": torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]), "x": torch.arange(8.)})
            >>> a, b = s.split(0.5, seed=1, groups="q")
            >>> sorted(set(a["q"].tolist()) & set(b["q"].tolist())), len(a), len(b)
            ([], 4, 4)
        """
        if (
            isinstance(fraction, bool)
            or not isinstance(fraction, (int, float))
            or not 0.0 <= float(fraction) <= 1.0
        ):
            raise DataError(f"Samples.split: fraction must be a number in [0, 1], got {fraction!r}")
        g = torch.Generator().manual_seed(int(seed))
        if groups is None:
            order = torch.randperm(len(self), generator=g)
            k = int(round(len(self) * fraction))
            return self.select(order[:k]), self.select(order[k:])
        if groups != IDS and groups not in self._data:
            raise DataError(
                f"Samples.split: no column {groups!r} to group by; columns are {sorted(self._data)}"
            )
        column = self[groups].detach()
        if column.dim() == 0:
            raise DataError(f"Samples.split: group column {groups!r} is a scalar")
        flat = column.reshape(column.shape[0], -1).cpu()
        _, inverse = torch.unique(flat, dim=0, return_inverse=True)
        n_groups = int(inverse.max()) + 1 if len(self) else 0
        if n_groups < 2:
            raise DataError(
                f"Samples.split: column {groups!r} holds {n_groups} group(s); a split "
                "by group needs at least 2 (group by a column with more distinct "
                "values, or split rows with groups=None)"
            )
        k = int(round(n_groups * float(fraction)))
        if 0.0 < fraction < 1.0:
            k = min(max(k, 1), n_groups - 1)
        chosen = torch.zeros(n_groups, dtype=torch.bool)
        chosen[torch.randperm(n_groups, generator=g)[:k]] = True
        first = chosen[inverse]
        rows = torch.arange(len(self))
        return self.select(rows[first]), self.select(rows[~first])

    def digest(self) -> str:
        """Content digest of every column and the ids."""
        return tensors_digest({**self._data, IDS: self.ids})

    def to_bytes(self) -> bytes:
        return st_save(
            {k: v.detach().cpu().contiguous() for k, v in {**self._data, IDS: self.ids}.items()}
        )

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
        return cls(
            {k: torch.cat([p[k] for p in parts]) for k in keys}, torch.cat([p.ids for p in parts])
        )
