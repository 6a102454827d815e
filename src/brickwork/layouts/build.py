"""Ways to build a layout: a chain, an explicit graph, or a CLEVR-style program."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from brickwork.errors import LayoutError
from brickwork.layouts.kinds import Kinds
from brickwork.layouts.layout import Layout
from brickwork.layouts.node import Node, Source, split_module_name
from brickwork.layouts.program import flatten_program
from brickwork.modules import Module
from brickwork.types import NeuralType


class NodeRef:
    """A handle on a node added to a :class:`LayoutBuilder`; ``ref["port"]`` picks an output."""

    def __init__(self, builder: LayoutBuilder, node_id: str):
        self.builder, self.id = builder, node_id

    def __getitem__(self, port: str) -> Source:
        return Source(self.id, port)

    def source(self) -> Source:
        outs = self.builder.kinds.signature(self.builder._nodes[self.id].module).outputs
        if len(outs) != 1:
            raise LayoutError(f"node '{self.id}' has outputs {list(outs)}; pick one: ref['name']")
        return Source(self.id, next(iter(outs)))


class LayoutBuilder:
    """Build a layout as an explicit graph.

    Example:
        >>> from brickwork.modules import And
        >>> b = LayoutBuilder(Kinds(And=lambda: And.min("b n")), name="g")
        >>> x, y = b.input("x"), b.input("y")
        >>> first = b.add("And", a=x, b=y)
        >>> second = b.add("And", a=first, b=y)
        >>> lay = b.build()
        >>> [n.id for n in lay.nodes], lay.depth()
        (['And#0', 'And#1'], 2)
    """

    def __init__(self, kinds: Kinds, name: str = "layout"):
        self.kinds, self.name = kinds, name
        self._nodes: dict[str, Node] = {}
        self._outputs: dict[str, Source] = {}

    def input(self, name: str) -> Source:
        """A source reading the layout's external input ``name``."""
        return Source(None, name)

    def add(self, module: str, **ports: Source | NodeRef) -> NodeRef:
        """Apply module ``module`` (a name like ``"find[red]"``) to the given port sources."""
        node_id = f"{module}#{len(self._nodes)}"
        fn, arg = split_module_name(module)
        inputs = {p: (s.source() if isinstance(s, NodeRef) else s) for p, s in ports.items()}
        self._nodes[node_id] = Node(node_id, module, self.kinds.kind_for(fn), arg, inputs)
        return NodeRef(self, node_id)

    def output(self, name: str, source: Source | NodeRef) -> None:
        """Declare a layout output."""
        self._outputs[name] = source.source() if isinstance(source, NodeRef) else source

    def build(self, input_types: Mapping[str, NeuralType] | None = None) -> Layout:
        return Layout(
            self.name, self._nodes.values(), self.kinds, self._outputs or None, input_types
        )


def chain(
    *modules: Module | str | tuple[str, Module],
    kinds: Kinds | None = None,
    name: str = "chain",
    input_types: Mapping[str, NeuralType] | None = None,
) -> Layout:
    """A layout where each module's single unconnected input reads the previous output.

    Ports of the first module become external inputs (by port name). A later module with
    one input reads the previous output; with several, the ports that share a name with
    an external input read that input and the one left reads the previous output.

    Args:
        modules: module instances, module names known to ``kinds``, or ``(name, module)``.
        kinds: the vocabulary (a new one holding the given instances by default).

    Example:
        >>> from brickwork.modules import Adapter
        >>> lay = chain(Adapter("log", "b k"), Adapter("softmax", "b k"))
        >>> list(lay.inputs), list(lay.outputs), len(lay)
        (['x'], ['y'], 2)
    """
    kinds = kinds if kinds is not None else Kinds()
    names: list[str] = []
    for i, m in enumerate(modules):
        if isinstance(m, tuple):
            kinds.add(m[0], m[1])
            names.append(m[0])
        elif isinstance(m, Module):
            mname = f"{m.kind}@{i}"
            kinds.add(mname, m)
            names.append(mname)
        else:
            names.append(m)
    if not names:
        raise LayoutError(f"chain '{name}': give at least one module")
    nodes: list[Node] = []
    external: set[str] = set()
    prev: Source | None = None
    for i, mname in enumerate(names):
        sig = kinds.signature(mname)
        fn, arg = split_module_name(mname)
        inputs: dict[str, Source] = {}
        open_ports = []
        single = i > 0 and len(sig.inputs) == 1
        for port in sig.inputs:
            if not single and (i == 0 or port in external):
                inputs[port] = Source(None, port)
                external.add(port)
            else:
                open_ports.append(port)
        if i > 0:
            if len(open_ports) != 1:
                raise LayoutError(
                    f"chain '{name}', node '{mname}#{i}': {len(open_ports)} unconnected input "
                    f"ports {open_ports}; a chain feeds exactly one port from the previous "
                    "module. Use LayoutBuilder for graphs"
                )
            inputs[open_ports[0]] = prev  # type: ignore[assignment]
        node_id = f"{mname}#{i}"
        nodes.append(Node(node_id, mname, kinds.kind_for(fn), arg, inputs))
        outs = list(sig.outputs)
        if len(outs) != 1 and i < len(names) - 1:
            raise LayoutError(
                f"chain '{name}', node '{node_id}': {len(outs)} outputs {outs}; "
                "a chain passes on exactly one"
            )
        prev = Source(node_id, outs[0])
    return Layout(name, nodes, kinds, None, input_types)


def program_function(node: Mapping[str, Any], index: int, name: str) -> str:
    fn = node.get("function", node.get("type"))
    if not isinstance(fn, str):
        raise LayoutError(f"program '{name}', node {index}: no 'function' (or 'type') string")
    return fn


def from_program(
    program: Sequence[Mapping[str, Any]] | Mapping[str, Any] | str,
    kinds: Kinds,
    *,
    externals: Mapping[str, NeuralType | None] | None = None,
    name: str = "program",
) -> Layout:
    """Build a layout from a CLEVR-style program (a list of ``{function|type, inputs,
    value_inputs}`` dicts, each input an index of an earlier node), a tree (a dict whose
    ``inputs`` are subtrees) or an s-expression such as
    ``"(exist (intersect (find red) (find cube)))"`` (see
    :func:`brickwork.layouts.program.flatten_program`; all three give the same layout).

    A node becomes the module ``function[value,...]`` (``filter_color[red]``). Its input
    ports are filled in declaration order: a port named like an external input (e.g.
    ``features``) reads that input, the others read the program inputs in order. The
    layout's output is the last node's output.

    Example:
        >>> from brickwork.modules import Or
        >>> kinds = Kinds(union=lambda: Or.max("b n"))
        >>> prog = [{"function": "union", "inputs": [], "value_inputs": []}]
        >>> from_program(prog, kinds, externals={"a": None, "b": None}).depth()
        1
        >>> from_program("(union)", kinds, externals={"a": None, "b": None}).depth()
        1
    """
    program = flatten_program(program, name)
    externals = dict(externals or {})
    nodes: list[Node] = []
    for i, pnode in enumerate(program):
        fn = program_function(pnode, i, name)
        values = [str(v) for v in pnode.get("value_inputs", []) or []]
        module = f"{fn}[{','.join(values)}]" if values else fn
        if not kinds.knows(module):
            raise LayoutError(
                f"program '{name}', node {i}: no module kind for function '{fn}' "
                f"(kind '{kinds.kind_for(fn)}'); known kinds: {kinds.kinds()}"
            )
        sig = kinds.signature(module)
        args = list(pnode.get("inputs", []) or [])
        for a in args:
            if not isinstance(a, int) or not 0 <= a < i:
                raise LayoutError(
                    f"program '{name}', node {i} ('{fn}'): input {a!r} must be the "
                    f"index of an earlier node (0..{i - 1})"
                )
        inputs: dict[str, Source] = {}
        free = [p for p in sig.inputs if p not in externals]
        for p in sig.inputs:
            if p in externals:
                inputs[p] = Source(None, p)
        if len(free) != len(args):
            raise LayoutError(
                f"program '{name}', node {i} ('{module}'): takes {len(free)} program inputs "
                f"{free} but the program gives {len(args)} ({args}). Check the program or the "
                "module's ports"
            )
        for port, a in zip(free, args):
            src_node = nodes[a]
            outs = list(kinds.signature(src_node.module).outputs)
            inputs[port] = Source(src_node.id, outs[0])
        nodes.append(
            Node(f"{module}#{i}", module, kinds.kind_for(fn), ",".join(values) or None, inputs)
        )
    if not nodes:
        raise LayoutError(f"program '{name}' is empty")
    last = nodes[-1]
    last_outputs = {p: Source(last.id, p) for p in kinds.signature(last.module).outputs}
    types = {k: v for k, v in externals.items() if v is not None}
    return Layout(name, nodes, kinds, last_outputs, types)
