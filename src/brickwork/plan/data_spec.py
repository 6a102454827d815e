"""``DataSpec``: what the data provides to a layout family.

Example:
    >>> spec = DataSpec(inputs={"features", "question"}, targets={"answer"})
    >>> spec.provides("features"), spec.supervises("answer")
    (True, True)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, final

from brickwork.errors import PlanError


@final
@dataclass(frozen=True)
class DataSpec:
    """Which layout inputs come straight from the dataset and which outputs have targets.

    Attributes:
        inputs: external input names the dataset provides (decoupled inputs).
        targets: layout output names the dataset has targets for.
        module_targets: module name -> target column, for modules the data supervises
            directly (e.g. an image encoder trained on per-cell attribute maps).
        layout_column: the column holding each sample's layout index into the family.
    """

    inputs: frozenset[str] = field(default_factory=frozenset)
    targets: frozenset[str] = field(default_factory=frozenset)
    module_targets: Mapping[str, str] = field(default_factory=dict)
    layout_column: str = "layout"

    def __init__(
        self,
        inputs: Iterable[str] = (),
        targets: Iterable[str] = (),
        module_targets: Mapping[str, str] | None = None,
        layout_column: str = "layout",
    ):
        for name, value in (("inputs", inputs), ("targets", targets)):
            if isinstance(value, str):
                raise PlanError(
                    f"DataSpec.{name}: expected a collection of names, got the string "
                    f"{value!r}; write {{{value!r}}}"
                )
        object.__setattr__(self, "inputs", frozenset(inputs))
        object.__setattr__(self, "targets", frozenset(targets))
        object.__setattr__(self, "module_targets", dict(module_targets or {}))
        object.__setattr__(self, "layout_column", layout_column)

    def provides(self, name: str) -> bool:
        return name in self.inputs

    def supervises(self, output: str) -> bool:
        return output in self.targets

    def to_json(self) -> dict[str, Any]:
        return {
            "inputs": sorted(self.inputs),
            "targets": sorted(self.targets),
            "module_targets": dict(self.module_targets),
            "layout_column": self.layout_column,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DataSpec:
        if not isinstance(data, Mapping):
            raise PlanError(
                f"data spec: expected an object with 'inputs' and 'targets', got "
                f"{type(data).__name__}"
            )
        return cls(
            data.get("inputs", ()),
            data.get("targets", ()),
            data.get("module_targets") or {},
            data.get("layout_column", "layout"),
        )
