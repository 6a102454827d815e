"""``Layout``: an immutable, type-checked DAG of module applications."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, final

from brickwork.errors import LayoutError
from brickwork.layouts.kinds import Kinds
from brickwork.layouts.node import Node, Source
from brickwork.modules import Adapter, Signature, name_mismatch
from brickwork.types import AxisBindings, NeuralType


def fix_hint(found: NeuralType, expected: NeuralType, consumer: str) -> str:
    """How to make ``found`` fit ``expected`` (for error messages)."""
    hint = Adapter.hint(found, expected)
    if hint:
        return hint[0].upper() + hint[1:]
    if found.kind == expected.kind:
        return "Make the axes agree (same names, same fixed sizes) on both modules"
    return (
        f"Change the producer's output to {expected.kind}, or give '{consumer}' an input "
        f"of {found.kind}, or insert an adapter module between them"
    )


@final
class Layout:
    """A named, immutable DAG of nodes, type-checked on construction.

    Build one with :func:`chain`, :class:`LayoutBuilder` or :func:`from_program`, or
    directly from nodes. Every edge is checked with the types' ``feed_reason`` and one
    axis unification for the whole layout; a mismatch raises :class:`LayoutError`
    naming layout, node, port, the type found (and its producer), the type expected and a
    fix — before any tensor is made.

    Args:
        name: a name for messages (e.g. the question id).
        nodes: the nodes, in any order (they are sorted topologically).
        kinds: the vocabulary giving each module name its signature.
        outputs: output name → source; by default every output port of every sink node.
        input_types: types of the external inputs; inferred from the ports reading them.

    Example:
        >>> from brickwork.modules import And
        >>> kinds = Kinds(And=lambda: And.min("b n"))
        >>> lay = Layout("q", [Node("and#0", "And", "And", None,
        ...                         {"a": Source(None, "x"), "b": Source(None, "y")})], kinds)
        >>> sorted(lay.inputs), list(lay.outputs)
        (['x', 'y'], ['out'])
    """

    def __init__(
        self,
        name: str,
        nodes: Iterable[Node],
        kinds: Kinds,
        outputs: Mapping[str, Source] | None = None,
        input_types: Mapping[str, NeuralType] | None = None,
    ):
        self.name = name
        self.kinds = kinds
        by_id: dict[str, Node] = {}
        for node in nodes:
            if node.id in by_id:
                raise LayoutError(
                    f"layout '{name}': two nodes are named '{node.id}'; node ids "
                    "must be unique (the same *module* name may repeat)"
                )
            by_id[node.id] = node
        self._nodes = _toposort(name, by_id)
        self._by_id = by_id
        self._signatures: dict[str, Signature] = {}
        for node in self._nodes:
            if node.module not in self._signatures:
                self._signatures[node.module] = kinds.signature(node.module)
        self.bindings = AxisBindings()
        self._inputs = self._check(dict(input_types or {}))
        self._outputs = self._resolve_outputs(outputs)
        levels: dict[str, int] = {}
        for n in self._nodes:
            levels[n.id] = 1 + max((levels[s.node] for s in n.inputs.values() if s.node), default=0)
        self._levels = levels
        #: per node, in order: (node, level, [(port, source node or None, source port)])
        self.plan_rows: tuple[Any, ...] = tuple(
            (n, levels[n.id], tuple((p, s.node, s.port) for p, s in n.inputs.items()))
            for n in self._nodes
        )
        position = {n.id: k for k, n in enumerate(self._nodes)}
        waits = [0] * len(self._nodes)
        readers: list[list[int]] = [[] for _ in self._nodes]
        for k, n in enumerate(self._nodes):
            srcs = {s.node for s in n.inputs.values() if s.node}
            waits[k] = len(srcs)
            for src in srcs:
                readers[position[src]].append(k)
        #: per node position: how many distinct source nodes it waits for, and its readers
        self.waits: tuple[int, ...] = tuple(waits)
        self.readers: tuple[tuple[int, ...], ...] = tuple(tuple(r) for r in readers)

    # ----- structure ------------------------------------------------------------------
    @property
    def nodes(self) -> tuple[Node, ...]:
        """The nodes in topological order."""
        return self._nodes

    @property
    def inputs(self) -> Mapping[str, NeuralType]:
        """External inputs the layout reads, with their types."""
        return MappingProxyType(self._inputs)

    @property
    def outputs(self) -> Mapping[str, Source]:
        return MappingProxyType(self._outputs)

    @property
    def output_types(self) -> dict[str, NeuralType]:
        return {k: self.port_type(s) for k, s in self._outputs.items()}

    def node(self, node_id: str) -> Node:
        try:
            return self._by_id[node_id]
        except KeyError:
            raise LayoutError(
                f"layout '{self.name}' has no node '{node_id}'; nodes: "
                f"{[n.id for n in self._nodes]}"
            ) from None

    def signature_of(self, node_id: str) -> Signature:
        return self._signatures[self.node(node_id).module]

    def port_type(self, source: Source) -> NeuralType:
        """The type flowing out of ``source``."""
        if source.node is None:
            return self._inputs[source.port]
        return self.signature_of(source.node).outputs[source.port]

    def module_names(self) -> set[str]:
        return {n.module for n in self._nodes}

    def edges(self) -> list[tuple[Source, str, str]]:
        """Every edge as ``(source, destination node id, destination port)``."""
        return [(src, n.id, port) for n in self._nodes for port, src in n.inputs.items()]

    def consumers(self, node_id: str) -> list[tuple[str, str]]:
        """``(node id, port)`` pairs reading any output of ``node_id``."""
        return [(dst, port) for src, dst, port in self.edges() if src.node == node_id]

    def depth(self) -> int:
        """The longest chain of nodes from an external input to an output."""
        return max(self._levels.values(), default=0)

    def level(self, node_id: str) -> int:
        """1 + the level of the deepest source of ``node_id`` (external inputs are 0)."""
        return self._levels[self.node(node_id).id]

    def slice(self, node_id: str, name: str | None = None) -> Layout:
        """The sub-layout that computes ``node_id`` (its ancestors), with its outputs."""
        self.node(node_id)
        keep: set[str] = set()
        stack = [node_id]
        while stack:
            nid = stack.pop()
            if nid in keep:
                continue
            keep.add(nid)
            stack.extend(s.node for s in self._by_id[nid].inputs.values() if s.node)
        outs = {p: Source(node_id, p) for p in self.signature_of(node_id).outputs}
        return Layout(
            name or f"{self.name}[:{node_id}]",
            [n for n in self._nodes if n.id in keep],
            self.kinds,
            outs,
            {k: v for k, v in self._inputs.items()},
        )

    def __len__(self) -> int:
        return len(self._nodes)

    def __repr__(self) -> str:
        return f"Layout('{self.name}', {len(self._nodes)} nodes, depth {self.depth()})"

    def to_json(self) -> dict[str, Any]:
        """A JSON description (nodes, sources, outputs) of the structure."""
        return {
            "name": self.name,
            "nodes": [
                {
                    "id": n.id,
                    "module": n.module,
                    "kind": n.kind,
                    "arg": n.arg,
                    "inputs": {p: [s.node, s.port] for p, s in n.inputs.items()},
                }
                for n in self._nodes
            ],
            "outputs": {k: [s.node, s.port] for k, s in self._outputs.items()},
        }

    # ----- checking -------------------------------------------------------------------
    def _check(self, declared: dict[str, NeuralType]) -> dict[str, NeuralType]:
        inputs = dict(declared)
        for node in self._nodes:
            sig = self._signatures[node.module]
            if problem := name_mismatch(sig.inputs, node.inputs):
                raise LayoutError(
                    f"layout '{self.name}', node '{node.id}': module '{node.module}' has input "
                    f"ports {list(sig.inputs)}; {problem}. "
                    "Connect exactly the declared ports"
                )
            for port, src in node.inputs.items():
                expected = sig.inputs[port]
                if src.node is None:
                    found = inputs.setdefault(src.port, expected)
                    origin = f"input '{src.port}'"
                else:
                    if src.node not in self._by_id:
                        raise LayoutError(
                            f"layout '{self.name}', node '{node.id}', port '{port}': "
                            f"reads unknown node '{src.node}'"
                        )
                    outs = self._signatures[self._by_id[src.node].module].outputs
                    if src.port not in outs:
                        raise LayoutError(
                            f"layout '{self.name}', node '{node.id}', port '{port}': node "
                            f"'{src.node}' has no output '{src.port}'; its outputs are {list(outs)}"
                        )
                    found = outs[src.port]
                    origin = f"node '{src.node}'"
                reason = found.feed_reason(expected, self.bindings)
                if reason:
                    raise LayoutError(
                        f"layout '{self.name}', node '{node.id}', port '{port}': got {found!r} "
                        f"from {origin}, expected {expected!r} ({reason}). "
                        f"{fix_hint(found, expected, node.id)}"
                    )
        return inputs

    def _resolve_outputs(self, outputs: Mapping[str, Source] | None) -> dict[str, Source]:
        if outputs is not None:
            for name, src in outputs.items():
                if src.node is not None and (
                    src.node not in self._by_id
                    or src.port not in self.signature_of(src.node).outputs
                ):
                    raise LayoutError(
                        f"layout '{self.name}': output '{name}' reads {src!r}, "
                        "which no node produces"
                    )
            return dict(outputs)
        used = {s.node for n in self._nodes for s in n.inputs.values() if s.node}
        sinks = [n for n in self._nodes if n.id not in used]
        result: dict[str, Source] = {}
        for n in sinks:
            for port in self._signatures[n.module].outputs:
                name = port if port not in result else f"{n.id}.{port}"
                result[name] = Source(n.id, port)
        return result


def _toposort(name: str, by_id: Mapping[str, Node]) -> tuple[Node, ...]:
    order: list[Node] = []
    state: dict[str, int] = {}
    for root in by_id:
        if state.get(root):
            continue
        stack: list[tuple[str, bool]] = [(root, False)]
        while stack:
            nid, done = stack.pop()
            if done:
                state[nid] = 2
                order.append(by_id[nid])
                continue
            if state.get(nid) == 2:
                continue
            if state.get(nid) == 1:
                raise LayoutError(
                    f"layout '{name}': cycle through node '{nid}'; a layout is a "
                    "DAG, so break the loop (an agent loop runs in brickwork.agent)"
                )
            state[nid] = 1
            stack.append((nid, True))
            for src in by_id[nid].inputs.values():
                if src.node is not None and src.node in by_id:
                    if state.get(src.node) == 1:
                        raise LayoutError(
                            f"layout '{name}': cycle through node '{src.node}'; a "
                            "layout is a DAG, so break the loop"
                        )
                    if not state.get(src.node):
                        stack.append((src.node, False))
    return tuple(order)


def stack_names(layouts: Sequence[Layout]) -> list[str]:
    """Output names present in every layout (what a batch can be stacked on)."""
    common = set(layouts[0].outputs) if layouts else set()
    for lay in layouts[1:]:
        common &= set(lay.outputs)
    return sorted(common)
