"""The registry's SQLite index: one row per version, the aliases, the version counters
(WAL, transactions, busy timeout).

The index is a cache of what ``cards/`` and ``aliases.json`` hold (plus each card's
digest, which is how an edited card is noticed): ``Registry.reindex`` rebuilds it from
them. An index of the first format (one ``entries`` row per name) is migrated by
``Registry`` when it opens it.

Every connection is opened for one operation and closed after it, so a ``Registry`` can
be used from many processes at once; writers take the write lock up front
(``BEGIN IMMEDIATE``) and wait up to ``busy_timeout`` for it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from brickwork.errors import RegistryError

BUSY_TIMEOUT_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    kind TEXT NOT NULL,
    tag TEXT NOT NULL,
    weights_sha256 TEXT NOT NULL,
    card_sha256 TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    mode TEXT NOT NULL,
    signature_text TEXT NOT NULL,
    signature_json TEXT NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE INDEX IF NOT EXISTS versions_blob ON versions(weights_sha256);
CREATE INDEX IF NOT EXISTS versions_kind ON versions(kind);
CREATE TABLE IF NOT EXISTS aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (name, alias)
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    next_version INTEGER NOT NULL
);
"""

COLUMNS = (
    "name",
    "version",
    "kind",
    "tag",
    "weights_sha256",
    "card_sha256",
    "fingerprint",
    "mode",
    "signature_text",
    "signature_json",
    "created",
)


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error as exc:
        raise RegistryError(
            f"{path}: cannot open the registry index ({exc}); check the "
            "folder exists and is writable"
        ) from None
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    return conn


def initialise(path: Path) -> None:
    """Create the index (WAL mode, schema) if needed; safe to call from many processes.

    Switching a new database to WAL needs an exclusive lock, and SQLite answers "database
    is locked" at once, without its busy timeout, when another process is creating or
    switching the same file: that attempt is retried for up to ``BUSY_TIMEOUT_S``.
    """
    deadline, pause = time.monotonic() + BUSY_TIMEOUT_S, 0.02
    while True:
        try:
            return _initialise(path)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise RegistryError(
                    f"{path}: cannot set up the registry index ({exc}); check "
                    "that the folder is writable and the disk not full"
                ) from None
            if time.monotonic() + pause > deadline:
                raise RegistryError(
                    f"{path}: the registry index stayed locked for "
                    f"{BUSY_TIMEOUT_S:.0f} s while being set up; another "
                    "process holds it: retry once it is done"
                ) from None
            time.sleep(pause)
            pause = min(pause * 2, 1.0)


def _initialise(path: Path) -> None:
    conn = _connect(path)
    try:
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() != "wal":
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise RegistryError(
                f"{path}: SQLite refused WAL mode (got {mode!r}); put the "
                "registry on a local file system"
            )
        with _transaction(conn):
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
    except sqlite3.OperationalError:
        raise  # locked (retried), read-only, I/O: initialise says which
    except sqlite3.DatabaseError as exc:
        raise RegistryError(
            f"{path}: the registry index is not a usable SQLite database "
            f"({exc}); run `brickwork registry reindex` (Registry.reindex()) to "
            "rebuild it from the cards and blobs"
        ) from None
    finally:
        conn.close()


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextmanager
def reading(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection for reads (each statement sees a consistent snapshot)."""
    conn = _connect(path)
    try:
        yield conn
    except sqlite3.DatabaseError as exc:
        raise RegistryError(
            f"{path}: index read failed ({exc}); if the index is damaged, "
            "run `brickwork registry reindex`"
        ) from None
    finally:
        conn.close()


@contextmanager
def writing(path: Path) -> Iterator[sqlite3.Connection]:
    """A write transaction: ``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back on error)."""
    conn = _connect(path)
    try:
        with _transaction(conn):
            yield conn
    except sqlite3.OperationalError as exc:
        raise RegistryError(
            f"{path}: index write failed ({exc}); another process held the "
            f"lock longer than {BUSY_TIMEOUT_S:.0f} s, the folder is not "
            "writable or the disk is full"
        ) from None
    except sqlite3.DatabaseError as exc:
        raise RegistryError(
            f"{path}: index write failed ({exc}); if the index is damaged, "
            "run `brickwork registry reindex`"
        ) from None
    finally:
        conn.close()


def has_table(conn: sqlite3.Connection, table: str) -> bool:
    """Whether the database holds ``table``."""
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).fetchone()
    return row is not None
