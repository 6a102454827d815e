"""The JSON card of a registry entry: what the module is, how it was trained, from what.

Example:
    >>> from brickwork.modules import And
    >>> card = ModelCard.for_module("And.min-v1", And.min("b n"), weights_sha256="0" * 64)
    >>> card.kind, card.mode, card.ref
    ('And', 'direct', 'And.min-v1@1')
    >>> ModelCard.from_json(card.to_json()) == card
    True
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, final

from brickwork._version import __version__
from brickwork.errors import RegistryError
from brickwork.modules import Module, Signature
from brickwork.registry.names import validate_name

CARD_FORMAT = 1
_HEX = set("0123456789abcdef")


def _is_digest(text: object) -> bool:
    return isinstance(text, str) and len(text) == 64 and set(text) <= _HEX


@final
@dataclass(frozen=True)
class ModelCard:
    """Everything the registry records about one entry (besides the weights blob).

    Attributes:
        name: ``kind.tag``.
        kind: the module kind it is rebuilt with.
        config: the module's constructor config.
        signature: the module's ports (JSON form of :class:`Signature`).
        weights_sha256: digest of the safetensors blob (the blob's address).
        fingerprint: the module's fingerprint (kind, config, signature, weights).
        mode: how it was trained (``direct``, ``cached``, ``surrogate``, ``joint``, ...).
        hyperparameters: the chosen hyperparameters.
        metrics: final metrics.
        lineage: fingerprints of upstream modules and digests of intermediate datasets.
        data_digest: digest of the training data.
        created: creation time (UTC, ISO 8601).
        brickwork_version: package version that wrote it.
        version: the version number within ``name`` (1, 2, ...; given by the registry).
        module: importable path of the module that defines the kind (what loading
            imports, within the allow-list; ``""`` when unknown, e.g. older cards).
    """

    name: str
    kind: str
    config: Mapping[str, Any]
    signature: Mapping[str, Any]
    weights_sha256: str
    fingerprint: str
    mode: str = "direct"
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    lineage: Mapping[str, Any] = field(default_factory=dict)
    data_digest: str = ""
    created: str = ""
    brickwork_version: str = __version__
    format: int = CARD_FORMAT
    version: int = 1
    module: str = ""

    def __post_init__(self) -> None:
        kind, _ = validate_name(self.name)
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise RegistryError(
                f"card {self.name!r}: version must be an integer >= 1, got {self.version!r}"
            )
        if not isinstance(self.module, str):
            raise RegistryError(
                f"card {self.name!r}: module must be a module path (text), got "
                f"{type(self.module).__name__}"
            )
        if not _is_digest(self.weights_sha256):
            raise RegistryError(
                f"card {self.name!r}: weights_sha256 must be 64 hex digits, "
                f"got {self.weights_sha256!r}"
            )
        if not isinstance(self.config, Mapping) or not isinstance(self.signature, Mapping):
            raise RegistryError(f"card {self.name!r}: config and signature must be JSON objects")

    @classmethod
    def for_module(
        cls,
        name: str,
        module: Module,
        *,
        weights_sha256: str,
        mode: str = "direct",
        hyperparameters: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        lineage: Mapping[str, Any] | None = None,
        data_digest: str = "",
        module_path: str | None = None,
    ) -> ModelCard:
        """The card of ``module`` about to be stored under ``name`` (version 1 until the
        registry numbers it)."""
        return cls(
            name=name,
            kind=module.kind,
            config=module.config,
            signature=module.signature.to_json(),
            weights_sha256=weights_sha256,
            fingerprint=module.fingerprint(),
            mode=mode,
            hyperparameters=dict(hyperparameters or {}),
            metrics=dict(metrics or {}),
            lineage=dict(lineage or {}),
            data_digest=data_digest,
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            module=module_path if module_path is not None else kind_module_path(module),
        )

    @property
    def ref(self) -> str:
        """``kind.tag@N``: the reference to exactly this version."""
        return f"{self.name}@{self.version}"

    def same_content(self, other: ModelCard) -> bool:
        """Whether two cards record the same thing (all but version, creation time and
        package version)."""
        skip = {"version", "created", "brickwork_version"}
        mine = {k: v for k, v in self.to_json().items() if k not in skip}
        theirs = {k: v for k, v in other.to_json().items() if k not in skip}
        return mine == theirs

    @property
    def signature_obj(self) -> Signature:
        """The signature as a :class:`Signature`."""
        return Signature.from_json(self.signature)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(json.dumps(asdict(self)))
        return data

    def to_bytes(self) -> bytes:
        """Canonical bytes (what the index's card digest covers)."""
        return (json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: Any, where: str = "card") -> ModelCard:
        """Parse a card, refusing unknown or missing fields."""
        if not isinstance(data, Mapping):
            raise RegistryError(f"{where}: expected a JSON object, found {type(data).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        missing = sorted(
            k
            for k in ("name", "kind", "config", "signature", "weights_sha256", "fingerprint")
            if k not in data
        )
        if unknown or missing:
            raise RegistryError(
                f"{where}: unknown fields {unknown}, missing fields {missing}; "
                "the card was edited or written by another tool"
            )
        try:
            return cls(**dict(data))
        except TypeError as exc:
            raise RegistryError(f"{where}: {exc}") from None

    def readme(self) -> str:
        """A Markdown model card (the ``README.md`` of an exported entry): YAML front
        matter (``library_name: brickwork``, tags, license, signature, metrics, lineage)
        and a "Use" snippet that works in a fresh interpreter
        (:func:`brickwork.modules.model_card_markdown`)."""
        from brickwork.modules import model_card_markdown

        extra = {
            "registry_ref": self.ref,
            "version": self.version,
            "mode": self.mode,
            "data_digest": self.data_digest,
            "created": self.created,
            "brickwork_version": self.brickwork_version,
            "weights_sha256": self.weights_sha256,
            "fingerprint": self.fingerprint,
        }
        return model_card_markdown(
            name=self.name,
            kind=self.kind,
            module_path=self.module or "brickwork",
            signature_text=str(self.signature_obj),
            metrics=dict(self.metrics),
            lineage=dict(self.lineage),
            hyperparameters=dict(self.hyperparameters),
            tags=(self.kind,),
            extra={k: v for k, v in extra.items() if v != ""},
        )


def kind_module_path(module: Module) -> str:
    """The importable module path that defines ``module``'s kind (what ``config.json``
    records as ``"module"``).

    Example:
        >>> from brickwork.modules import And
        >>> kind_module_path(And.min("b n"))
        'brickwork.modules.ops'
    """
    from brickwork.modules import kind_module_path as path_of

    return str(path_of(module))
