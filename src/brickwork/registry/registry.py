"""``Registry``: trained modules on disk, kept in versions, found by name, alias or
signature (thesis §5.3).

Layout of the folder::

    blobs/ab/abcdef….safetensors   content-addressed weights (sha256 of the bytes)
    cards/<kind.tag>@<N>.json      the card of version N of an entry (JSON, see ModelCard)
    aliases.json                   the aliases and version counters (what reindex needs
                                   beyond the cards; written atomically under the lock)
    index.sqlite                   one row per version, with the card's digest (WAL)

Nothing is ever overwritten: each :meth:`Registry.put` of an existing ``kind.tag`` adds
a version; ``kind.tag`` means the latest version, ``kind.tag@3`` version 3 and
``kind.tag@production`` the version an alias points at (aliases move only through
:meth:`Registry.alias`). Loading checks the card against the digest in the index (an
edited card is refused), the blob against the card's digest (a truncated or bit-flipped
blob is refused), parses the blob as safetensors (never unpickles anything), builds the
module on the meta device first to compare its tensor shapes with the weights, and
checks the rebuilt module's fingerprint.

Every write (blob check, card, index row, blob deletion) happens inside the index's
write transaction, so a ``put`` racing a ``remove`` of identical weights never loses
its blob. The index is rebuilt from ``cards/``, ``blobs/`` and ``aliases.json`` by
:meth:`Registry.reindex`.
"""

from __future__ import annotations

import builtins
import dataclasses
import errno
import fnmatch
import json
import logging
import os
import stat
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, final

import torch
from safetensors.torch import load as st_load

import brickwork.modules as bm
from brickwork.errors import BrickworkError, LoadError, RegistryError
from brickwork.modules import Module, Signature, atomic_write_bytes, atomic_write_json
from brickwork.registry import index
from brickwork.registry.card import ModelCard
from brickwork.registry.location import default_registry_path
from brickwork.registry.names import parse_ref, validate_alias, validate_name
from brickwork.types import NeuralType

_T = TypeVar("_T")
log = logging.getLogger(__name__)

_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
STATE_FILE = "aliases.json"
#: Largest ``config.json`` / ``README.md`` read from an import folder.
MAX_CONFIG_BYTES = 1 << 20
MAX_README_BYTES = 1 << 20
#: Largest ``model.safetensors`` read from an import folder (``max_weights_bytes=``).
MAX_WEIGHTS_BYTES = 4 << 30
_REINDEX = "run `brickwork registry reindex` (Registry.reindex()) to rebuild it from the cards"


def _parse_safetensors(data: bytes, where: str) -> dict[str, torch.Tensor]:
    if data[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05") or data[:2] == b"PK":
        raise RegistryError(
            f"{where}: the weights are a pickle/zip payload, not safetensors; "
            "brickwork never unpickles. Convert the weights to safetensors"
        )
    try:
        return st_load(data)
    except Exception as exc:  # safetensors raises its own error types
        raise RegistryError(f"{where}: not a valid safetensors file ({exc})") from None


@contextmanager
def _os_errors(what: str, path: Path | str) -> Iterator[None]:
    """Turn an ``OSError`` into a one-line RegistryError naming the path and the fix."""
    try:
        yield
    except OSError as exc:
        where = exc.filename or path
        if exc.errno == errno.ENOSPC:
            fix = "free disk space and retry"
        elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            fix = "make the folder writable, or use another one (--registry PATH)"
        else:
            fix = "check that the folder exists and is writable"
        raise RegistryError(f"{where}: {what} failed ({exc.strerror or exc}); {fix}") from None


@final
@dataclass(frozen=True)
class Problem:
    """One finding of :meth:`Registry.verify` or :meth:`Registry.reindex`.

    Attributes:
        name: the entry reference (or ``""`` for an orphan file or the index itself).
        path: the file concerned.
        what: what is wrong (and what to do).
    """

    name: str
    path: str
    what: str

    def __str__(self) -> str:
        return (
            f"{self.name}: {self.path}: {self.what}" if self.name else f"{self.path}: {self.what}"
        )

    @property
    def needs_reindex(self) -> bool:
        """Whether :meth:`Registry.reindex` is the fix."""
        return "registry reindex" in self.what


@final
@dataclass(frozen=True)
class Entry:
    """One line of :meth:`Registry.list` / :meth:`Registry.versions`: a version of an
    entry, with its card when the card passes its checks, else the problem.

    Attributes:
        name: ``kind.tag``.
        version: the version number.
        aliases: the aliases pointing at this version (``latest`` included when it is
            the newest).
        card: the checked card, or ``None`` when it is damaged or missing.
        problem: what is wrong (empty when ``card`` is set).
        mode: the training mode recorded in the index (``""`` for a card without row).
        signature_text: the signature recorded in the index.
    """

    name: str
    version: int
    aliases: tuple[str, ...] = ()
    card: ModelCard | None = None
    problem: str = ""
    mode: str = ""
    signature_text: str = ""

    @property
    def ref(self) -> str:
        """``kind.tag@N``."""
        return f"{self.name}@{self.version}"

    @property
    def ok(self) -> bool:
        """Whether the card passed its checks."""
        return self.card is not None and not self.problem

    def to_json(self) -> dict[str, Any]:
        """JSON form (what ``registry list --json`` prints)."""
        out: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "aliases": list(self.aliases),
            "ok": self.ok,
            "problem": self.problem,
            "mode": self.mode,
            "signature": self.signature_text,
        }
        if self.card is not None:
            out.update(
                kind=self.card.kind,
                module=self.card.module,
                created=self.card.created,
                metrics=dict(self.card.metrics),
                weights_sha256=self.card.weights_sha256,
            )
        return out


@final
@dataclass(frozen=True)
class ReindexReport:
    """What :meth:`Registry.reindex` rebuilt.

    Attributes:
        names: entries in the new index.
        versions: versions in the new index.
        aliases: aliases restored.
        problems: cards that could not be indexed, blobs missing or damaged, aliases
            pointing at missing versions.
    """

    names: int
    versions: int
    aliases: int
    problems: tuple[Problem, ...] = ()


# ----- untrusted files ------------------------------------------------------------------


def _regular_path(folder: Path, file: str, max_bytes: int) -> Path:
    """The real path of ``folder/file`` when it is a regular file inside ``folder`` (a
    symbolic link may point to one there) of at most ``max_bytes``. Checked from
    ``lstat``/``stat`` alone: FIFOs, devices and sockets are refused unopened."""
    path = folder / file
    st = _file_call(
        os.lstat,
        path,
        missing="missing; an exported folder holds config.json and model.safetensors",
    )
    if stat.S_ISLNK(st.st_mode):
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError) as exc:
            raise RegistryError(
                f"{path}: a symbolic link that does not resolve ({exc}); an "
                "import folder must hold regular files"
            ) from None
        base = folder.resolve()
        if base not in target.parents:
            raise RegistryError(
                f"{path}: a symbolic link pointing out of the folder (to "
                f"{target}); refused: copy the real file into the folder"
            )
        path, st = target, os.stat(target)
    if not stat.S_ISREG(st.st_mode):
        what = (
            "a FIFO"
            if stat.S_ISFIFO(st.st_mode)
            else "a device"
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
            else "a directory"
            if stat.S_ISDIR(st.st_mode)
            else "not a regular file"
        )
        raise RegistryError(
            f"{folder / file}: is {what}; an import folder must hold regular files only"
        )
    if st.st_size > max_bytes:
        raise RegistryError(
            f"{folder / file}: {st.st_size} bytes, more than the {max_bytes} "
            "allowed; pass max_weights_bytes= (--max-weights-bytes) to allow "
            "larger weights"
        )
    return path


def _read_regular(folder: Path, file: str, max_bytes: int) -> bytes:
    """The bytes of ``folder/file`` once :func:`_regular_path` accepted it (read with
    :func:`brickwork.modules.read_regular_bytes`, which refuses a file swapped or grown
    since the check)."""
    path = _regular_path(folder, file, max_bytes)
    try:
        return bm.read_regular_bytes(path, max_bytes=max_bytes)
    except LoadError as exc:
        raise RegistryError(str(exc)) from None


def _header_shapes(folder: Path, file: str, max_bytes: int) -> dict[str, tuple[int, ...]]:
    """Tensor shapes from a safetensors header, without reading the data."""
    real = _regular_path(folder, file, max_bytes)
    try:
        return dict(bm.read_safetensors_header(real, max_bytes=max_bytes))
    except LoadError as exc:
        raise RegistryError(str(exc)) from None


def _file_call(call: Callable[[Path], _T], path: Path, *, missing: str, what: str = "") -> _T:
    """``call(path)``, with a missing file (``missing``: what to say) or an unreadable
    one (``what``: the file's name in the message) as a one-line RegistryError."""
    try:
        return call(path)
    except FileNotFoundError:
        raise RegistryError(f"{path}: {missing}") from None
    except OSError as exc:
        raise RegistryError(f"{path}: {what}cannot be read ({exc.strerror})") from None


def _read_stored(path: Path, what: str) -> bytes:
    """The bytes of a file the registry wrote; ``what`` names it in the errors."""
    return _file_call(
        Path.read_bytes,
        path,
        missing=f"{what} is missing; remove the version and register the module again",
        what=f"{what} ",
    )


# ----- building -------------------------------------------------------------------------


def _build(
    card: ModelCard,
    *,
    imports: Sequence[str],
    device: Any,
    expect_shapes: Mapping[str, tuple[int, ...]] | None,
    where: str,
) -> Module:
    """Build the card's module: imports its kind's module within the allow-list
    (``imports``, ``brickwork.kinds`` entry points, ``brickwork.*``), compares the tensor
    shapes on the meta device first (no memory), then builds on ``device``."""
    try:
        module: Module = bm.build_kind(
            card.kind,
            dict(card.config),
            module=card.module or None,
            imports=tuple(imports),
            device=device,
            expect_shapes=dict(expect_shapes) if expect_shapes is not None else None,
        )
    except LoadError as exc:
        raise RegistryError(f"{where}: {exc}") from None
    return module


def _rebuild(
    card: ModelCard,
    state: Mapping[str, torch.Tensor],
    where: str,
    *,
    imports: Sequence[str] = (),
    map_location: Any = None,
) -> Module:
    """The card's module with ``state`` loaded and verified.

    See :func:`brickwork.modules.rebuild_module`.
    """
    return bm.rebuild_module(
        card.kind,
        card.config,
        module_path=card.module or None,
        signature=card.signature_obj,
        fingerprint=card.fingerprint,
        state=state,
        imports=imports,
        device=map_location,
        where=where,
        error=RegistryError,
    )


@final
class Registry:
    """A local registry of trained modules, kept in versions.

    Args:
        path: the registry folder (created); ``None`` uses ``$BRICKWORK_REGISTRY`` or
            the user data dir.

    Example:
        >>> import tempfile, torch
        >>> from brickwork.modules import And
        >>> from brickwork.types import SoftMask
        >>> reg = Registry(tempfile.mkdtemp())
        >>> reg.put("And.min-v1", And.min("b n"), metrics={"acc": 1.0}).ref
        'And.min-v1@1'
        >>> reg.put("And.min-v1", And.min("b n"), metrics={"acc": 0.9}).ref  # a new version
        'And.min-v1@2'
        >>> reg.alias("And.min-v1@1", "production").ref
        'And.min-v1@1'
        >>> reg.card("And.min-v1@production").metrics, reg.card("And.min-v1").version
        ({'acc': 1.0}, 2)
        >>> [c.name for c in reg.search(outputs={"out": SoftMask("b n")}, pattern="And.*")]
        ['And.min-v1']
        >>> reg.load("And.min-v1@1").mode
        'min'
        >>> reg.verify()
        []
    """

    def __init__(self, path: str | os.PathLike[str] | None = None):
        self.root = Path(path).expanduser() if path is not None else default_registry_path()
        if self.root.exists() and not self.root.is_dir():
            raise RegistryError(
                f"{self.root}: is a file, not a registry folder; pass "
                "--registry PATH (a folder) or set BRICKWORK_REGISTRY"
            )
        try:
            (self.root / "blobs").mkdir(parents=True, exist_ok=True)
            (self.root / "cards").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RegistryError(
                f"{self.root}: cannot create the registry folder ({exc}); "
                "pass --registry PATH or set BRICKWORK_REGISTRY"
            ) from None
        self.index_path = self.root / "index.sqlite"
        self._damaged: RegistryError | None = None
        try:
            index.initialise(self.index_path)
        except RegistryError as exc:
            if "not a usable SQLite database" not in str(exc):
                raise
            self._damaged = exc  # reindex and verify still work; everything else says so
            return
        self._migrate_v1()

    def __repr__(self) -> str:
        return f"Registry({str(self.root)!r})"

    # ----- paths ---------------------------------------------------------------------
    def blob_path(self, sha256: str) -> Path:
        """Where the blob with this digest lives."""
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise RegistryError(f"blob digest {sha256!r} is not 64 lowercase hex digits")
        return self.root / "blobs" / sha256[:2] / f"{sha256}.safetensors"

    def card_path(self, name: str, version: int = 1) -> Path:
        """Where the card of version ``version`` of ``name`` lives (name validated)."""
        validate_name(name)
        return self.root / "cards" / f"{name}@{int(version)}.json"

    @property
    def state_path(self) -> Path:
        """``aliases.json``: aliases and version counters (what reindex restores)."""
        return self.root / STATE_FILE

    # ----- index health --------------------------------------------------------------
    def _card_files(self) -> Iterator[Path]:
        try:
            with os.scandir(self.root / "cards") as it:
                for e in it:
                    if e.name.endswith(".json") and not e.name.startswith("."):
                        yield Path(e.path)
        except FileNotFoundError:
            return

    def _require_index(self, conn: Any, *, locked: bool = False) -> None:
        """Refuse to work from an index that lost its rows while cards remain.

        A put in flight writes its card before its transaction commits, so an empty
        index beside a card is confirmed under the write lock (which waits for that
        commit) before it is reported."""
        if conn.execute("SELECT 1 FROM versions LIMIT 1").fetchone() is not None:
            return
        if next(self._card_files(), None) is None:
            return
        if not locked:
            try:
                with index.writing(self.index_path) as wconn:
                    self._require_index(wconn, locked=True)
                return
            except RegistryError as exc:
                if "holds no entries" in str(exc):
                    raise
                # the index cannot be locked for writing (read-only folder): report below
        if next(self._card_files(), None) is not None:
            raise RegistryError(
                f"{self.index_path}: the index holds no entries but "
                f"{self.root / 'cards'} holds cards (the index was deleted, "
                f"replaced or damaged); {_REINDEX}"
            )

    @contextmanager
    def _reading(self) -> Iterator[Any]:
        if self._damaged is not None:
            raise self._damaged
        with index.reading(self.index_path) as conn:
            self._require_index(conn)
            yield conn

    @contextmanager
    def _writing(self) -> Iterator[Any]:
        if self._damaged is not None:
            raise self._damaged
        with index.writing(self.index_path) as conn:
            self._require_index(conn, locked=True)
            yield conn

    def _migrate_v1(self) -> None:
        """Move an index of the first format (``entries``, ``cards/<name>.json``) to
        versions: every entry becomes version 1."""
        with index.reading(self.index_path) as conn:
            if not index.has_table(conn, "entries"):
                return
        with index.writing(self.index_path) as conn, _os_errors("migrating the index", self.root):
            if not index.has_table(conn, "entries"):
                return  # another process migrated it meanwhile
            rows = conn.execute("SELECT * FROM entries").fetchall()
            for row in rows:
                name = row["name"]
                old, new = self.root / "cards" / f"{name}.json", self.card_path(name, 1)
                card_sha = row["card_sha256"]
                raw = old.read_bytes() if old.exists() else None
                if raw is not None:
                    out = raw
                    if bm.sha256_bytes(raw) == card_sha:  # untouched: rewrite with its version
                        try:
                            out = ModelCard.from_json(json.loads(raw), where=str(old)).to_bytes()
                            card_sha = bm.sha256_bytes(out)
                        except (BrickworkError, ValueError):
                            out = raw
                    atomic_write_bytes(new, out)
                    old.unlink()
                elif new.exists():  # an earlier migration died before its commit
                    card_sha = bm.sha256_bytes(new.read_bytes())
                conn.execute(
                    "INSERT OR REPLACE INTO versions VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        name,
                        1,
                        row["kind"],
                        row["tag"],
                        row["weights_sha256"],
                        card_sha,
                        row["fingerprint"],
                        row["mode"],
                        row["signature_text"],
                        row["signature_json"],
                        row["created"],
                    ),
                )
                conn.execute("INSERT OR REPLACE INTO counters VALUES (?, ?)", (name, 2))
            conn.execute("DROP TABLE entries")
        log.info(
            "%s: migrated %d entries of the first index format to versions", self.root, len(rows)
        )

    # ----- references ----------------------------------------------------------------
    def _unknown(self, name: str) -> str:
        return (
            f"no registry entry {name!r} in {self.root}; `brickwork registry list` shows "
            "the entries"
        )

    def _resolve(self, conn: Any, ref: str) -> Any:
        """The index row of ``ref`` (``kind.tag``, ``kind.tag@N``, ``kind.tag@alias``)."""
        name, selector = parse_ref(ref)
        if selector is None:
            row = conn.execute(
                "SELECT * FROM versions WHERE name = ? ORDER BY version DESC LIMIT 1", (name,)
            ).fetchone()
            if row is None:
                raise RegistryError(self._unknown(name))
            return row
        if isinstance(selector, int):
            row = conn.execute(
                "SELECT * FROM versions WHERE name = ? AND version = ?", (name, selector)
            ).fetchone()
            if row is None:
                have = [
                    r[0]
                    for r in conn.execute(
                        "SELECT version FROM versions WHERE name = ? ORDER BY version", (name,)
                    )
                ]
                if not have:
                    raise RegistryError(self._unknown(name))
                raise RegistryError(
                    f"registry entry {name!r} has no version {selector}; its "
                    f"versions are {have} (`brickwork registry versions {name}`)"
                )
            return row
        hit = conn.execute(
            "SELECT version FROM aliases WHERE name = ? AND alias = ?", (name, selector)
        ).fetchone()
        if hit is None:
            if conn.execute("SELECT 1 FROM versions WHERE name = ?", (name,)).fetchone() is None:
                raise RegistryError(self._unknown(name))
            have = [
                r[0]
                for r in conn.execute(
                    "SELECT alias FROM aliases WHERE name = ? ORDER BY alias", (name,)
                )
            ]
            raise RegistryError(
                f"registry entry {name!r} has no alias {selector!r} (aliases: "
                f"{['latest'] + have}); set it with `brickwork registry alias "
                f"{name}@N {selector}`"
            )
        return conn.execute(
            "SELECT * FROM versions WHERE name = ? AND version = ?", (name, hit[0])
        ).fetchone()

    def resolve(self, ref: str) -> str:
        """The exact ``kind.tag@N`` that ``ref`` means now.

        Example:
            >>> import tempfile
            >>> from brickwork.modules import And
            >>> reg = Registry(tempfile.mkdtemp())
            >>> _ = reg.put("And.min-v1", And.min("b n"))
            >>> reg.resolve("And.min-v1")
            'And.min-v1@1'
        """
        with self._reading() as conn:
            row = self._resolve(conn, ref)
        return f"{row['name']}@{row['version']}"

    # ----- writing -------------------------------------------------------------------
    def put(
        self,
        name: str,
        module: Module,
        *,
        mode: str = "direct",
        hyperparameters: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        lineage: Mapping[str, Any] | None = None,
        data_digest: str = "",
        module_path: str | None = None,
        overwrite: bool | None = None,
    ) -> ModelCard:
        """Store ``module`` as a new version of ``name`` (``kind.tag``); returns its card.

        Nothing is overwritten: a name that exists gets the next version (numbers are
        never reused, even after a removal). When the weights and the card's content
        (all but the creation time) equal the latest version's, that version's card is
        returned and nothing is added, so registering the same result twice is harmless.

        Args:
            name: ``kind.tag``.
            module: the module.
            mode, hyperparameters, metrics, lineage, data_digest: recorded in the card.
            module_path: the importable module defining the kind (default: the kind's
                registered factory's module).
            overwrite: ignored (deprecated): every put adds a version.

        Raises:
            RegistryError: invalid name, not a Module, a damaged or lost index, a write
                that failed.
        """
        validate_name(name)
        if overwrite is not None:
            log.warning(
                "Registry.put(overwrite=...) is deprecated and ignored: each put of "
                "%r adds a version; pass no overwrite argument",
                name,
            )
        if not isinstance(module, Module):
            raise RegistryError(
                f"registry entry {name!r}: expected a brickwork Module, got "
                f"{type(module).__name__}; wrap it with brickwork.typed(...)"
            )
        data = bm.state_bytes(module)
        card = ModelCard.for_module(
            name,
            module,
            weights_sha256=bm.sha256_bytes(data),
            mode=mode,
            hyperparameters=hyperparameters,
            metrics=metrics,
            lineage=lineage,
            data_digest=data_digest,
            module_path=module_path,
        )
        return self._store(card, data)

    def _blob_present(self, blob: Path, size: int) -> bool:
        try:
            return blob.stat().st_size == size
        except FileNotFoundError:
            return False

    def _store(self, card: ModelCard, data: bytes) -> ModelCard:
        blob = self.blob_path(card.weights_sha256)
        with self._reading():
            pass  # a lost or damaged index refuses before anything is written
        wrote = False
        with _os_errors("writing the weights blob", blob):
            if not self._blob_present(blob, len(data)):  # outside the lock: the slow part
                atomic_write_bytes(blob, data)
                wrote = True
        try:
            return self._store_locked(card, data, blob)
        except BaseException:
            if wrote:  # do not leave a blob no version uses
                try:
                    with index.writing(self.index_path) as conn:
                        self._drop_blob_if_unused(conn, card.weights_sha256)
                except (BrickworkError, OSError):
                    pass
            raise

    def _store_locked(self, card: ModelCard, data: bytes, blob: Path) -> ModelCard:
        with self._writing() as conn, _os_errors("registering", self.root):
            latest = conn.execute(
                "SELECT * FROM versions WHERE name = ? ORDER BY version DESC LIMIT 1", (card.name,)
            ).fetchone()
            if latest is not None and latest["weights_sha256"] == card.weights_sha256:
                try:
                    previous = self._card_checked(latest)
                except RegistryError:
                    previous = None
                if previous is not None and previous.same_content(card):
                    if not self._blob_present(blob, len(data)):  # re-checked under the lock
                        atomic_write_bytes(blob, data)
                    log.info(
                        "%s: same weights and card as %s; not added again", card.name, previous.ref
                    )
                    return previous
            version = self._next_version(conn, card.name, latest)
            while self.card_path(card.name, version).exists():  # a card without a row
                log.warning(
                    "%s: a card for version %d exists without an index row (an "
                    "interrupted put or an out-of-date index); using the next version",
                    card.name,
                    version,
                )
                version += 1
            card = dataclasses.replace(card, version=version)
            # the blob may have been deleted by a remove since the check above: the lock
            # is held now, so what is checked here stays true until the commit
            if not self._blob_present(blob, len(data)):
                atomic_write_bytes(blob, data)
            card_bytes = card.to_bytes()
            atomic_write_bytes(self.card_path(card.name, version), card_bytes)
            kind, tag = validate_name(card.name)
            conn.execute(
                "INSERT INTO versions VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    card.name,
                    version,
                    kind,
                    tag,
                    card.weights_sha256,
                    bm.sha256_bytes(card_bytes),
                    card.fingerprint,
                    card.mode,
                    str(card.signature_obj),
                    json.dumps(card.signature, sort_keys=True),
                    card.created,
                ),
            )
            conn.execute("INSERT OR REPLACE INTO counters VALUES (?, ?)", (card.name, version + 1))
        return card

    def _next_version(self, conn: Any, name: str, latest: Any) -> int:
        row = conn.execute("SELECT next_version FROM counters WHERE name = ?", (name,)).fetchone()
        return max(int(row[0]) if row else 1, int(latest["version"]) + 1 if latest else 1)

    def _drop_blob_if_unused(self, conn: Any, sha: str) -> None:
        """Delete a blob no version uses; called inside the write transaction, so a
        concurrent put of the same weights waits for the lock and then writes it again."""
        used = conn.execute(
            "SELECT COUNT(*) FROM versions WHERE weights_sha256 = ?", (sha,)
        ).fetchone()[0]
        if not used:
            self.blob_path(sha).unlink(missing_ok=True)

    def _write_state(self, conn: Any) -> None:
        """aliases.json from the index (inside the write transaction)."""
        aliases: dict[str, dict[str, int]] = {}
        for name, alias, version in conn.execute(
            "SELECT name, alias, version FROM aliases ORDER BY name, alias"
        ):
            aliases.setdefault(name, {})[alias] = int(version)
        counters = {
            n: int(v)
            for n, v in conn.execute("SELECT name, next_version FROM counters ORDER BY name")
        }
        atomic_write_json(
            self.state_path, {"format": 1, "aliases": aliases, "next_version": counters}
        )

    def _read_state(self) -> tuple[dict[str, dict[str, int]], dict[str, int], list[Problem]]:
        path = self.state_path
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return {}, {}, []
        except (OSError, ValueError) as exc:
            return {}, {}, [Problem("", str(path), f"unreadable ({exc}); aliases not restored")]
        aliases, counters = data.get("aliases", {}), data.get("next_version", {})
        if not isinstance(aliases, dict) or not isinstance(counters, dict):
            return {}, {}, [Problem("", str(path), "not the expected JSON; aliases not restored")]
        good_aliases = {
            n: {a: v for a, v in m.items() if isinstance(v, int)}
            for n, m in aliases.items()
            if isinstance(m, dict)
        }
        return good_aliases, {n: v for n, v in counters.items() if isinstance(v, int)}, []

    def remove(self, ref: str) -> list[str]:
        """Delete ``kind.tag`` (every version), ``kind.tag@N`` or ``kind.tag@alias`` (that
        version); aliases pointing at a removed version go too, blobs no version uses
        any more are deleted (inside the index lock). Returns the removed references.

        Raises:
            RegistryError: unknown entry, version or alias.
        """
        name, _ = parse_ref(ref)
        with self._writing() as conn, _os_errors("removing", self.root):
            if "@" in ref:
                rows = [self._resolve(conn, ref)]
            else:
                rows = conn.execute("SELECT * FROM versions WHERE name = ?", (name,)).fetchall()
                if not rows:
                    raise RegistryError(self._unknown(name))
            for row in rows:
                conn.execute(
                    "DELETE FROM versions WHERE name = ? AND version = ?", (name, row["version"])
                )
                conn.execute(
                    "DELETE FROM aliases WHERE name = ? AND version = ?", (name, row["version"])
                )
                self.card_path(name, row["version"]).unlink(missing_ok=True)
            for sha in {row["weights_sha256"] for row in rows}:
                self._drop_blob_if_unused(conn, sha)
            self._write_state(conn)
        return [f"{name}@{row['version']}" for row in rows]

    def alias(self, ref: str, alias: str) -> ModelCard:
        """Point ``alias`` of the entry at the version ``ref`` means now (moving it if set).

        Raises:
            RegistryError: unknown reference, invalid alias or ``latest``.
        """
        validate_alias(alias)
        with self._writing() as conn, _os_errors("setting an alias", self.root):
            row = self._resolve(conn, ref)
            card = self._card_checked(row)
            conn.execute(
                "INSERT OR REPLACE INTO aliases VALUES (?, ?, ?)",
                (row["name"], alias, row["version"]),
            )
            self._write_state(conn)
        return card

    def remove_alias(self, name: str, alias: str) -> None:
        """Delete an alias of ``name``.

        Raises:
            RegistryError: no such alias.
        """
        validate_name(name)
        validate_alias(alias)
        with self._writing() as conn, _os_errors("removing an alias", self.root):
            cur = conn.execute("DELETE FROM aliases WHERE name = ? AND alias = ?", (name, alias))
            if cur.rowcount == 0:
                raise RegistryError(f"registry entry {name!r} has no alias {alias!r}")
            self._write_state(conn)

    # ----- reading -------------------------------------------------------------------
    def names(self, pattern: str | None = None) -> list[str]:
        """Every entry name (matching the glob ``pattern``), sorted."""
        with self._reading() as conn:
            names = [r[0] for r in conn.execute("SELECT DISTINCT name FROM versions ORDER BY name")]
        return [n for n in names if pattern is None or fnmatch.fnmatchcase(n, pattern)]

    def __contains__(self, ref: object) -> bool:
        if not isinstance(ref, str):
            return False
        with self._reading() as conn:  # a lost or damaged index is an error, not False
            try:
                self._resolve(conn, ref)
            except RegistryError:
                return False
        return True

    def __len__(self) -> int:
        """The number of entries (names; see :meth:`versions` for their versions)."""
        with self._reading() as conn:
            return int(conn.execute("SELECT COUNT(DISTINCT name) FROM versions").fetchone()[0])

    def card(self, ref: str) -> ModelCard:
        """The card of ``ref``, checked against the digest in the index."""
        with self._reading() as conn:
            row = self._resolve(conn, ref)
        return self._card_checked(row)

    def _card_checked(self, row: Any) -> ModelCard:
        name, version = row["name"], int(row["version"])
        path = self.card_path(name, version)
        raw = _read_stored(path, f"card of {name}@{version}")
        if bm.sha256_bytes(raw) != row["card_sha256"]:
            raise RegistryError(
                f"{path}: card of {name}@{version} does not match the digest "
                "in the index; it was edited or damaged after registration. "
                "Remove and re-register the entry"
            )
        try:
            card = ModelCard.from_json(json.loads(raw), where=str(path))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RegistryError(f"{path}: not valid JSON ({exc})") from None
        if (card.name, card.version, card.weights_sha256) != (name, version, row["weights_sha256"]):
            raise RegistryError(
                f"{path}: card names {card.ref!r} / blob "
                f"{card.weights_sha256[:12]}…, the index says {name}@{version} "
                f"/ {row['weights_sha256'][:12]}…"
            )
        return card

    def weights(self, ref: str) -> dict[str, torch.Tensor]:
        """The weights of ``ref`` (digest-checked safetensors)."""
        return self._weights_checked(self.card(ref))

    def _weights_checked(self, card: ModelCard) -> dict[str, torch.Tensor]:
        return _parse_safetensors(
            self._blob_checked(card), str(self.blob_path(card.weights_sha256))
        )

    def _blob_checked(self, card: ModelCard) -> bytes:
        path = self.blob_path(card.weights_sha256)
        data = _read_stored(path, f"weights blob of {card.ref}")
        digest = bm.sha256_bytes(data)
        if digest != card.weights_sha256:
            raise RegistryError(
                f"{path}: weights blob of {card.ref} has digest "
                f"{digest[:12]}…, expected {card.weights_sha256[:12]}…; it is "
                "truncated or altered. Remove the entry and register it again"
            )
        return data

    def load(self, ref: str, *, imports: Sequence[str] = (), map_location: Any = None) -> Module:
        """Rebuild the module ``ref`` names (every digest checked).

        Args:
            ref: ``kind.tag`` (latest), ``kind.tag@N`` or ``kind.tag@alias``.
            imports: modules allowed to be imported to find the kind (besides installed
                ``brickwork.kinds`` entry points and ``brickwork.*``).
            map_location: the device the module is built on (default: CPU).
        """
        card = self.card(ref)
        state = self._weights_checked(card)
        return _rebuild(
            card,
            state,
            where=f"registry entry {card.ref!r}",
            imports=imports,
            map_location=map_location,
        )

    def _aliases_by_version(self, conn: Any) -> dict[tuple[str, int], list[str]]:
        out: dict[tuple[str, int], list[str]] = {}
        for name, alias, version in conn.execute(
            "SELECT name, alias, version FROM aliases ORDER BY alias"
        ):
            out.setdefault((name, int(version)), []).append(alias)
        for name, version in conn.execute("SELECT name, MAX(version) FROM versions GROUP BY name"):
            out.setdefault((name, int(version)), []).insert(0, "latest")
        return out

    def _entry(self, row: Any, aliases: Mapping[tuple[str, int], list[str]]) -> Entry:
        key = (row["name"], int(row["version"]))
        try:
            card, problem = self._card_checked(row), ""
        except RegistryError as exc:
            card, problem = None, f"{exc}; see `brickwork registry verify`"
        return Entry(
            row["name"],
            key[1],
            tuple(aliases.get(key, ())),
            card,
            problem,
            row["mode"],
            row["signature_text"],
        )

    def list(self, pattern: str | None = None, *, all_versions: bool = False) -> list[Entry]:  # noqa: A003
        """Every entry (its latest version, or every version) whose name matches the glob
        ``pattern`` (``'find.*'``), damaged ones included with their problem, and cards
        that have no index row (fixed by :meth:`reindex`).

        Example:
            >>> import tempfile
            >>> from brickwork.modules import And
            >>> reg = Registry(tempfile.mkdtemp())
            >>> _ = reg.put("And.min-v1", And.min("b n"))
            >>> [(e.ref, e.aliases, e.ok) for e in reg.list("And.*")]
            [('And.min-v1@1', ('latest',), True)]
        """
        with self._reading() as conn:
            if all_versions:
                rows = conn.execute("SELECT * FROM versions ORDER BY name, version").fetchall()
            else:
                rows = conn.execute(
                    "SELECT v.* FROM versions v JOIN (SELECT name, MAX(version) AS version FROM "
                    "versions GROUP BY name) m ON v.name = m.name AND v.version = m.version "
                    "ORDER BY v.name"
                ).fetchall()
            known = {(r[0], int(r[1])) for r in conn.execute("SELECT name, version FROM versions")}
            aliases = self._aliases_by_version(conn)
        out = [
            self._entry(r, aliases)
            for r in rows
            if pattern is None or fnmatch.fnmatchcase(r["name"], pattern)
        ]
        for path in sorted(self._card_files()):
            name, at, version = path.stem.partition("@")
            key = (name, int(version) if version.isdigit() else 0)
            if key in known or (pattern is not None and not fnmatch.fnmatchcase(name, pattern)):
                continue
            out.append(
                Entry(
                    name,
                    key[1],
                    (),
                    None,
                    f"{path}: card without an index row; see `brickwork registry verify`",
                )
            )
        return sorted(out, key=lambda e: (e.name, e.version))

    def versions(self, name: str) -> builtins.list[Entry]:
        """Every version of ``name``, oldest first, with its aliases.

        Raises:
            RegistryError: unknown name.
        """
        validate_name(name)
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT * FROM versions WHERE name = ? ORDER BY version", (name,)
            ).fetchall()
            aliases = self._aliases_by_version(conn)
        if not rows:
            raise RegistryError(self._unknown(name))
        return [self._entry(r, aliases) for r in rows]

    def cards(
        self, pattern: str | None = None, *, all_versions: bool = False
    ) -> builtins.list[ModelCard]:
        """The cards that pass their checks (see :meth:`list` for the damaged ones too)."""
        return [e.card for e in self.list(pattern, all_versions=all_versions) if e.card is not None]

    def search(
        self,
        inputs: Mapping[str, NeuralType] | None = None,
        outputs: Mapping[str, NeuralType] | None = None,
        *,
        kind: str | None = None,
        pattern: str | None = None,
        all_versions: bool = False,
    ) -> builtins.list[ModelCard]:
        """Entries whose module can stand where these ports are wanted (subtype-aware).

        A wanted input type must be able to feed the entry's input; the entry's output
        must be able to feed the wanted output type (``Signature.accepts``). Only the
        latest version of each entry is considered unless ``all_versions``; ``pattern``
        is a glob over names.
        """
        found = []
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT name, version, kind, signature_json FROM versions ORDER BY name, version"
            ).fetchall()
        latest: dict[str, int] = {}
        for row in rows:
            latest[row["name"]] = max(latest.get(row["name"], 0), int(row["version"]))
        for row in rows:
            if not all_versions and int(row["version"]) != latest[row["name"]]:
                continue
            if kind is not None and row["kind"] != kind:
                continue
            if pattern is not None and not fnmatch.fnmatchcase(row["name"], pattern):
                continue
            try:
                sig = Signature.from_json(json.loads(row["signature_json"]))
            except (BrickworkError, ValueError, KeyError):
                continue
            if sig.accepts(inputs=inputs, outputs=outputs):
                found.append(f"{row['name']}@{row['version']}")
        cards = []
        for ref in found:
            try:
                cards.append(self.card(ref))
            except RegistryError as exc:  # shown by list() and verify(); not a match
                log.warning("registry search skips %s: %s", ref, exc)
        return cards

    # ----- integrity -----------------------------------------------------------------
    def verify(self) -> builtins.list[Problem]:
        """Re-hash every card and blob; returns every problem found (empty when clean).
        Problems whose fix is :meth:`reindex` say so (``Problem.needs_reindex``)."""
        if self._damaged is not None:
            return [
                Problem(
                    "",
                    str(self.index_path),
                    str(self._damaged).removeprefix(f"{self.index_path}: "),
                )
            ]
        problems: builtins.list[Problem] = []
        with index.reading(self.index_path) as conn:
            rows = conn.execute("SELECT * FROM versions ORDER BY name, version").fetchall()
        used_blobs, indexed = set(), set()
        for row in rows:
            ref = f"{row['name']}@{row['version']}"
            indexed.add(ref)
            used_blobs.add(row["weights_sha256"])
            try:
                self._blob_checked(self._card_checked(row))
            except BrickworkError as exc:
                problems.append(
                    Problem(ref, str(self.card_path(row["name"], row["version"])), str(exc))
                )
        cards = sorted(self._card_files())
        unindexed = [p for p in cards if p.stem not in indexed]
        restorable = []
        for path in unindexed:  # their blobs are not orphans: reindex brings them back
            try:
                card = ModelCard.from_json(json.loads(path.read_bytes()), where=str(path))
            except (BrickworkError, OSError, ValueError) as exc:
                problems.append(
                    Problem(
                        "",
                        str(path),
                        f"damaged card without an index row "
                        f"({exc}); reindex cannot restore it: delete it or "
                        "restore it from a backup",
                    )
                )
                continue
            used_blobs.add(card.weights_sha256)
            restorable.append(path)
        if cards and not rows:
            problems.append(
                Problem(
                    "",
                    str(self.index_path),
                    f"the index holds no entries but {len(cards)} cards exist "
                    f"(index deleted or replaced); {_REINDEX}",
                )
            )
        for path in restorable:
            problems.append(Problem("", str(path), f"card without an index row; {_REINDEX}"))
        for path in sorted((self.root / "blobs").glob("*/*")):
            if path.name.endswith(".tmp"):
                problems.append(Problem("", str(path), "unfinished temporary file"))
            elif path.name.removesuffix(".safetensors") not in used_blobs:
                problems.append(Problem("", str(path), "blob no entry uses (orphan)"))
        return problems

    def reindex(self) -> ReindexReport:
        """Rebuild the index from ``cards/``, ``blobs/`` and ``aliases.json`` (after a
        lost, emptied or damaged ``index.sqlite``): every card that parses becomes a
        version again, with its aliases. A damaged index file is moved aside
        (``index.sqlite.damaged-<time>``). Cards are trusted as they are (their digests
        are recorded anew); blobs are checked and problems reported.

        Example:
            >>> import os, tempfile
            >>> from brickwork.modules import And
            >>> reg = Registry(tempfile.mkdtemp())
            >>> _ = reg.put("And.min-v1", And.min("b n"))
            >>> os.remove(reg.index_path)
            >>> reg = Registry(reg.root)
            >>> reg.verify()[0].needs_reindex
            True
            >>> reg.reindex().versions, reg.names()
            (1, ['And.min-v1'])
        """
        with _os_errors("rebuilding the index", self.root):
            if self._damaged is not None:
                stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
                for suffix in ("", "-wal", "-shm"):
                    src = Path(f"{self.index_path}{suffix}")
                    if src.exists():
                        os.replace(src, Path(f"{self.index_path}.damaged-{stamp}{suffix}"))
                log.warning("%s: damaged index moved aside (.damaged-%s)", self.index_path, stamp)
                index.initialise(self.index_path)
                self._damaged = None
            problems: builtins.list[Problem] = []
            aliases, counters, state_problems = self._read_state()
            problems += state_problems
            with index.writing(self.index_path) as conn:
                entries = self._collect_cards(problems)
                if index.has_table(conn, "entries"):
                    conn.execute("DROP TABLE entries")
                conn.execute("DELETE FROM versions")
                conn.execute("DELETE FROM aliases")
                conn.execute("DELETE FROM counters")
                top: dict[str, int] = {}
                for card, card_sha in entries:
                    kind, tag = validate_name(card.name)
                    conn.execute(
                        "INSERT INTO versions VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                        (
                            card.name,
                            card.version,
                            kind,
                            tag,
                            card.weights_sha256,
                            card_sha,
                            card.fingerprint,
                            card.mode,
                            str(card.signature_obj),
                            json.dumps(card.signature, sort_keys=True),
                            card.created,
                        ),
                    )
                    top[card.name] = max(top.get(card.name, 0), card.version)
                    try:
                        self._blob_checked(card)
                    except RegistryError as exc:
                        problems.append(
                            Problem(card.ref, str(self.blob_path(card.weights_sha256)), str(exc))
                        )
                for name in sorted(set(top) | set(counters)):
                    conn.execute(
                        "INSERT INTO counters VALUES (?, ?)",
                        (name, max(top.get(name, 0) + 1, counters.get(name, 0))),
                    )
                have = {(c.name, c.version) for c, _ in entries}
                restored = 0
                for name, mapping in aliases.items():
                    for alias, version in mapping.items():
                        if (name, version) in have:
                            conn.execute(
                                "INSERT INTO aliases VALUES (?, ?, ?)", (name, alias, version)
                            )
                            restored += 1
                        else:
                            problems.append(
                                Problem(
                                    name,
                                    str(self.state_path),
                                    f"alias {alias!r} points at version {version}, "
                                    "which has no card; alias dropped",
                                )
                            )
                self._write_state(conn)
        report = ReindexReport(len(top), len(entries), restored, tuple(problems))
        log.info(
            "%s: reindexed %d versions of %d entries, %d aliases, %d problems",
            self.root,
            report.versions,
            report.names,
            report.aliases,
            len(problems),
        )
        return report

    def _collect_cards(
        self, problems: builtins.list[Problem]
    ) -> builtins.list[tuple[ModelCard, str]]:
        """Every card file that parses, as ``(card, digest of its bytes)``; first-format
        cards (``<name>.json``) are renamed to ``<name>@<N>.json``."""
        found: dict[tuple[str, int], tuple[ModelCard, str]] = {}
        legacy: builtins.list[tuple[Path, ModelCard]] = []
        for path in sorted(self._card_files()):
            stem_name, at, stem_version = path.stem.partition("@")
            try:
                raw = path.read_bytes()
                card = ModelCard.from_json(json.loads(raw), where=str(path))
            except (BrickworkError, ValueError, OSError) as exc:
                problems.append(Problem("", str(path), f"card not restored: {exc}"))
                continue
            if not at:
                legacy.append((path, card))
                continue
            if card.name != stem_name or str(card.version) != stem_version:
                problems.append(
                    Problem(
                        "",
                        str(path),
                        f"card not restored: the file name says "
                        f"{path.stem}, the card says {card.ref}",
                    )
                )
                continue
            found[(card.name, card.version)] = (card, bm.sha256_bytes(raw))
        for path, card in legacy:
            version = card.version
            while (card.name, version) in found or self.card_path(card.name, version).exists():
                version += 1
            card = dataclasses.replace(card, version=version)
            data = card.to_bytes()
            atomic_write_bytes(self.card_path(card.name, version), data)
            path.unlink()
            found[(card.name, version)] = (card, bm.sha256_bytes(data))
        return [found[k] for k in sorted(found)]

    # ----- exchange ------------------------------------------------------------------
    def export(self, ref: str, folder: str | os.PathLike[str]) -> Path:
        """Write ``ref`` as a hub-ready folder: model.safetensors, config.json, README.md.

        ``config.json`` is also what :func:`brickwork.modules.load_module` reads (it
        records the kind's ``module``); ``README.md`` has YAML front matter and a "Use"
        snippet. Files already in ``folder`` are not overwritten.

        Raises:
            RegistryError: unknown ``ref``, a damaged entry, the folder already holds an
                export, or it cannot be written.
        """
        card = self.card(ref)
        data = self._blob_checked(card)
        folder = Path(folder)
        names = ("model.safetensors", "config.json", "README.md")
        if folder.exists() and not folder.is_dir():
            raise RegistryError(f"{folder}: is a file; export needs a folder (new or empty)")
        taken = [n for n in names if os.path.lexists(folder / n)]
        if taken:
            raise RegistryError(
                f"{folder}: holds {taken} already; export into a new or empty "
                "folder (nothing is overwritten)"
            )
        with _os_errors("exporting", folder):
            atomic_write_bytes(folder / "model.safetensors", data)
            atomic_write_json(
                folder / "config.json",
                {
                    "kind": card.kind,
                    "module": card.module,
                    "config": dict(card.config),
                    "signature": dict(card.signature),
                    "signature_text": str(card.signature_obj),
                    "fingerprint": card.fingerprint,
                    "weights_sha256": card.weights_sha256,
                    "brickwork_version": card.brickwork_version,
                    "registry_card": card.to_json(),
                },
            )
            atomic_write_bytes(folder / "README.md", card.readme().encode())
        return folder

    def import_(
        self,
        folder: str | os.PathLike[str],
        name: str | None = None,
        *,
        imports: Sequence[str] = (),
        max_weights_bytes: int = MAX_WEIGHTS_BYTES,
        overwrite: bool | None = None,
    ) -> ModelCard:
        """Register an exported folder (as written by :meth:`export` or
        ``save_pretrained``) as a new version of ``name`` (default: the card's name, else
        ``<kind>.imported``).

        The folder is untrusted: only regular files inside it are read (FIFOs, devices
        and symbolic links out of it are refused at once), ``config.json`` up to 1 MiB,
        the weights up to ``max_weights_bytes``; the config's tensor shapes are compared
        with the safetensors header on the meta device before the module is built;
        pickled weights, digests that do not match, kinds outside the allow-list
        (``imports``) and fingerprints that do not match are refused.
        """
        if overwrite is not None:
            log.warning(
                "Registry.import_(overwrite=...) is deprecated and ignored: an "
                "import adds a version"
            )
        folder = Path(folder)
        with _os_errors("importing", folder):
            return self._import(folder, name, imports=imports, max_weights_bytes=max_weights_bytes)

    def _import(
        self, folder: Path, name: str | None, *, imports: Sequence[str], max_weights_bytes: int
    ) -> ModelCard:
        if not folder.is_dir():
            raise RegistryError(
                f"{folder}: not a folder; `registry import` takes the folder "
                "written by `registry export` / save_pretrained"
            )
        if not os.path.lexists(folder / "model.safetensors"):
            pickles = sorted(p.name for p in folder.iterdir() if p.suffix in _PICKLE_SUFFIXES)
            hint = (
                f"; found {pickles}: pickled weights are refused, convert them to safetensors"
                if pickles
                else ""
            )
            raise RegistryError(f"{folder}: no model.safetensors{hint}")
        raw = _read_regular(folder, "config.json", MAX_CONFIG_BYTES)
        if os.path.lexists(folder / "README.md"):
            _read_regular(folder, "README.md", MAX_README_BYTES)
        meta = bm.parse_json_object(raw, f"{folder}/config.json", error=RegistryError)
        shapes = _header_shapes(folder, "model.safetensors", max_weights_bytes)
        card = self._card_from_meta(folder, meta, name)
        # the config against the header, on the meta device: a hostile config (a huge
        # hidden size) is refused here, before any memory is allocated
        ghost = _build(
            card, imports=imports, device="meta", expect_shapes=shapes, where=str(folder)
        )
        del ghost
        data = _read_regular(folder, "model.safetensors", max_weights_bytes)
        sha = bm.sha256_bytes(data)
        if sha != meta.get("weights_sha256") or sha != card.weights_sha256:
            raise RegistryError(
                f"{folder}/model.safetensors: digest {sha[:12]}… does not match "
                f"config.json's {str(meta.get('weights_sha256'))[:12]}…"
            )
        state = _parse_safetensors(data, f"{folder}/model.safetensors")
        _rebuild(card, state, where=str(folder), imports=imports)
        return self._store(card, data)

    def _card_from_meta(self, folder: Path, meta: dict[str, Any], name: str | None) -> ModelCard:
        rc = meta.get("registry_card")
        module_path = meta.get("module")
        if module_path is not None and not isinstance(module_path, str):
            raise RegistryError(f"{folder}/config.json: 'module' must be a module path (text)")
        if isinstance(rc, dict):
            card = ModelCard.from_json(rc, where=f"{folder}/config.json registry_card")
        else:
            for key in ("kind", "config", "signature", "fingerprint", "weights_sha256"):
                if key not in meta:
                    raise RegistryError(f"{folder}/config.json: field {key!r} is missing")
            if not isinstance(meta["kind"], str):
                raise RegistryError(f"{folder}/config.json: 'kind' must be text")
            card = ModelCard(
                name=name or f"{meta['kind']}.imported",
                kind=meta["kind"],
                config=meta["config"],
                signature=meta["signature"],
                weights_sha256=str(meta["weights_sha256"]),
                fingerprint=str(meta["fingerprint"]),
                mode="imported",
                module=module_path or "",
            )
        changes: dict[str, Any] = {}
        if name is not None and name != card.name:
            validate_name(name)
            changes["name"] = name
        if module_path and not card.module:
            changes["module"] = module_path
        return dataclasses.replace(card, **changes) if changes else card
