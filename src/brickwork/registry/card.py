"""The JSON card of a registry entry: what the module is, how it was trained, from what.

Example:
    >>> from brickwork.modules import And
    >>> card = ModelCard.for_module("And.min-v1", And.min("b n"), weights_sha256="0" * 64)
    >>> card.kind, card.mode
    ('And', 'direct')
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

    def __post_init__(self) -> None:
        kind, _ = validate_name(self.name)
        if not _is_digest(self.weights_sha256):
            raise RegistryError(f"card {self.name!r}: weights_sha256 must be 64 hex digits, "
                                f"got {self.weights_sha256!r}")
        if not isinstance(self.config, Mapping) or not isinstance(self.signature, Mapping):
            raise RegistryError(f"card {self.name!r}: config and signature must be JSON objects")

    @classmethod
    def for_module(cls, name: str, module: Module, *, weights_sha256: str, mode: str = "direct",
                   hyperparameters: Mapping[str, Any] | None = None,
                   metrics: Mapping[str, Any] | None = None,
                   lineage: Mapping[str, Any] | None = None, data_digest: str = "") -> ModelCard:
        """The card of ``module`` about to be stored under ``name``."""
        return cls(name=name, kind=module.kind, config=module.config,
                   signature=module.signature.to_json(), weights_sha256=weights_sha256,
                   fingerprint=module.fingerprint(), mode=mode,
                   hyperparameters=dict(hyperparameters or {}), metrics=dict(metrics or {}),
                   lineage=dict(lineage or {}), data_digest=data_digest,
                   created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    @property
    def signature_obj(self) -> Signature:
        """The signature as a :class:`Signature`."""
        return Signature.from_json(self.signature)

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

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
        missing = sorted(k for k in ("name", "kind", "config", "signature", "weights_sha256",
                                     "fingerprint") if k not in data)
        if unknown or missing:
            raise RegistryError(f"{where}: unknown fields {unknown}, missing fields {missing}; "
                                "the card was edited or written by another tool")
        try:
            return cls(**dict(data))
        except TypeError as exc:
            raise RegistryError(f"{where}: {exc}") from None

    def readme(self) -> str:
        """A Markdown model card (the ``README.md`` of an exported entry)."""
        sig = self.signature_obj
        lines = [f"# {self.name}", "", f"A brickwork module of kind `{self.kind}`.", "",
                 "## Signature", "", f"`{sig}`", "", "## Training", "",
                 f"- mode: {self.mode}", f"- data digest: `{self.data_digest or 'n/a'}`",
                 f"- created: {self.created}", f"- brickwork version: {self.brickwork_version}",
                 f"- weights sha256: `{self.weights_sha256}`",
                 f"- fingerprint: `{self.fingerprint}`", "", "## Hyperparameters", ""]
        lines += [f"- {k}: {v}" for k, v in sorted(self.hyperparameters.items())] or ["- (none)"]
        lines += ["", "## Metrics", ""]
        lines += [f"- {k}: {v}" for k, v in sorted(self.metrics.items())] or ["- (none)"]
        lines += ["", "## Lineage", ""]
        lines += [f"- {k}: {v}" for k, v in sorted(self.lineage.items())] or ["- (none)"]
        lines += ["", "## Use", "", "```python", "import brickwork.registry as br",
                  f"module = br.Registry(PATH).load({self.name!r})", "```", ""]
        return "\n".join(lines)
