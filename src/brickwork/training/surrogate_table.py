"""The table a module trains from through its surrogate gradient module (thesis §4.2.3).

One row per application of the module in the data's layouts, as
:func:`~brickwork.training.trainer.module_table` gives, plus where the module's output
goes on its way to the target — its **route**: the parameter-free ops it passes
(``And``, ``Or``, …, each with the values its other inputs receive: the *context*) up
to the first trainable module that reads it (the *reader*) or a layout output. The SGM
keeps the ops (the layout's own AND of a find's mask with another find's) and replaces
the reader and everything after it by a head per route.

A context value that only untrained modules can compute is not available: the route
stops before that op (*truncated*). A row whose route is whole is a *full* row; the
table keeps only full rows when there are at least ``min_rows`` of them (the answers
those rows carry are decided by the module's output and known context), else every
row with its route truncated where needed. That is the NMN study's design expressed
over layouts: in a first round the finds train on the questions whose answer their own
mask decides; a find that stays on its SGM plateau trains again once the others are
trained, on the questions that AND it with them (:func:`~brickwork.training.train_plan`).

Example:
    >>> import torch
    >>> from brickwork.layouts import Kinds, LayoutBuilder
    >>> from brickwork.modules import And
    >>> from brickwork.training import Samples
    >>> from brickwork.training.fixtures import ToyFind, ToyMeasure
    >>> kinds = Kinds(find=lambda: ToyFind(4), measure=lambda: ToyMeasure(5),
    ...               And=lambda: And.min())
    >>> def lay(*finds):
    ...     b = LayoutBuilder(kinds, name="+".join(finds)); f = b.input("features")
    ...     m = b.add(f"find[{finds[0]}]", features=f)["mask"]
    ...     for x in finds[1:]:
    ...         m = b.add("And", a=m, b=b.add(f"find[{x}]", features=f)["mask"])["out"]
    ...     b.output("answer", b.add("measure", mask=m)["answer"]); return b.build()
    >>> family = [lay("a"), lay("a", "b")]
    >>> data = Samples({"features": torch.rand(6, 4, 3, 3), "layout": torch.tensor([0, 1] * 3),
    ...                 "answer": torch.zeros(6, dtype=torch.long)})
    >>> table, routes = surrogate_table("find[a]", family, kinds, data, {"target": "answer"},
    ...                                 trained={"find[b]"}, min_rows=1)
    >>> len(table), [r["reader"] for r in routes], [len(r["steps"]) for r in routes]
    (6, ['measure.mask', 'measure.mask'], [0, 1])
    >>> sorted(c for c in table if c.startswith("ctx"))
    ['ctx.0.b']
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import torch

from brickwork.errors import TrainingError
from brickwork.layouts import Kinds, Layout, Runner, Source
from brickwork.training.samples import Samples

#: the fewest full rows a table keeps on their own (else every row, routes truncated)
MIN_ROWS = 32


def _trainable(module: torch.nn.Module) -> bool:
    return any(p.numel() for p in module.parameters())


def _only_output(module: Any, where: str) -> str:
    outs: list[str] = list(module.outputs)
    if len(outs) != 1:
        raise TrainingError(
            f"{where}: a surrogate route passes ops with one output; this one has {outs}"
        )
    return outs[0]


def route_of(lay: Layout, node_id: str) -> tuple[list[dict[str, Any]], str]:
    """The ops from ``node_id``'s output to its reader, and the reader.

    Returns ``(steps, reader)``: each step ``{"node", "module", "kind", "config",
    "port", "others": {port: Source}}`` (``port``: where the running value enters the
    op), and the reader as ``"<module>.<port>"``, ``"output:<name>"`` or ``"fanout"``
    (the value goes several ways: the route stops there).
    """
    consumers: dict[tuple[str | None, str], list[tuple[str, str]]] = {}
    for src, dst, port in lay.edges():
        consumers.setdefault((src.node, src.port), []).append((dst, port))
    outputs = {(s.node, s.port): name for name, s in lay.outputs.items()}
    node = lay.node(node_id)
    cur = (node_id, _only_output(lay.kinds.module(node.module), f"module {node.module!r}"))
    steps: list[dict[str, Any]] = []
    while True:
        cons = consumers.get(cur, [])
        if cur in outputs and not cons:
            return steps, f"output:{outputs[cur]}"
        if len(cons) != 1 or cur in outputs:
            return steps, "fanout"
        dst, port = cons[0]
        dnode = lay.node(dst)
        dmod = lay.kinds.module(dnode.module)
        if _trainable(dmod):
            return steps, f"{dnode.module}.{port}"
        steps.append(
            {
                "node": dst,
                "module": dnode.module,
                "kind": dmod.kind,
                "config": dict(dmod.config),
                "port": port,
                "others": {p: s for p, s in dnode.inputs.items() if p != port},
            }
        )
        cur = (dst, _only_output(dmod, f"layout '{lay.name}', node '{dst}'"))


def _modules_behind(lay: Layout, src: Source) -> set[str]:
    if src.node is None:
        return set()
    return {n.module for n in lay.slice(src.node).nodes if _trainable(lay.kinds.module(n.module))}


def _value_layout(lay: Layout, src: Source) -> Layout:
    sl = lay.slice(src.node)  # type: ignore[arg-type]
    return Layout(sl.name, sl.nodes, sl.kinds, {"value": src}, dict(sl.inputs))


def route_key(steps: Sequence[Mapping[str, Any]], reader: str) -> dict[str, Any]:
    """A route as JSON, the same for every layout that routes the same way."""
    result: dict[str, Any] = json.loads(
        json.dumps(
            {
                "steps": [
                    {
                        "kind": s["kind"],
                        "config": s["config"],
                        "port": s["port"],
                        "others": sorted(s["others"]),
                    }
                    for s in steps
                ],
                "reader": reader,
            },
            sort_keys=True,
            default=str,
        )
    )
    return result


def surrogate_table(
    name: str,
    family: Sequence[Layout],
    kinds: Kinds,
    data: Samples,
    columns: Mapping[str, str],
    *,
    trained: Collection[str] = (),
    layout_column: str = "layout",
    min_rows: int = MIN_ROWS,
    device: str | torch.device | None = None,
) -> tuple[Samples, list[dict[str, Any]]]:
    """Rows for training ``name`` through its SGM, and the routes they take.

    Columns: ``in.<port>`` (what feeds the module, as in ``module_table``), the
    ``columns`` copied from the data (target, split, …), ``sample``, ``route`` (index
    into the returned routes) and ``ctx.<step>.<port>`` (the context value entering step
    ``<step>`` of the row's route at ``<port>``; zeros where the route has no such step).

    Args:
        name: the module.
        trained: modules whose outputs may serve as context (trained and frozen:
            earlier stages, or the first round's modules that learned).
        min_rows: keep only full rows when there are at least this many.
    """
    from brickwork.training.trainer import module_table

    base = Samples.concat(
        module_table(name, family, kinds, data, columns, layout_column=layout_column, device=device)
    )
    module = kinds.module(name)
    trained = set(trained)
    apps: list[tuple[int, int, str]] = []
    for row, li in enumerate(data[layout_column].tolist()):
        for node in family[li].nodes:
            if node.module == name:
                apps.append((row, li, node.id))
    # the shape probe runs where the module's weights are (the table itself is on the CPU)
    at = next((w.device for w in module.parameters()), torch.device(device or "cpu"))
    with torch.no_grad():
        out_shape = tuple(
            module.call_ports(**{p: base[f"in.{p}"][:1].to(at) for p in module.inputs})[
                _only_output(module, f"module {name!r}")
            ].shape[1:]
        )
    plans: dict[tuple[int, str], tuple[list[dict[str, Any]], str]] = {}
    full: list[bool] = []
    cut: list[int] = []
    for _row, li, nid in apps:
        if (li, nid) not in plans:
            plans[(li, nid)] = route_of(family[li], nid)
        steps, _reader = plans[(li, nid)]
        k = 0
        for s in steps:
            if not all(_modules_behind(family[li], src) <= trained for src in s["others"].values()):
                break
            k += 1
        cut.append(k)
        full.append(k == len(steps))
    keep = [i for i, f in enumerate(full) if f]
    if len(keep) < min_rows:
        keep = list(range(len(apps)))
    routes: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    route_col = torch.zeros(len(keep), dtype=torch.int64)
    ctx: dict[str, torch.Tensor] = {}
    runner = Runner(kinds)
    pending: dict[tuple[int, str, str], list[tuple[int, int, str]]] = {}
    for j, i in enumerate(keep):
        row, li, nid = apps[i]
        steps, reader = plans[(li, nid)]
        k = cut[i]
        key = route_key(steps[:k], reader if k == len(steps) else f"{reader} (truncated)")
        text = json.dumps(key, sort_keys=True)
        if text not in index:
            index[text] = len(routes)
            routes.append(key)
        route_col[j] = index[text]
        for step_i, s in enumerate(steps[:k]):
            for port, src in s["others"].items():
                col = f"ctx.{step_i}.{port}"
                if src.node is None:
                    value = data[src.port][row]
                    if tuple(value.shape) != out_shape:
                        raise TrainingError(
                            f"module {name!r}: layout '{family[li].name}', node '{s['node']}', "
                            f"port '{port}' merges a value of shape {tuple(value.shape)} into "
                            f"one of shape {out_shape}; a surrogate route keeps merges of one "
                            "shape only"
                        )
                    ctx.setdefault(col, torch.zeros((len(keep), *out_shape)))[j] = value
                else:
                    pending.setdefault((li, src.node, src.port), []).append((j, row, col))
    with torch.no_grad():
        for (li, node_id, port), todo in pending.items():
            lay = _value_layout(family[li], Source(node_id, port))
            rows = torch.tensor([r for _, r, _ in todo])
            feed = {k: data[k][rows] for k in lay.inputs}
            if device is not None:
                feed = {k: v.to(device) for k, v in feed.items()}
            values = runner([lay] * len(todo), feed, outputs=["value"])["value"].cpu()
            if tuple(values.shape[1:]) != out_shape:
                raise TrainingError(
                    f"module {name!r}: layout '{family[li].name}' merges the output of node "
                    f"'{node_id}' (shape {tuple(values.shape[1:])}) into one of shape "
                    f"{out_shape}; a surrogate route keeps merges of one shape only"
                )
            for (j, _row, col), v in zip(todo, values):
                ctx.setdefault(col, torch.zeros((len(keep), *out_shape)))[j] = v
    table = base.select(torch.tensor(keep, dtype=torch.int64))
    cols = dict(table)
    cols["route"] = route_col
    cols.update(ctx)
    return Samples(cols, table.ids), routes
