"""``Registry``: trained modules on disk, found by name or by signature (thesis §5.3).

Layout of the folder::

    blobs/ab/abcdef….safetensors   content-addressed weights (sha256 of the bytes)
    cards/<kind.tag>.json          the entry's card (JSON, see ModelCard)
    index.sqlite                   one row per entry, with the card's digest (WAL)

Loading checks the card against the digest in the index (an edited card is refused),
the blob against the card's digest (a truncated or bit-flipped blob is refused), parses
the blob as safetensors (never unpickles anything) and checks the rebuilt module's
fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, final

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from brickwork.errors import BrickworkError, LoadError, RegistryError
from brickwork.modules import Module, Signature, atomic_write_bytes, atomic_write_json, build
from brickwork.registry import index
from brickwork.registry.card import ModelCard
from brickwork.registry.location import default_registry_path
from brickwork.registry.names import validate_name
from brickwork.types import NeuralType

_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _weights_bytes(module: torch.nn.Module) -> bytes:
    state = {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
    return st_save(state, metadata={"format": "pt"})


def _parse_safetensors(data: bytes, where: str) -> dict[str, torch.Tensor]:
    if data[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05") or data[:2] == b"PK":
        raise RegistryError(f"{where}: the weights are a pickle/zip payload, not safetensors; "
                            "brickwork never unpickles. Convert the weights to safetensors")
    try:
        return st_load(data)
    except Exception as exc:  # safetensors raises its own error types
        raise RegistryError(f"{where}: not a valid safetensors file ({exc})") from None


@final
@dataclass(frozen=True)
class Problem:
    """One finding of :meth:`Registry.verify`.

    Attributes:
        name: the entry (or ``""`` for an orphan file).
        path: the file concerned.
        what: what is wrong.
    """

    name: str
    path: str
    what: str

    def __str__(self) -> str:
        return f"{self.name or '(orphan)'}: {self.path}: {self.what}"


@final
class Registry:
    """A local registry of trained modules.

    Args:
        path: the registry folder (created); ``None`` uses ``$BRICKWORK_REGISTRY`` or
            the user data dir.

    Example:
        >>> import tempfile, torch
        >>> from brickwork.modules import And
        >>> from brickwork.types import SoftMask
        >>> reg = Registry(tempfile.mkdtemp())
        >>> card = reg.put("And.min-v1", And.min("b n"), metrics={"acc": 1.0})
        >>> [c.name for c in reg.search(outputs={"out": SoftMask("b n")})]
        ['And.min-v1']
        >>> reg.load("And.min-v1").mode
        'min'
        >>> reg.verify()
        []
    """

    def __init__(self, path: str | os.PathLike[str] | None = None):
        self.root = Path(path).expanduser() if path is not None else default_registry_path()
        try:
            (self.root / "blobs").mkdir(parents=True, exist_ok=True)
            (self.root / "cards").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RegistryError(f"{self.root}: cannot create the registry folder ({exc}); "
                                "pass --registry PATH or set BRICKWORK_REGISTRY") from None
        self.index_path = self.root / "index.sqlite"
        index.initialise(self.index_path)

    def __repr__(self) -> str:
        return f"Registry({str(self.root)!r})"

    # ----- paths ---------------------------------------------------------------------
    def blob_path(self, sha256: str) -> Path:
        """Where the blob with this digest lives."""
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise RegistryError(f"blob digest {sha256!r} is not 64 lowercase hex digits")
        return self.root / "blobs" / sha256[:2] / f"{sha256}.safetensors"

    def card_path(self, name: str) -> Path:
        """Where the card of ``name`` lives (the name is validated first)."""
        validate_name(name)
        return self.root / "cards" / f"{name}.json"

    # ----- writing -------------------------------------------------------------------
    def put(self, name: str, module: Module, *, mode: str = "direct",
            hyperparameters: Mapping[str, Any] | None = None,
            metrics: Mapping[str, Any] | None = None, lineage: Mapping[str, Any] | None = None,
            data_digest: str = "", overwrite: bool = False) -> ModelCard:
        """Store ``module`` under ``name`` (``kind.tag``); returns its card.

        Raises:
            RegistryError: invalid name, or the name exists and ``overwrite`` is False.
        """
        kind, tag = validate_name(name)
        if not isinstance(module, Module):
            raise RegistryError(f"registry entry {name!r}: expected a brickwork Module, got "
                                f"{type(module).__name__}; wrap it with brickwork.typed(...)")
        data = _weights_bytes(module)
        sha = _sha256(data)
        card = ModelCard.for_module(name, module, weights_sha256=sha, mode=mode,
                                    hyperparameters=hyperparameters, metrics=metrics,
                                    lineage=lineage, data_digest=data_digest)
        return self._store(card, data, overwrite=overwrite)

    def _store(self, card: ModelCard, data: bytes, *, overwrite: bool) -> ModelCard:
        blob = self.blob_path(card.weights_sha256)
        if not (blob.exists() and blob.stat().st_size == len(data)):
            atomic_write_bytes(blob, data)
        card_bytes = card.to_bytes()
        kind, tag = validate_name(card.name)
        with index.writing(self.index_path) as conn:
            row = conn.execute("SELECT weights_sha256 FROM entries WHERE name = ?",
                               (card.name,)).fetchone()
            if row is not None and not overwrite:
                raise RegistryError(f"registry entry {card.name!r} exists already; choose "
                                    "another tag or pass overwrite=True (--force)")
            atomic_write_bytes(self.card_path(card.name), card_bytes)
            conn.execute(
                "INSERT OR REPLACE INTO entries VALUES (?,?,?,?,?,?,?,?,?,?)",
                (card.name, kind, tag, card.weights_sha256, _sha256(card_bytes),
                 card.fingerprint, card.mode, str(card.signature_obj),
                 json.dumps(card.signature, sort_keys=True), card.created))
            if row is not None and row["weights_sha256"] != card.weights_sha256:
                self._drop_blob_if_unused(conn, row["weights_sha256"])
        return card

    def _drop_blob_if_unused(self, conn: Any, sha: str) -> None:
        used = conn.execute("SELECT COUNT(*) FROM entries WHERE weights_sha256 = ?",
                            (sha,)).fetchone()[0]
        if not used:
            self.blob_path(sha).unlink(missing_ok=True)

    def remove(self, name: str) -> None:
        """Delete an entry (its blob too, when no other entry uses it)."""
        validate_name(name)
        with index.writing(self.index_path) as conn:
            row = conn.execute("SELECT weights_sha256 FROM entries WHERE name = ?",
                               (name,)).fetchone()
            if row is None:
                raise RegistryError(self._unknown(name))
            conn.execute("DELETE FROM entries WHERE name = ?", (name,))
            self.card_path(name).unlink(missing_ok=True)
            self._drop_blob_if_unused(conn, row["weights_sha256"])

    # ----- reading -------------------------------------------------------------------
    def _unknown(self, name: str) -> str:
        return (f"no registry entry {name!r} in {self.root}; `brickwork registry list` shows "
                "the entries")

    def names(self) -> list[str]:
        """Every entry name, sorted."""
        with index.reading(self.index_path) as conn:
            return [r[0] for r in conn.execute("SELECT name FROM entries ORDER BY name")]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        with index.reading(self.index_path) as conn:
            return conn.execute("SELECT 1 FROM entries WHERE name = ?", (name,)).fetchone() is not None

    def __len__(self) -> int:
        with index.reading(self.index_path) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    def _row(self, name: str) -> Any:
        validate_name(name)
        with index.reading(self.index_path) as conn:
            row = conn.execute("SELECT * FROM entries WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise RegistryError(self._unknown(name))
        return row

    def card(self, name: str) -> ModelCard:
        """The card of ``name``, checked against the digest in the index."""
        return self._card_checked(self._row(name))

    def _card_checked(self, row: Any) -> ModelCard:
        name = row["name"]
        path = self.card_path(name)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise RegistryError(f"{path}: card of {name!r} is missing; remove the entry and "
                                "register the module again") from None
        if _sha256(raw) != row["card_sha256"]:
            raise RegistryError(f"{path}: card of {name!r} does not match the digest in the "
                                "index; it was edited or damaged after registration. Remove and "
                                "re-register the entry")
        try:
            card = ModelCard.from_json(json.loads(raw), where=str(path))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RegistryError(f"{path}: not valid JSON ({exc})") from None
        if card.name != name or card.weights_sha256 != row["weights_sha256"]:
            raise RegistryError(f"{path}: card names {card.name!r} / blob "
                                f"{card.weights_sha256[:12]}…, the index says {name!r} / "
                                f"{row['weights_sha256'][:12]}…")
        return card

    def weights(self, name: str) -> dict[str, torch.Tensor]:
        """The entry's weights (digest-checked safetensors)."""
        card = self.card(name)
        return self._weights_checked(card)

    def _weights_checked(self, card: ModelCard) -> dict[str, torch.Tensor]:
        path = self.blob_path(card.weights_sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise RegistryError(f"{path}: weights blob of {card.name!r} is missing") from None
        digest = _sha256(data)
        if digest != card.weights_sha256:
            raise RegistryError(f"{path}: weights blob of {card.name!r} has digest "
                                f"{digest[:12]}…, expected {card.weights_sha256[:12]}…; it is "
                                "truncated or altered. Remove the entry and register it again")
        return _parse_safetensors(data, str(path))

    def load(self, name: str) -> Module:
        """Rebuild the module stored under ``name`` (every digest checked)."""
        card = self.card(name)
        state = self._weights_checked(card)
        return _rebuild(card, state, where=f"registry entry {name!r}")

    def cards(self) -> list[ModelCard]:
        """Every entry's card (entries whose card fails its check are skipped; see verify)."""
        out = []
        with index.reading(self.index_path) as conn:
            rows = conn.execute("SELECT * FROM entries ORDER BY name").fetchall()
        for row in rows:
            try:
                out.append(self._card_checked(row))
            except RegistryError:
                continue
        return out

    def search(self, inputs: Mapping[str, NeuralType] | None = None,
               outputs: Mapping[str, NeuralType] | None = None, *,
               kind: str | None = None) -> list[ModelCard]:
        """Entries whose module can stand where these ports are wanted (subtype-aware).

        A wanted input type must be able to feed the entry's input; the entry's output
        must be able to feed the wanted output type (``Signature.accepts``).
        """
        found = []
        with index.reading(self.index_path) as conn:
            rows = conn.execute("SELECT name, kind, signature_json FROM entries ORDER BY name").fetchall()
        for row in rows:
            if kind is not None and row["kind"] != kind:
                continue
            try:
                sig = Signature.from_json(json.loads(row["signature_json"]))
            except (BrickworkError, ValueError, KeyError):
                continue
            if sig.accepts(inputs=inputs, outputs=outputs):
                found.append(row["name"])
        return [self.card(n) for n in found]

    # ----- integrity -----------------------------------------------------------------
    def verify(self) -> list[Problem]:
        """Re-hash every card and blob; returns every problem found (empty when clean)."""
        problems: list[Problem] = []
        with index.reading(self.index_path) as conn:
            rows = conn.execute("SELECT * FROM entries ORDER BY name").fetchall()
        used_blobs, named = set(), set()
        for row in rows:
            name = row["name"]
            named.add(name)
            used_blobs.add(row["weights_sha256"])
            try:
                card = self._card_checked(row)
                self._weights_checked(card)
            except BrickworkError as exc:
                problems.append(Problem(name, str(self.card_path(name)), str(exc)))
        for path in sorted((self.root / "cards").glob("*.json")):
            if path.stem not in named:
                problems.append(Problem("", str(path), "card without an index row (orphan)"))
        for path in sorted((self.root / "blobs").glob("*/*")):
            if path.name.endswith(".tmp"):
                problems.append(Problem("", str(path), "unfinished temporary file"))
            elif path.name.removesuffix(".safetensors") not in used_blobs:
                problems.append(Problem("", str(path), "blob no entry uses (orphan)"))
        return problems

    # ----- exchange ------------------------------------------------------------------
    def export(self, name: str, folder: str | os.PathLike[str]) -> Path:
        """Write ``name`` as a hub-ready folder: model.safetensors, config.json, README.md.

        ``config.json`` is also what :func:`brickwork.modules.load_module` reads.
        """
        card = self.card(name)
        state_data = self.blob_path(card.weights_sha256).read_bytes()
        self._weights_checked(card)
        folder = Path(folder)
        atomic_write_bytes(folder / "model.safetensors", state_data)
        atomic_write_json(folder / "config.json", {
            "kind": card.kind, "config": dict(card.config), "signature": dict(card.signature),
            "signature_text": str(card.signature_obj), "fingerprint": card.fingerprint,
            "weights_sha256": card.weights_sha256,
            "brickwork_version": card.brickwork_version, "registry_card": card.to_json()})
        atomic_write_bytes(folder / "README.md", card.readme().encode())
        return folder

    def import_(self, folder: str | os.PathLike[str], name: str | None = None, *,
                overwrite: bool = False) -> ModelCard:
        """Register an exported folder (as written by :meth:`export`).

        Refuses pickled weights, digests that do not match, unknown kinds and
        fingerprints that do not match the rebuilt module.
        """
        folder = Path(folder)
        if not (folder / "model.safetensors").exists():
            pickles = [p.name for p in folder.glob("*") if p.suffix in _PICKLE_SUFFIXES]
            hint = (f"; found {pickles}: pickled weights are refused, convert them to "
                    "safetensors" if pickles else "")
            raise RegistryError(f"{folder}: no model.safetensors{hint}")
        try:
            meta = json.loads((folder / "config.json").read_text())
        except FileNotFoundError:
            raise RegistryError(f"{folder}: no config.json") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RegistryError(f"{folder}/config.json: not valid JSON ({exc})") from None
        if not isinstance(meta, dict):
            raise RegistryError(f"{folder}/config.json: expected a JSON object")
        data = (folder / "model.safetensors").read_bytes()
        sha = _sha256(data)
        if sha != meta.get("weights_sha256"):
            raise RegistryError(f"{folder}/model.safetensors: digest {sha[:12]}… does not match "
                                f"config.json's {str(meta.get('weights_sha256'))[:12]}…")
        state = _parse_safetensors(data, f"{folder}/model.safetensors")
        rc = meta.get("registry_card")
        if isinstance(rc, dict):
            card = ModelCard.from_json(rc, where=f"{folder}/config.json registry_card")
        else:
            for key in ("kind", "config", "signature", "fingerprint"):
                if key not in meta:
                    raise RegistryError(f"{folder}/config.json: field {key!r} is missing")
            card = ModelCard(name=name or f"{meta['kind']}.imported", kind=meta["kind"],
                             config=meta["config"], signature=meta["signature"],
                             weights_sha256=sha, fingerprint=meta["fingerprint"], mode="imported")
        if card.weights_sha256 != sha:
            raise RegistryError(f"{folder}: card digest does not match model.safetensors")
        if name is not None and name != card.name:
            card = ModelCard.from_json({**card.to_json(), "name": name})
        _rebuild(card, state, where=str(folder))
        return self._store(card, data, overwrite=overwrite)


def _rebuild(card: ModelCard, state: Mapping[str, torch.Tensor], where: str) -> Module:
    try:
        module = build(card.kind, dict(card.config))
    except LoadError as exc:
        raise RegistryError(f"{where}: {exc}") from None
    try:
        module.load_state_dict(dict(state), strict=True)
    except RuntimeError as exc:
        raise RegistryError(f"{where}: weights do not fit kind {card.kind!r}: {exc}") from None
    if module.signature != card.signature_obj:
        raise RegistryError(f"{where}: rebuilt signature {module.signature} differs from the "
                            f"card's {card.signature_obj}")
    if module.fingerprint() != card.fingerprint:
        raise RegistryError(f"{where}: fingerprint of the rebuilt module differs from the "
                            "card's; the card or the kind's code changed")
    return module


