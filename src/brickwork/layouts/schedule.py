"""Compile a batch of different layouts into a schedule of grouped module calls.

Agenda scheduling: among the nodes of all layouts whose inputs are ready, the kind
with the most ready applications runs next, all of them in one call (nodes of one
kind at different depths share a call). Rows are ordered by instance
(``filter_color[red]`` rows, then ``[blue]`` rows …) so a kind with per-instance
weights sees contiguous slices or an instance index tensor. Inputs are gathered and
outputs stored with index tensors computed here, once per batch, so the run loop does
Python work per group, never per node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from brickwork.errors import LayoutError
from brickwork.layouts.layout import Layout
from brickwork.layouts.node import Node
from brickwork.modules import Module

#: a source tensor: ("ext", input name) or ("slot", step index, port)
SourceKey = tuple[Any, ...]


@dataclass
class Gather:
    """How to assemble one input port of a group: concatenate ``sources`` and take
    ``index`` (``None`` when the single source is used as is)."""

    sources: list[SourceKey]
    index: torch.Tensor | None


@dataclass
class Step:
    """One grouped module call."""

    kind: str
    level: int
    modules: list[Module]
    counts: list[int]
    instance: torch.Tensor | None
    gathers: dict[str, Gather]
    out_ports: list[str]
    rows: int
    node_ids: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class Schedule:
    """A compiled batch: steps in order, and how to assemble each stacked output."""

    batch: int
    steps: list[Step]
    outputs: dict[str, Gather]

    @property
    def calls(self) -> int:
        return len(self.steps)


def _make_gather(
    entries: list[tuple[SourceKey, int]],
    sizes: dict[SourceKey, int],
    device: torch.device | None = None,
) -> Gather:
    order: dict[SourceKey, int] = {}
    for key, _ in entries:
        if key not in order:
            order[key] = len(order)
    keys = list(order)
    offsets, total = {}, 0
    for k in keys:
        offsets[k] = total
        total += sizes[k]
    flat = [offsets[k] + r for k, r in entries]
    if len(keys) == 1 and len(flat) == sizes[keys[0]] and flat == list(range(len(flat))):
        return Gather(keys, None)
    return Gather(keys, torch.tensor(flat, dtype=torch.long, device=device))


def compile_schedule(
    layouts: Sequence[Layout],
    batch_inputs: Sequence[str],
    outputs: Sequence[str],
    device: str | torch.device | None = None,
) -> Schedule:
    """Compile ``layouts`` (row ``i`` of every external input belongs to layout ``i``).

    The index tensors are made on ``device`` (the inputs' device; ``None``: torch's
    default device), so running the schedule never moves data between devices.
    """
    device = torch.device(device) if device is not None else None
    n = len(layouts)
    # (level, kind) -> list of (sample, node)
    given = set(batch_inputs)
    ready: dict[str, list[tuple[int, int]]] = {}  # kind -> [(sample, node position)]
    waits: list[list[int]] = []
    for i, lay in enumerate(layouts):
        if not given.issuperset(lay.inputs):
            name = sorted(set(lay.inputs) - given)[0]
            raise LayoutError(
                f"layout '{lay.name}' reads input '{name}', which the batch "
                f"does not provide (given: {sorted(batch_inputs)})"
            )
        w = list(lay.waits)
        waits.append(w)
        for k, count in enumerate(w):
            if count == 0:
                ready.setdefault(lay.nodes[k].kind, []).append((i, k))
    sizes: dict[SourceKey, int] = {("ext", name): n for name in batch_inputs}
    where: dict[tuple[int, str], tuple[int, int]] = {}  # (sample, node id) -> (step, row)
    steps: list[Step] = []
    while ready:
        # agenda scheduling: run the kind with the most ready applications next
        kind = max(ready, key=lambda k: (len(ready[k]), k))
        picked = ready.pop(kind)
        members = []
        for i, k in picked:
            node, lv, ins = layouts[i].plan_rows[k]
            members.append((i, node, ins))
            for reader in layouts[i].readers[k]:
                waits[i][reader] -= 1
                if waits[i][reader] == 0:
                    ready.setdefault(layouts[i].nodes[reader].kind, []).append((i, reader))
        by_instance: dict[str, list[tuple[int, Node, tuple[Any, ...]]]] = {}
        for member in members:
            mod = member[1].module
            bucket = by_instance.get(mod)
            if bucket is None:
                by_instance[mod] = bucket = []
            bucket.append(member)
        names = sorted(by_instance)
        modules = [layouts[by_instance[nm][0][0]].kinds.module(nm) for nm in names]
        ordered = [m for nm in names for m in by_instance[nm]]
        counts = [len(by_instance[nm]) for nm in names]
        step_idx = len(steps)
        port_entries: dict[str, list[tuple[SourceKey, int]]] = {p: [] for p in modules[0].inputs}
        for sample, _node, ins in ordered:
            for port, src_node, src_port in ins:
                if src_node is None:
                    port_entries[port].append((("ext", src_port), sample))
                else:
                    s, r = where[(sample, src_node)]
                    port_entries[port].append((("slot", s, src_port), r))
        gathers = {p: _make_gather(e, sizes, device) for p, e in port_entries.items()}
        out_ports = list(modules[0].outputs)
        for row, (sample, node, _ins) in enumerate(ordered):
            where[(sample, node.id)] = (step_idx, row)
        for p in out_ports:
            sizes[("slot", step_idx, p)] = len(ordered)
        instance = None
        if len(modules) > 1:
            instance = torch.tensor(
                [k for k, c in enumerate(counts) for _ in range(c)], dtype=torch.long, device=device
            )
        steps.append(
            Step(
                kind,
                len(steps) + 1,
                modules,
                counts,
                instance,
                gathers,
                out_ports,
                len(ordered),
                [(s, nd.id) for s, nd, _ in ordered],
            )
        )
    out_gathers: dict[str, Gather] = {}
    for name in outputs:
        entries: list[tuple[SourceKey, int]] = []
        for i, lay in enumerate(layouts):
            src = lay.outputs.get(name)
            if src is None:
                raise LayoutError(
                    f"layout '{lay.name}' has no output '{name}' (its outputs: "
                    f"{list(lay.outputs)}); batch layouts with a common output"
                )
            if src.node is None:
                entries.append((("ext", src.port), i))
            else:
                s, r = where[(i, src.node)]
                entries.append((("slot", s, src.port), r))
        out_gathers[name] = _make_gather(entries, sizes, device)
    return Schedule(n, steps, out_gathers)
