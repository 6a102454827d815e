"""Intermediate datasets (thesis §4.1, §4.3.2): a trained module's outputs, recorded once.

Downstream modules then train from the recording without running the upstream module.
An :class:`IntermediateDataset` is a folder of safetensors shards plus ``manifest.json``,
named by the digest of its :class:`CacheKey` — the declared inputs only (upstream module
fingerprints, producing kinds + configs, input-data digest, dtype, what is recorded).
Change an upstream weight and the key changes: a miss, never a stale hit.

Writers build the folder under a temporary name and rename it into place after the
manifest is written, so an interrupted write leaves nothing readable. Readers (e.g.
DataLoader workers) open the files themselves; nothing is shared between processes.

Example:
    >>> import tempfile, torch
    >>> from brickwork.training import Samples
    >>> root = tempfile.mkdtemp()
    >>> key = CacheKey(upstream={"find[red]": "ab" * 32}, data_digest="cd" * 32)
    >>> chunk = Samples({"mask": torch.rand(4, 1, 2, 2)}, ids=torch.arange(4))
    >>> ds, hit = IntermediateDataset.get_or_build(root, key, lambda: [chunk])
    >>> hit, len(ds)
    (False, 4)
    >>> IntermediateDataset.get_or_build(root, key, lambda: [chunk])[1]
    True
    >>> IntermediateDataset.lookup(root, CacheKey(upstream={"find[red]": "ef" * 32},
    ...                                            data_digest="cd" * 32)) is None
    True
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, final

import torch
from safetensors import safe_open
from safetensors.torch import save as st_save

from brickwork.errors import DataError
from brickwork.modules import atomic_write_json, read_json_object
from brickwork.training.samples import IDS, Samples

MANIFEST = "manifest.json"
FORMAT = "brickwork-intermediate-dataset/1"


@final
@dataclass(frozen=True)
class CacheKey:
    """The declared inputs of an intermediate dataset; its digest names the folder.

    Attributes:
        upstream: module name -> fingerprint of every module that produced the values.
        producers: module name -> ``{"kind": ..., "config": ...}`` of those modules.
        data_digest: digest of the input data the modules ran over.
        dtype: dtype of the recorded values.
        content: what is recorded (e.g. node/port selection), any JSON.
    """

    upstream: Mapping[str, str] = field(default_factory=dict)
    producers: Mapping[str, Any] = field(default_factory=dict)
    data_digest: str = ""
    dtype: str = "float32"
    content: Any = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(json.dumps(asdict(self), sort_keys=True))
        return data

    def digest(self) -> str:
        """sha256 of the canonical JSON of the key."""
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@final
class IntermediateDataset:
    """A finished, readable intermediate dataset (use :meth:`build`, :meth:`lookup`).

    Attributes:
        folder: the dataset folder (``root/<key digest>``).
        manifest: the parsed manifest.
    """

    def __init__(self, folder: str | os.PathLike[str]):
        self.folder = Path(folder)
        path = self.folder / MANIFEST
        manifest = read_json_object(
            path,
            missing=f"missing; {self.folder} is not a finished intermediate dataset (an "
            "interrupted write?). Rebuild it",
            fix="the manifest is damaged; delete the folder and rebuild",
            error=DataError,
        )
        if manifest.get("format") != FORMAT:
            raise DataError(f"{path}: not a {FORMAT} manifest")
        if manifest.get("key_digest") != self.folder.name:
            raise DataError(
                f"{path}: manifest key {str(manifest.get('key_digest'))[:12]}… does "
                f"not match the folder name {self.folder.name[:12]}…"
            )
        self.manifest: dict[str, Any] = manifest
        self._offsets = [0]
        for shard in manifest["shards"]:
            self._offsets.append(self._offsets[-1] + int(shard["n"]))

    def __repr__(self) -> str:
        return (
            f"IntermediateDataset({self.folder.name[:12]}…, n={len(self)}, columns={self.columns})"
        )

    def __len__(self) -> int:
        return int(self.manifest["n"])

    @property
    def key_digest(self) -> str:
        return str(self.manifest["key_digest"])

    @property
    def columns(self) -> list[str]:
        return sorted(self.manifest["columns"])

    @property
    def num_shards(self) -> int:
        return len(self.manifest["shards"])

    # ----- building ------------------------------------------------------------------
    @classmethod
    def lookup(cls, root: str | os.PathLike[str], key: CacheKey) -> IntermediateDataset | None:
        """The finished dataset for ``key`` under ``root``, or None (a miss)."""
        folder = Path(root) / key.digest()
        if not (folder / MANIFEST).exists():
            return None
        try:
            ds = cls(folder)
        except DataError:
            return None
        return ds if ds.manifest.get("key") == key.to_json() else None

    @classmethod
    def build(
        cls, root: str | os.PathLike[str], key: CacheKey, chunks: Iterable[Samples]
    ) -> IntermediateDataset:
        """Write ``chunks`` (one shard each) as the dataset of ``key``; atomic as a whole."""
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        digest = key.digest()
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{digest[:16]}-", dir=root))
        try:
            shards, columns, n = [], None, 0
            for i, chunk in enumerate(chunks):
                cols = {
                    k: {"dtype": str(v.dtype).removeprefix("torch."), "shape": list(v.shape[1:])}
                    for k, v in chunk.items()
                }
                if columns is None:
                    columns = cols
                elif cols != columns:
                    raise DataError(
                        f"intermediate dataset {digest[:12]}…: chunk {i} has columns "
                        f"{cols}, the first chunk had {columns}"
                    )
                name = f"shard-{i:05d}.safetensors"
                tensors = {k: v.detach().cpu().contiguous() for k, v in chunk.items()}
                tensors[IDS] = chunk.ids.contiguous()
                data = st_save(tensors)
                with open(tmp / name, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                shards.append(
                    {"file": name, "n": len(chunk), "sha256": hashlib.sha256(data).hexdigest()}
                )
                n += len(chunk)
            if columns is None:
                raise DataError(f"intermediate dataset {digest[:12]}…: the producer gave no data")
            atomic_write_json(
                tmp / MANIFEST,
                {
                    "format": FORMAT,
                    "key": key.to_json(),
                    "key_digest": digest,
                    "n": n,
                    "columns": columns,
                    "shards": shards,
                },
            )
            final_dir = root / digest
            try:
                os.rename(tmp, final_dir)
            except OSError:
                if not (final_dir / MANIFEST).exists():
                    raise
                shutil.rmtree(tmp, ignore_errors=True)  # another writer finished first
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return cls(final_dir)

    @classmethod
    def get_or_build(
        cls, root: str | os.PathLike[str], key: CacheKey, producer: Callable[[], Iterable[Samples]]
    ) -> tuple[IntermediateDataset, bool]:
        """``(dataset, hit)``: the existing dataset for ``key``, or a new one from ``producer``."""
        found = cls.lookup(root, key)
        if found is not None:
            return found, True
        return cls.build(root, key, producer()), False

    @staticmethod
    def remove_stale(root: str | os.PathLike[str]) -> int:
        """Delete leftovers of interrupted writes under ``root``; returns how many."""
        count = 0
        for path in Path(root).glob(".tmp-*"):
            shutil.rmtree(path, ignore_errors=True)
            count += 1
        return count

    # ----- reading -------------------------------------------------------------------
    def shard(self, i: int, *, check: bool = True) -> Samples:
        """Shard ``i`` as :class:`Samples` (its digest checked unless ``check=False``)."""
        info = self.manifest["shards"][i]
        path = self.folder / info["file"]
        if check and _file_sha(path) != info["sha256"]:
            raise DataError(
                f"{path}: shard digest does not match the manifest; the file is "
                "damaged. Delete the folder and rebuild the intermediate dataset"
            )
        tensors = {}
        with safe_open(str(path), framework="pt") as fh:
            for name in fh.keys():
                tensors[name] = fh.get_tensor(name)
        return Samples(tensors)

    def load(self, *, check: bool = True) -> Samples:
        """Every shard, concatenated."""
        return Samples.concat([self.shard(i, check=check) for i in range(self.num_shards)])

    def torch_dataset(self) -> CachedRows:
        """A ``torch.utils.data.Dataset`` of rows that opens the files in each process."""
        return CachedRows(self.folder, self._offsets, [s["file"] for s in self.manifest["shards"]])


class CachedRows(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """Row access to an intermediate dataset; each worker opens the shards itself.

    Only paths travel to DataLoader workers; file handles are opened lazily per process.
    """

    def __init__(self, folder: Path, offsets: list[int], files: list[str]):
        self.folder = Path(folder)
        self.offsets = list(offsets)
        self.files = list(files)
        self._open: dict[int, Any] = {}
        self._pid = -1

    def __len__(self) -> int:
        return self.offsets[-1]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if index < 0 or index >= len(self):
            raise IndexError(index)
        if self._pid != os.getpid():
            self._open, self._pid = {}, os.getpid()
        lo, hi = 0, len(self.files)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.offsets[mid] <= index:
                lo = mid
            else:
                hi = mid
        fh = self._open.get(lo)
        if fh is None:
            fh = safe_open(str(self.folder / self.files[lo]), framework="pt")
            self._open[lo] = fh
        row = index - self.offsets[lo]
        return {name: fh.get_slice(name)[row] for name in fh.keys()}

    def __getstate__(self) -> dict[str, Any]:
        return {"folder": self.folder, "offsets": self.offsets, "files": self.files}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["folder"], state["offsets"], state["files"])  # type: ignore[misc]


def join_on_ids(parts: Mapping[str, Samples]) -> Samples:
    """Join several datasets on their sample ids (inner join); columns are prefixed.

    Example:
        >>> import torch
        >>> a = Samples({"x": torch.tensor([1., 2., 3.])}, ids=torch.tensor([10, 11, 12]))
        >>> b = Samples({"y": torch.tensor([5., 6.])}, ids=torch.tensor([12, 10]))
        >>> j = join_on_ids({"a": a, "b": b})
        >>> j.ids.tolist(), j["a.x"].tolist(), j["b.y"].tolist()
        ([10, 12], [1.0, 3.0], [6.0, 5.0])
    """
    if not parts:
        raise DataError("join_on_ids: nothing to join")
    common: set[int] | None = None
    for s in parts.values():
        seen = set(s.ids.tolist())
        common = seen if common is None else common & seen
    ids = torch.tensor(sorted(common or ()), dtype=torch.int64)
    out = {}
    for prefix, s in parts.items():
        pos = {int(i): p for p, i in enumerate(s.ids.tolist())}
        index = torch.tensor([pos[int(i)] for i in ids.tolist()], dtype=torch.int64)
        for col in s:
            out[f"{prefix}.{col}"] = s[col][index]
    return Samples(out, ids)
