"""Save a module to a folder and load it back, safely.

A saved module is a folder with ``model.safetensors`` (the weights; safetensors holds no
code) and ``config.json`` (kind, the module that defines it, config, signature,
fingerprint, weights digest, package version). Loading refuses anything that is not a
regular file (FIFO, device, symlink) and files over a size cap, reads the safetensors
header, builds the module on the ``meta`` device to check the tensor shapes *before*
allocating anything, checks the weights digest before parsing the weights, and
verifies signature and fingerprint. Nothing is ever unpickled.

Files are written atomically (temp file, fsync, rename) with mode ``0o666 & ~umask``
(usually 0644), so a shared registry or dataset stays readable by colleagues.

Example:
    >>> import tempfile, torch
    >>> from brickwork.modules import And, save_module, load_module
    >>> folder = tempfile.mkdtemp()
    >>> _ = save_module(And.min("b n"), folder)
    >>> load_module(folder).mode
    'min'
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
import stat
import struct
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from brickwork._version import __version__
from brickwork.errors import BrickworkError, LoadError
from brickwork.modules.card import model_card_markdown
from brickwork.modules.factories import build_kind, kind_module_path
from brickwork.modules.module import Module
from brickwork.modules.signature import Signature

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
README = "README.md"

#: default caps on what loading reads (bytes)
MAX_WEIGHTS_BYTES = 8 << 30
MAX_CONFIG_BYTES = 16 << 20
MAX_HEADER_BYTES = 100 << 20

_DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
    "C64": 8,
}

_UMASK_LOCK = threading.Lock()


@functools.cache
def _umask() -> int:
    """The process umask, read once (from /proc when possible: no set-and-restore race)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        old = os.umask(0o022)
        os.umask(old)
    return old


def file_mode() -> int:
    """The mode new files get: ``0o666 & ~umask`` (0o644 under the usual umask 022)."""
    return 0o666 & ~_umask()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path.

    The one atomic write of brickwork: a temp file in the same folder, ``fsync``, then
    ``os.replace`` — a reader sees the old file or the new one, never a torn one, and
    a crash leaves no partial file under the name. The file gets mode
    ``0o666 & ~umask`` like any file ``open()`` creates (``mkstemp`` alone would leave
    0600, unreadable to colleagues sharing a registry or dataset).

    Example:
        >>> import tempfile, os, stat
        >>> p = atomic_write_bytes(os.path.join(tempfile.mkdtemp(), "a.txt"), b"hi")
        >>> p.read_bytes(), stat.S_IMODE(os.stat(p).st_mode) == file_mode()
        (b'hi', True)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(
    path: str | os.PathLike[str], data: Any, *, indent: int | None = 2, sort_keys: bool = True
) -> Path:
    """Write ``data`` as JSON (and a final newline) atomically; returns the path.

    Args:
        path: the file.
        data: anything ``json.dumps`` takes.
        indent: spaces per level; ``None`` writes one compact line (large data files).
        sort_keys: sort object keys (stable bytes, stable digests).

    Example:
        >>> import tempfile, os
        >>> p = atomic_write_json(os.path.join(tempfile.mkdtemp(), "a.json"), {"b": 1, "a": [2]},
        ...                       indent=None)
        >>> p.read_text().splitlines()
        ['{"a": [2], "b": 1}']
    """
    text = json.dumps(data, indent=indent, sort_keys=sort_keys)
    return atomic_write_bytes(path, (text + "\n").encode())


def parse_json_object(
    raw: bytes | str, where: str, *, fix: str = "", error: type[BrickworkError] = LoadError
) -> dict[str, Any]:
    """``raw`` (the content of ``where``) parsed as a JSON object.

    Raises:
        LoadError: (or ``error``) not JSON, or JSON but not an object; the message names
            ``where`` and ends with ``fix`` when one is given.

    Example:
        >>> parse_json_object(b'{"a": 1}', "card.json")
        {'a': 1}
        >>> parse_json_object(b"[1]", "card.json", fix="save it again")
        Traceback (most recent call last):
        ...
        brickwork.errors.LoadError: card.json: expected a JSON object, found list; save it again
    """
    tail = f"; {fix}" if fix else ""
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{where}: not valid JSON ({exc}){tail}") from None
    if not isinstance(value, dict):
        raise error(f"{where}: expected a JSON object, found {type(value).__name__}{tail}")
    return value


def read_json_object(
    path: str | os.PathLike[str],
    *,
    missing: str,
    fix: str = "",
    error: type[BrickworkError] = LoadError,
) -> dict[str, Any]:
    """The JSON object in the file ``path`` (one this package wrote, e.g. with
    :func:`atomic_write_json`).

    Raises:
        LoadError: (or ``error``) the file is absent (the message ends with ``missing``:
            what that means, what to do), unreadable, or not a JSON object (see
            :func:`parse_json_object`; ``fix`` ends that message).

    Example:
        >>> import tempfile, os
        >>> p = atomic_write_json(os.path.join(tempfile.mkdtemp(), "run.json"), {"key": 1})
        >>> read_json_object(p, missing="not found; train the run first")
        {'key': 1}
        >>> read_json_object(p.parent / "other.json", missing="not found; train it first")
        Traceback (most recent call last):
        ...
        brickwork.errors.LoadError: .../other.json: not found; train it first
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: {missing}") from None
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return parse_json_object(raw, str(path), fix=fix, error=error)


def atomic_write_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 100) -> Path:
    """Save a matplotlib figure as PNG atomically, then close it; returns the path."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def state_bytes(module: torch.nn.Module | Mapping[str, torch.Tensor]) -> bytes:
    """A module's weights (or a ``{name: tensor}`` state) as safetensors bytes.

    The one serialiser of weights in brickwork: saved folders, registry blobs and job
    results all hold these bytes, so equal weights give equal digests. Tensors are
    detached, moved to the CPU and made contiguous copies (shared storage is fine).

    Example:
        >>> import torch
        >>> from safetensors.torch import load
        >>> data = state_bytes(torch.nn.Linear(2, 1))
        >>> sorted(load(data))
        ['bias', 'weight']
        >>> state_bytes({"w": torch.ones(2)}) == state_bytes({"w": torch.ones(2)})
        True
    """
    items = module.state_dict() if isinstance(module, torch.nn.Module) else module
    state = {k: v.detach().cpu().contiguous().clone() for k, v in items.items()}
    return st_save(state, metadata={"format": "pt"})


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data`` (the digest every card and cache key records).

    Example:
        >>> sha256_bytes(b"")[:12]
        'e3b0c44298fc'
    """
    return hashlib.sha256(data).hexdigest()


# ----- reading untrusted files -----------------------------------------------------------
def _describe(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "not a regular file"


def _open_regular(path: Path, max_bytes: int) -> tuple[int, int]:
    """Open ``path`` for reading only if it is a regular file within ``max_bytes``;
    never blocks (O_NONBLOCK) and never follows a final symlink (O_NOFOLLOW)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise LoadError(f"{path}: missing") from None
    except OSError as exc:
        raise LoadError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise LoadError(
            f"{path}: is {_describe(st.st_mode)}, expected a regular file; "
            "copy the real file into the folder"
        )
    flags = (
        os.O_RDONLY
        | getattr(os, "O_NONBLOCK", 0)
        | getattr(os, "O_NOFOLLOW", 0)
        | getattr(os, "O_CLOEXEC", 0)
    )
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LoadError(
                f"{path}: is a symbolic link, expected a regular file; copy the "
                "real file into the folder"
            ) from None
        raise LoadError(f"{path}: cannot be opened ({exc.strerror or exc})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise LoadError(f"{path}: is {_describe(st.st_mode)}, expected a regular file")
    if st.st_size > max_bytes:
        os.close(fd)
        raise LoadError(
            f"{path}: {st.st_size} bytes, over the {max_bytes}-byte limit; "
            "raise max_bytes if you trust this file"
        )
    return fd, st.st_size


def _read_exact(fd: int, n: int, path: Path) -> bytes:
    chunks, left = [], n
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 24))
        if not chunk:
            raise LoadError(f"{path}: ended after {n - left} of {n} bytes; the file is truncated")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_regular_bytes(path: str | os.PathLike[str], *, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``.

    Refuses a FIFO, device, socket, directory or symlink at once (without blocking)
    and a file over the cap, with a :class:`~brickwork.errors.LoadError`.

    Example:
        >>> read_regular_bytes("/dev/zero", max_bytes=10)
        Traceback (most recent call last):
        ...
        brickwork.errors.LoadError: /dev/zero: is a device, expected a regular file;
        copy the real file into the folder
    """
    path = Path(path)
    fd, size = _open_regular(path, max_bytes)
    try:
        data = _read_exact(fd, size, path)
        if os.read(fd, 1):
            raise LoadError(f"{path}: grew while being read; read it again when it is complete")
        return data
    finally:
        os.close(fd)


def _parse_header(prefix: bytes, file_size: int, path: Path) -> dict[str, tuple[int, ...]]:
    (n,) = struct.unpack("<Q", prefix[:8])
    header = parse_json_object(prefix[8 : 8 + n], f"{path}: not a valid safetensors file (header)")
    data_size = file_size - 8 - n
    shapes: dict[str, tuple[int, ...]] = {}
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        where = f"{path}: safetensors tensor {name!r}"
        if not isinstance(info, dict):
            raise LoadError(f"{where}: entry is not an object")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in _DTYPE_BYTES:
            raise LoadError(f"{where}: unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise LoadError(f"{where}: bad shape {shape!r}")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_size
        ):
            raise LoadError(
                f"{where}: data offsets {offsets!r} outside the "
                f"{data_size}-byte data section; the file is truncated or altered"
            )
        numel = 1
        for d in shape:
            numel *= d
        if numel * _DTYPE_BYTES[dtype] != offsets[1] - offsets[0]:
            raise LoadError(
                f"{where}: shape {shape} of {dtype} needs "
                f"{numel * _DTYPE_BYTES[dtype]} bytes, the offsets give "
                f"{offsets[1] - offsets[0]}; the file is altered"
            )
        shapes[str(name)] = tuple(shape)
        spans.append(tuple(offsets))
    spans.sort()
    for (_, e1), (s2, _) in zip(spans, spans[1:]):
        if s2 < e1:
            raise LoadError(f"{path}: safetensors tensors overlap; the file is altered")
    return shapes


def read_safetensors_header(
    path: str | os.PathLike[str], *, max_bytes: int = MAX_WEIGHTS_BYTES
) -> dict[str, tuple[int, ...]]:
    """Tensor shapes from a safetensors file's header, without reading the data.

    Refuses a non-regular file (FIFO, device, symlink) and a file over ``max_bytes``
    within milliseconds; validates dtypes, shapes and data offsets against the file size
    (so shapes cannot promise more data than the file holds).

    Raises:
        LoadError: what is wrong, and with which file.

    Example:
        >>> import tempfile, os, torch
        >>> from safetensors.torch import save_file
        >>> p = os.path.join(tempfile.mkdtemp(), "w.safetensors")
        >>> save_file({"w": torch.zeros(2, 3)}, p)
        >>> read_safetensors_header(p, max_bytes=1 << 20)
        {'w': (2, 3)}
    """
    path = Path(path)
    fd, size = _open_regular(path, max_bytes)
    try:
        if size < 8:
            raise LoadError(f"{path}: {size} bytes, too short for a safetensors file")
        head = _read_exact(fd, 8, path)
        (n,) = struct.unpack("<Q", head)
        if n > min(size - 8, MAX_HEADER_BYTES):
            raise LoadError(
                f"{path}: not a valid safetensors file (header length {n} does "
                f"not fit the {size}-byte file), or it is truncated"
            )
        return _parse_header(head + _read_exact(fd, n, path), size, path)
    finally:
        os.close(fd)


# ----- saving ---------------------------------------------------------------------------
def module_card(module: Module, weights_digest: str) -> dict[str, Any]:
    """The ``config.json`` content for a module."""
    return {
        "kind": module.kind,
        "module": kind_module_path(module),
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
    ``config.json`` records the module path that defines the kind (``"module"``).
    """
    if not isinstance(module, Module):
        raise LoadError(
            f"save_module saves a brickwork Module, got {type(module).__name__}; "
            "wrap it with brickwork.typed(...)"
        )
    folder = Path(folder)
    data = state_bytes(module)
    atomic_write_bytes(folder / WEIGHTS, data)
    atomic_write_json(folder / CONFIG, module_card(module, sha256_bytes(data)))
    return folder


def save_pretrained(
    module: Module,
    folder: str | os.PathLike[str],
    *,
    name: str | None = None,
    metrics: dict[str, Any] | None = None,
    lineage: dict[str, Any] | None = None,
    license: str = "mit",  # noqa: A002
    tags: Sequence[str] = (),
) -> Path:
    """:func:`save_module` plus a ``README.md`` model card; returns the folder."""
    folder = save_module(module, folder)
    readme = model_card_markdown(
        name=name or module.kind,
        kind=module.kind,
        module_path=kind_module_path(module),
        signature_text=str(module.signature),
        metrics=metrics,
        lineage=lineage,
        hyperparameters=module.config,
        license=license,
        tags=tags,
    )
    atomic_write_bytes(folder / README, readme.encode())
    return folder


# ----- loading --------------------------------------------------------------------------
def read_card(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a saved module's ``config.json`` (a regular file, at most 16 MiB)."""
    path = Path(folder) / CONFIG
    try:
        raw = read_regular_bytes(path, max_bytes=MAX_CONFIG_BYTES)
    except LoadError as exc:
        if not path.exists() and not path.is_symlink():
            raise LoadError(
                f"{path}: missing; a saved module folder holds {CONFIG} and {WEIGHTS}"
            ) from None
        raise exc from None
    card = parse_json_object(raw, str(path), fix="the file is damaged, save the module again")
    for key in ("kind", "config", "signature", "fingerprint", "weights_sha256"):
        if key not in card:
            raise LoadError(f"{path}: field {key!r} is missing")
    if not isinstance(card["kind"], str) or not isinstance(card["config"], dict):
        raise LoadError(f"{path}: 'kind' must be a string and 'config' an object")
    if card.get("module") is not None and not isinstance(card["module"], str):
        raise LoadError(f"{path}: 'module' must be a module path string")
    return card


def load_weights_checked(
    path: Path, expected_sha256: str, *, max_bytes: int = MAX_WEIGHTS_BYTES
) -> dict[str, torch.Tensor]:
    """Read a safetensors file after checking its digest; never unpickles anything."""
    data = read_regular_bytes(path, max_bytes=max_bytes)
    digest = sha256_bytes(data)
    if digest != expected_sha256:
        raise LoadError(
            f"{path}: weights digest {digest[:12]}… does not match the recorded "
            f"{str(expected_sha256)[:12]}…; the file is truncated or altered"
        )
    try:
        return st_load(data)
    except Exception as exc:  # safetensors raises its own error types
        raise LoadError(f"{path}: not a valid safetensors file ({exc})") from None


def load_module(
    folder: str | os.PathLike[str],
    *,
    expect_signature: Signature | None = None,
    map_location: str | torch.device | None = None,
    imports: Sequence[str] = (),
    max_bytes: int = MAX_WEIGHTS_BYTES,
) -> Module:
    """Load a module saved by :func:`save_module`.

    The kind's defining module (``config.json``'s ``"module"``) is imported only when
    allowed: named in ``imports``, declared under an installed package's
    ``brickwork.kinds`` entry point, or part of brickwork. Tensor shapes are checked
    against the safetensors header on the ``meta`` device before anything is allocated.

    Args:
        folder: the saved module's folder.
        expect_signature: refuse a module whose signature differs.
        map_location: the device to build the module on (``"cpu"``, ``"cuda:0"`` …;
            ``"meta"`` builds the structure without loading weights).
        imports: module paths you trust to define kinds.
        max_bytes: the largest weights file accepted.

    Raises:
        LoadError: a missing, non-regular, oversized, truncated or altered file; an unknown
            or disallowed kind; shapes, signature or fingerprint that do not match.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise LoadError(
            f"{folder}: not a folder; a saved module is a folder with {CONFIG} and {WEIGHTS}"
        )
    card = read_card(folder)
    shapes = read_safetensors_header(folder / WEIGHTS, max_bytes=max_bytes)
    on_meta = map_location is not None and torch.device(map_location).type == "meta"
    weights = folder / WEIGHTS
    return rebuild_module(
        card["kind"],
        dict(card["config"]),
        module_path=card.get("module"),
        signature=Signature.from_json(card["signature"]),
        fingerprint=str(card["fingerprint"]),
        state=None
        if on_meta
        else (
            lambda: load_weights_checked(weights, str(card["weights_sha256"]), max_bytes=max_bytes)
        ),
        shapes=shapes,
        expect_signature=expect_signature,
        imports=imports,
        device=map_location,
        where=str(folder),
    )


def rebuild_module(
    kind: str,
    config: Mapping[str, Any],
    *,
    module_path: str | None,
    signature: Signature,
    fingerprint: str,
    state: Mapping[str, torch.Tensor] | Callable[[], Mapping[str, torch.Tensor]] | None,
    shapes: Mapping[str, tuple[int, ...]] | None = None,
    expect_signature: Signature | None = None,
    imports: Sequence[str] = (),
    device: str | torch.device | None = None,
    where: str,
    error: type[BrickworkError] = LoadError,
) -> Module:
    """Rebuild a saved module from its kind, config and weights, and verify it.

    The one rebuild of brickwork (:func:`load_module` and the registry both use it).
    In order: the kind's module is imported within the allow-list, the structure is
    built on the ``meta`` device and its tensor shapes compared with ``shapes`` (no
    memory allocated), the module is built on ``device``, its signature is compared
    with the recorded ``signature`` (and ``expect_signature``), the weights are loaded
    strictly and the fingerprint compared with the recorded one.

    Args:
        kind, config, module_path: what to build (``module_path``: the module defining
            the kind, imported only when allowed).
        signature, fingerprint: what the saved card recorded.
        state: the weights, or a function returning them (called only after the
            structure and signature checks passed, so nothing large is read for a
            module that would be refused), or ``None`` to skip weights and the
            fingerprint (a structure on the ``meta`` device).
        shapes: the tensor shapes the weights hold (default: ``state``'s shapes).
        expect_signature: refuse a module whose signature differs.
        imports: module paths trusted to define kinds.
        device: where to build.
        where: what the errors name (a folder, a registry reference).
        error: the error class raised (:class:`LoadError`; the registry passes
            :class:`~brickwork.errors.RegistryError`).

    Raises:
        LoadError: (or ``error``) an unknown or disallowed kind, shapes, signature or
            fingerprint that do not match the record.

    Example:
        >>> from brickwork.modules import And
        >>> m = And.min("b n")
        >>> back = rebuild_module("And", m.config, module_path=None, signature=m.signature,
        ...                       fingerprint=m.fingerprint(), state={}, where="example")
        >>> back.fingerprint() == m.fingerprint()
        True
    """
    loaded = state if state is None or isinstance(state, Mapping) else None
    if shapes is None and loaded is not None:
        shapes = {k: tuple(v.shape) for k, v in loaded.items()}
    try:
        module = build_kind(
            kind,
            dict(config),
            module=module_path,
            imports=imports,
            device=device,
            expect_shapes=dict(shapes) if shapes is not None else None,
        )
    except LoadError as exc:
        if error is LoadError:
            raise
        raise error(f"{where}: {exc}") from None
    if not isinstance(module, Module):
        raise error(
            f"{where}: kind {kind!r} built a {type(module).__name__}, not a brickwork Module"
        )
    if module.signature != signature:
        raise error(f"{where}: signature mismatch: saved {signature}, rebuilt {module.signature}")
    if expect_signature is not None and module.signature != expect_signature:
        raise error(f"{where}: signature {module.signature} is not the expected {expect_signature}")
    if state is None:
        return module
    if loaded is None:
        loaded = state() if callable(state) else state
    try:
        module.load_state_dict(dict(loaded), strict=True)
    except RuntimeError as exc:
        raise error(f"{where}: weights do not fit kind {kind!r}: {exc}") from None
    if module.fingerprint() != fingerprint:
        raise error(
            f"{where}: fingerprint mismatch after loading; the card was edited or "
            "the kind's code changed"
        )
    return module
