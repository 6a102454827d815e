"""CLEVR functional programs: nodes, parsing of both key styles, type check, depth.

A program is a list of nodes in topological order; node ``i`` names its program
inputs by index (all smaller than ``i``) and carries its value inputs (``red``,
``left``). The CLEVR release writes ``{"function", "inputs", "value_inputs"}``;
CLEVR's own question generator writes ``{"type", "inputs", "side_inputs"}`` (or
``value_inputs``). Both are read; programs are always written the release's way.

**Depth** (:func:`program_depth`) is the number of nodes on the longest chain of
modules from a ``scene`` node to the output, counting every node except ``scene``:
``depth(scene) = 0`` and ``depth(n) = 1 + max(depth(inputs of n))``. So
``scene -> filter_color[red] -> unique -> query_shape`` has depth 3 and
``count(scene)`` has depth 1. It is the number of module applications a layout
executes in sequence, the depth the thesis (§4.3.3) trains on (≤ 5) and tests on.

Example:
    >>> p = Program.from_json([
    ...     {"function": "scene", "inputs": [], "value_inputs": []},
    ...     {"function": "filter_color", "inputs": [0], "value_inputs": ["red"]},
    ...     {"type": "count", "inputs": [1]},
    ... ])
    >>> [str(n) for n in p], p.depth
    (['scene', 'filter_color[red]', 'count'], 2)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, final, overload

from brickwork.errors import DataError
from brickwork.studies.clevr.data.vocabulary import FUNCTIONS, OBJECTS


@final
@dataclass(frozen=True)
class ProgramNode:
    """One function application of a program.

    Attributes:
        function: the CLEVR function name (``filter_color``).
        inputs: indices of the nodes whose outputs it takes.
        value_inputs: its value inputs (``("red",)``), empty for most functions.

    Example:
        >>> n = ProgramNode("relate", (3,), ("left",))
        >>> str(n), n.to_clevr_json()
        ('relate[left]', {'function': 'relate', 'inputs': [3], 'value_inputs': ['left']})
    """

    function: str
    inputs: tuple[int, ...] = ()
    value_inputs: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.value_inputs:
            return f"{self.function}[{','.join(self.value_inputs)}]"
        return self.function

    def to_clevr_json(self) -> dict[str, Any]:
        """The node in the CLEVR release format."""
        return {
            "function": self.function,
            "inputs": list(self.inputs),
            "value_inputs": list(self.value_inputs),
        }


def _check_nodes(nodes: Sequence[ProgramNode]) -> tuple[int, str, str] | None:
    """First problem as (node index, field, message), or None when the program is fine."""
    kinds: list[str] = []
    if not nodes:
        return (0, "program", "found an empty program, expected at least a 'scene' node")
    for i, node in enumerate(nodes):
        spec = FUNCTIONS.get(node.function)
        if spec is None:
            return (
                i,
                "function",
                f"unknown function {node.function!r}; "
                f"expected one of {', '.join(sorted(FUNCTIONS))}",
            )
        if len(node.inputs) != spec.arity:
            return (
                i,
                "inputs",
                f"{node.function} takes {spec.arity} input(s), found {list(node.inputs)}",
            )
        for k, j in enumerate(node.inputs):
            if not isinstance(j, int) or isinstance(j, bool) or not 0 <= j < i:
                return (
                    i,
                    "inputs",
                    f"input {k} is {j!r}, out of range: "
                    f"expected the index of an earlier node (0..{i - 1})",
                )
            if kinds[j] != spec.inputs[k]:
                return (
                    i,
                    "inputs",
                    f"input {k} (node {j} '{nodes[j]}') gives {kinds[j]}, "
                    f"but {node.function} expects {spec.inputs[k]}",
                )
        if len(node.value_inputs) != spec.n_value_inputs:
            return (
                i,
                "value_inputs",
                f"{node.function} takes {spec.n_value_inputs} value input(s), "
                f"found {list(node.value_inputs)}",
            )
        if spec.value_kind is not None:
            value = node.value_inputs[0]
            allowed = spec.allowed_values()
            if value not in allowed:
                return (
                    i,
                    "value_inputs",
                    f"{node.function} got {value!r}, expected one of {', '.join(allowed)}",
                )
        kinds.append(spec.output)
    return None


@final
class Program(Sequence[ProgramNode]):
    """A type-checked CLEVR program: an immutable sequence of :class:`ProgramNode`.

    Raises:
        DataError: when a function is unknown, an input index is out of range or
            points forward, an input's kind does not fit, or a value input is wrong.

    Example:
        >>> p = Program([ProgramNode("scene"), ProgramNode("exist", (0,))])
        >>> len(p), p[1].function, p.depth, p.output_kind
        (2, 'exist', 1, 'bool')
    """

    __slots__ = ("_depths", "_nodes")

    def __init__(self, nodes: Sequence[ProgramNode], *, where: str = "") -> None:
        self._nodes: tuple[ProgramNode, ...] = tuple(nodes)
        problem = _check_nodes(self._nodes)
        if problem is not None:
            i, field, message = problem
            prefix = f"{where}: " if where else ""
            name = f" '{self._nodes[i].function}'" if i < len(self._nodes) else ""
            raise DataError(f"{prefix}program node {i}{name}: field '{field}': {message}")
        depths: list[int] = []
        for node in self._nodes:
            depths.append(0 if not node.inputs else 1 + max(depths[j] for j in node.inputs))
        # a lone scene node has depth 0; every other node counts
        self._depths = tuple(depths)

    @classmethod
    def from_json(cls, raw: object, *, where: str = "") -> Program:
        """Parse a program in the release format or CLEVR's generator format.

        Args:
            raw: a list of node objects with ``function`` or ``type``, ``inputs``
                and ``value_inputs`` or ``side_inputs`` (missing means none).
            where: prefix for error messages (file and question index).
        """
        prefix = f"{where}: " if where else ""
        if not isinstance(raw, list):
            raise DataError(
                f"{prefix}field 'program': found {type(raw).__name__}, expected a list of nodes"
            )
        nodes = []
        for i, item in enumerate(raw):
            if not isinstance(item, Mapping):
                raise DataError(
                    f"{prefix}program node {i}: found {type(item).__name__}, expected an object "
                    "with 'function' (or 'type'), 'inputs' and 'value_inputs'"
                )
            function = item.get("function", item.get("type"))
            if not isinstance(function, str):
                raise DataError(
                    f"{prefix}program node {i}: field 'function': "
                    + (
                        "missing; expected key 'function' (release) or 'type' (CLEVR generator)"
                        if function is None
                        else f"found {function!r}, expected a function name"
                    )
                )
            inputs = item.get("inputs")
            if not isinstance(inputs, list):
                raise DataError(
                    f"{prefix}program node {i} '{function}': field 'inputs': "
                    + ("missing" if inputs is None else f"found {inputs!r}")
                    + ", expected a list of node indices"
                )
            values = item.get("value_inputs", item.get("side_inputs", []))
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise DataError(
                    f"{prefix}program node {i} '{function}': field 'value_inputs': "
                    f"found {values!r}, expected a list of strings"
                )
            nodes.append(ProgramNode(function, tuple(inputs), tuple(values)))
        return cls(nodes, where=where)

    def to_clevr_json(self) -> list[dict[str, Any]]:
        """The program in the CLEVR release format."""
        return [n.to_clevr_json() for n in self._nodes]

    @property
    def depth(self) -> int:
        """Depth of the output node (see the module docstring)."""
        return self._depths[-1]

    @property
    def node_depths(self) -> tuple[int, ...]:
        """Depth of every node (``scene`` nodes have depth 0)."""
        return self._depths

    @property
    def output_kind(self) -> str:
        """Kind of the last node's output: ``bool``, ``integer``, an attribute, …"""
        return FUNCTIONS[self._nodes[-1].function].output

    @property
    def answers_question(self) -> bool:
        """Whether the output is an answer (not an object or a set of objects)."""
        return self.output_kind not in (OBJECTS, "object")

    def __len__(self) -> int:
        return len(self._nodes)

    @overload
    def __getitem__(self, index: int) -> ProgramNode: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[ProgramNode]: ...
    def __getitem__(self, index: int | slice) -> ProgramNode | Sequence[ProgramNode]:
        return self._nodes[index]

    def __iter__(self) -> Iterator[ProgramNode]:
        return iter(self._nodes)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Program):
            return self._nodes == other._nodes
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._nodes)

    def __repr__(self) -> str:
        return f"Program([{', '.join(str(n) for n in self._nodes)}])"


def as_program(program: Program | Sequence[ProgramNode] | Sequence[Mapping[str, Any]]) -> Program:
    """Accept a :class:`Program`, a list of nodes, or a JSON list of node objects."""
    if isinstance(program, Program):
        return program
    items = list(program)
    if items and all(isinstance(n, ProgramNode) for n in items):
        return Program(items)  # type: ignore[arg-type]
    return Program.from_json(items)


def program_depth(program: Program | Sequence[ProgramNode] | Sequence[Mapping[str, Any]]) -> int:
    """Longest chain of modules from ``scene`` to the output, ``scene`` not counted.

    Example:
        >>> program_depth([{"function": "scene", "inputs": []},
        ...                {"function": "exist", "inputs": [0]}])
        1
    """
    return as_program(program).depth


__all__ = ["Program", "ProgramNode", "as_program", "program_depth"]
