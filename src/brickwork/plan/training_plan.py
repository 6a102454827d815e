"""``TrainingPlan``: stages, the mode of every module, the intermediate datasets to build.

Modes:
    ``direct``     decoupled input, direct supervision: train on the dataset.
    ``cached``     dependent input, direct supervision: train on an intermediate dataset.
    ``surrogate``  indirect supervision, or a codependent merge under the ``surrogate``
                   policy: train through a surrogate gradient module towards the nearest
                   target (inputs from the dataset or an intermediate dataset).
    ``joint``      a codependent group under the ``joint`` policy, or a dependency cycle,
                   with the not yet trained modules downstream of it: train them together.
    ``reuse``      a registry entry with a matching signature is used as is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, final

MODES = ("direct", "cached", "surrogate", "joint", "reuse")


@final
@dataclass(frozen=True)
class ModulePlan:
    """How one module trains.

    Attributes:
        name: module name (``find[red]``); ``kind``: its kind in the layouts.
        decoupled: every input comes from the dataset (else dependent input).
        direct: a loss applies to its output (else indirect supervision).
        codependent: its output meets another module's through a non-additive merge.
        mode: see the module docstring; ``stage``: 0 for reused, else 1, 2, ...
        group: the joint group (module names) when ``mode == "joint"``.
        upstream: trainable modules its inputs depend on.
        targets: supervised outputs (direct) or the nearest ones (surrogate).
        context: external inputs read next to its output downstream (surrogate context).
        reads: the intermediate dataset it trains from, if any.
        registry_entry: the entry reused, if any.
        uses: number of applications in the family.
        module_target: the data column supervising the module by name
            (``DataSpec.module_targets``), if any.
        policy: for a codependent module, how it trains: ``"surrogate"`` or ``"joint"``.
    """

    name: str
    kind: str
    decoupled: bool
    direct: bool
    codependent: bool
    mode: str
    stage: int
    group: tuple[str, ...] = ()
    upstream: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    context: tuple[str, ...] = ()
    reads: str | None = None
    registry_entry: str | None = None
    uses: int = 0
    module_target: str | None = None
    policy: str = ""

    @property
    def dependent(self) -> bool:
        return not self.decoupled

    @property
    def indirect(self) -> bool:
        return not self.direct


@final
@dataclass(frozen=True)
class IntermediatePlan:
    """An intermediate dataset to record before a stage (thesis §4.1).

    Attributes:
        name: ``inputs[<consumer>]``.
        consumer: the module that trains from it.
        upstream: the trained modules whose outputs it records (its cache key).
        ports: the consumer's input ports fed by those modules.
        before_stage: the stage that needs it.
    """

    name: str
    consumer: str
    upstream: tuple[str, ...]
    ports: tuple[str, ...]
    before_stage: int


@final
@dataclass(frozen=True)
class TrainingPlan:
    """The result of :func:`brickwork.plan.make_plan`.

    Attributes:
        modules: every trainable module's plan, by name (parameter-free ops are left out).
        stages: module names per stage (index 0 = stage 1); modules of a stage train in
            parallel.
        intermediates: datasets to build between stages.
        groups: joint groups.
        data: the data spec's JSON.
        notes: remarks made while planning.
    """

    modules: Mapping[str, ModulePlan]
    stages: Sequence[tuple[str, ...]]
    intermediates: Sequence[IntermediatePlan] = ()
    groups: Sequence[tuple[str, ...]] = ()
    data: Mapping[str, Any] = field(default_factory=dict)
    notes: Sequence[str] = ()

    def module(self, name: str) -> ModulePlan:
        from brickwork.errors import PlanError

        try:
            return self.modules[name]
        except KeyError:
            raise PlanError(
                f"the plan has no module {name!r}; modules: {sorted(self.modules)}"
            ) from None

    def by_kind(self) -> dict[str, dict[str, Any]]:
        """Classification per kind (Table 4.1 lists kinds): flags over all its modules."""
        out: dict[str, dict[str, Any]] = {}
        for m in self.modules.values():
            row = out.setdefault(
                m.kind,
                {
                    "decoupled": False,
                    "dependent": False,
                    "direct": False,
                    "indirect": False,
                    "codependent": False,
                    "modes": set(),
                    "stages": set(),
                    "modules": 0,
                },
            )
            row["decoupled"] |= m.decoupled
            row["dependent"] |= m.dependent
            row["direct"] |= m.direct
            row["indirect"] |= m.indirect
            row["codependent"] |= m.codependent
            row["modes"].add(m.mode)
            row["stages"].add(m.stage)
            row["modules"] += 1
        for row in out.values():
            row["modes"] = sorted(row["modes"])
            row["stages"] = sorted(row["stages"])
        return out

    def table(self, by: str = "module") -> str:
        """A text table like the thesis's Table 4.1 (``by="module"`` or ``"kind"``)."""

        def tick(flag: bool) -> str:
            return "✓" if flag else ""

        header = (
            f"{'module' if by == 'module' else 'kind':<20} {'Decoupled':^9} {'Dependent':^9} "
            f"{'Direct':^6} {'Indirect':^8} {'Codep.':^6}  {'mode':<10} stage"
        )
        lines = [
            f"{'':<20} {'------ Input ------':^19} {'- Supervision -':^15}",
            header,
            "-" * len(header),
        ]
        if by == "kind":
            for kind, r in self.by_kind().items():
                lines.append(
                    f"{kind:<20} {tick(r['decoupled']):^9} {tick(r['dependent']):^9} "
                    f"{tick(r['direct']):^6} {tick(r['indirect']):^8} "
                    f"{tick(r['codependent']):^6}  {'/'.join(r['modes']):<10} "
                    f"{','.join(map(str, r['stages']))}"
                )
        else:
            for m in sorted(self.modules.values(), key=lambda m: (m.stage, m.name)):
                lines.append(
                    f"{m.name:<20} {tick(m.decoupled):^9} {tick(m.dependent):^9} "
                    f"{tick(m.direct):^6} {tick(m.indirect):^8} {tick(m.codependent):^6}  "
                    f"{m.mode:<10} {m.stage}"
                )
        lines.append("")
        for i, stage in enumerate(self.stages, 1):
            before = [d.name for d in self.intermediates if d.before_stage == i]
            if before:
                lines.append(f"build intermediate datasets: {', '.join(before)}")
            lines.append(f"stage {i}: {', '.join(stage)}")
        for g in self.groups:
            lines.append(f"joint group: {', '.join(g)}")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(
            json.dumps(
                {
                    "modules": {k: asdict(v) for k, v in self.modules.items()},
                    "stages": [list(s) for s in self.stages],
                    "intermediates": [asdict(d) for d in self.intermediates],
                    "groups": [list(g) for g in self.groups],
                    "by_kind": self.by_kind(),
                    "data": dict(self.data),
                    "notes": list(self.notes),
                }
            )
        )
        return result
