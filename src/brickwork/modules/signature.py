"""A module's signature: its input and output ports with their types."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from brickwork.types import AxisBindings, NeuralType, type_from_json


def name_mismatch(
    declared: Iterable[str],
    given: Iterable[str],
    *,
    missing: str = "missing",
    unknown: str = "unknown",
) -> str:
    """How the names ``given`` differ from the names ``declared`` (ports, parameters,
    fields), for an error message; ``""`` when they are the same names.

    Example:
        >>> name_mismatch(["a", "b"], ["b", "c"])
        "missing ['a'], unknown ['c']"
        >>> name_mismatch(["a"], ["a"])
        ''
    """
    declared, given = list(declared), list(given)
    absent = [n for n in declared if n not in given]
    extra = [n for n in given if n not in declared]
    return f"{missing} {absent}, {unknown} {extra}" if absent or extra else ""


@dataclass(frozen=True)
class Signature:
    """Named, typed input and output ports.

    The string form is stable and serialisable:

    Example:
        >>> from brickwork.types import Features, SoftMask
        >>> s = Signature({"features": Features("b c h w")}, {"mask": SoftMask("b 1 h w")})
        >>> str(s)
        "(features: Features['b c h w']) -> (mask: SoftMask['b 1 h w'])"
        >>> Signature.from_json(s.to_json()) == s
        True
    """

    inputs: Mapping[str, NeuralType] = field(default_factory=dict)
    outputs: Mapping[str, NeuralType] = field(default_factory=dict)

    def __str__(self) -> str:
        ins = ", ".join(f"{k}: {v!r}" for k, v in self.inputs.items())
        outs = ", ".join(f"{k}: {v!r}" for k, v in self.outputs.items())
        return f"({ins}) -> ({outs})"

    def __hash__(self) -> int:
        return hash(self.digest_text())

    def __eq__(self, other: object) -> bool:
        # ports are matched by name, so the order they were declared in does not matter
        return isinstance(other, Signature) and self.digest_text() == other.digest_text()

    def to_json(self) -> dict[str, Any]:
        return {
            "inputs": {k: v.to_json() for k, v in self.inputs.items()},
            "outputs": {k: v.to_json() for k, v in self.outputs.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Signature:
        return cls(
            {k: type_from_json(v) for k, v in data.get("inputs", {}).items()},
            {k: type_from_json(v) for k, v in data.get("outputs", {}).items()},
        )

    def digest_text(self) -> str:
        """Canonical JSON text (used in fingerprints)."""
        return json.dumps(self.to_json(), sort_keys=True)

    def accepts(
        self,
        inputs: Mapping[str, NeuralType] | None = None,
        outputs: Mapping[str, NeuralType] | None = None,
    ) -> bool:
        """Whether a module with this signature can stand where these ports are wanted.

        A wanted input must be able to feed this module's input of the same name (or of
        the only input, when one is wanted and one is declared); this module's output
        must be able to feed the wanted output.
        """
        bindings = AxisBindings()
        for wanted, mine, feeding_mine in (
            (inputs or {}, self.inputs, True),
            (outputs or {}, self.outputs, False),
        ):
            for name, t in wanted.items():
                port = mine.get(name)
                if port is None and len(wanted) == 1 and len(mine) == 1:
                    port = next(iter(mine.values()))
                if port is None:
                    return False
                src, dst = (t, port) if feeding_mine else (port, t)
                if not src.can_feed(dst, bindings):
                    return False
        return True
