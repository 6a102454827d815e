"""The symbolic executor: runs any CLEVR program on a scene, with CLEVR's semantics.

It is the oracle for answers and for per-node targets. Semantics follow CLEVR's
``question_engine.py``:

- ``scene`` gives all objects; ``filter_<attr>[v]`` keeps those whose attribute is v;
- ``unique`` needs exactly one object (0 or 2+ objects make the program ill-posed);
- ``relate[r]`` gives the objects in relation r to the object (``relationships``);
- ``same_<attr>`` gives the *other* objects sharing the attribute (never the object
  itself);
- ``union``/``intersect`` are set operations, ``count`` is the size (0 for the empty
  set), ``exist`` is non-emptiness;
- ``query_<attr>`` reads an attribute; ``equal_<attr>``, ``equal_integer``,
  ``less_than`` and ``greater_than`` compare.

Sets are sorted tuples of object indices; objects are indices.

Example:
    >>> from brickwork.studies.clevr.data.scene import Scene, SceneObject
    >>> scene = Scene.from_objects([
    ...     SceneObject("red", "cube", "large", "metal", (0.0, 0.0, 0.49)),
    ...     SceneObject("red", "sphere", "small", "rubber", (0.0, 2.0, 0.35)),
    ...     SceneObject("blue", "cylinder", "small", "rubber", (2.0, 0.0, 0.35))])
    >>> program = [{"function": "scene", "inputs": [], "value_inputs": []},
    ...            {"function": "filter_shape", "inputs": [0], "value_inputs": ["cube"]},
    ...            {"function": "unique", "inputs": [1], "value_inputs": []},
    ...            {"function": "same_color", "inputs": [2], "value_inputs": []},
    ...            {"function": "count", "inputs": [3], "value_inputs": []}]
    >>> execute(program, scene), execute_trace(program, scene)
    ('1', [(0, 1, 2), (0,), 0, (1,), 1])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, final

from brickwork.errors import DataError
from brickwork.studies.clevr.data.program import Program, ProgramNode, as_program
from brickwork.studies.clevr.data.scene import Scene
from brickwork.studies.clevr.data.vocabulary import (
    ATTRIBUTES,
    FUNCTIONS,
    OBJECTS,
    RELATIONS,
    format_answer,
)

Value = tuple[int, ...] | int | bool | str
ProgramLike = Program | Sequence[ProgramNode] | Sequence[Mapping[str, Any]]


@final
class SceneIndex:
    """A scene compiled for fast execution: object sets as bit masks.

    Example:
        >>> from brickwork.studies.clevr.data.scene import generate_scene
        >>> ix = SceneIndex(generate_scene(0, seed=0))
        >>> ix.all == (1 << len(ix.scene.objects)) - 1
        True
    """

    __slots__ = ("all", "attr", "filters", "n", "relate", "same", "scene")

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        self.n = n = len(scene.objects)
        self.all = (1 << n) - 1
        self.attr: dict[str, tuple[str, ...]] = {
            a: tuple(o.attribute(a) for o in scene.objects) for a in ATTRIBUTES
        }
        self.filters: dict[tuple[str, str], int] = {}
        for a, values in ATTRIBUTES.items():
            for v in values:
                m = 0
                for i, ov in enumerate(self.attr[a]):
                    if ov == v:
                        m |= 1 << i
                self.filters[(a, v)] = m
        self.relate: dict[str, tuple[int, ...]] = {
            rel: tuple(sum(1 << j for j in scene.relationships[rel][i]) for i in range(n))
            for rel in RELATIONS
        }
        self.same: dict[str, tuple[int, ...]] = {
            a: tuple(self.filters[(a, self.attr[a][i])] & ~(1 << i) for i in range(n))
            for a in ATTRIBUTES
        }


def mask_to_set(mask: int) -> tuple[int, ...]:
    """Bit mask -> sorted tuple of object indices."""
    out = []
    i = 0
    while mask:
        if mask & 1:
            out.append(i)
        mask >>= 1
        i += 1
    return tuple(out)


class _IllPosed(Exception):
    def __init__(self, node: int, message: str) -> None:
        super().__init__(message)
        self.node = node


def _run(program: Program, ix: SceneIndex) -> list[int | bool | str]:
    """Execute with bit masks; sets stay masks (callers convert)."""
    out: list[Any] = []
    for i, node in enumerate(program):
        f = node.function
        args = [out[j] for j in node.inputs]
        if f == "scene":
            v: Any = ix.all
        elif f.startswith("filter_"):
            v = args[0] & ix.filters[(f[7:], node.value_inputs[0])]
        elif f == "unique":
            m = args[0]
            if m == 0 or m & (m - 1):
                raise _IllPosed(
                    i, f"found {m.bit_count()} objects {list(mask_to_set(m))}, expected exactly 1"
                )
            v = m.bit_length() - 1
        elif f == "relate":
            v = ix.relate[node.value_inputs[0]][args[0]]
        elif f.startswith("same_"):
            v = ix.same[f[5:]][args[0]]
        elif f == "union":
            v = args[0] | args[1]
        elif f == "intersect":
            v = args[0] & args[1]
        elif f == "count":
            v = args[0].bit_count()
        elif f == "exist":
            v = args[0] != 0
        elif f.startswith("query_"):
            v = ix.attr[f[6:]][args[0]]
        elif f.startswith("equal_"):
            v = args[0] == args[1]
        elif f == "less_than":
            v = args[0] < args[1]
        elif f == "greater_than":
            v = args[0] > args[1]
        else:  # pragma: no cover - Program rejects unknown functions
            raise _IllPosed(i, f"no handler for {f!r}")
        out.append(v)
    return out


def _prepare(program: ProgramLike, scene: Scene | SceneIndex) -> tuple[Program, SceneIndex]:
    p = as_program(program)
    ix = scene if isinstance(scene, SceneIndex) else SceneIndex(scene)
    return p, ix


def execute_trace(program: ProgramLike, scene: Scene | SceneIndex) -> list[Value]:
    """Output of every node: sorted index tuples for sets, an index for ``unique``,
    ints, bools and attribute strings for the rest.

    Raises:
        DataError: when the program is ill-posed on this scene (``unique`` of 0 or
            2+ objects), naming the node.
    """
    p, ix = _prepare(program, scene)
    try:
        raw = _run(p, ix)
    except _IllPosed as exc:
        raise DataError(
            f"scene {ix.scene.image_index}: program node {exc.node} '{p[exc.node]}': {exc}"
        ) from None
    return [
        mask_to_set(v) if FUNCTIONS[n.function].output == OBJECTS else v  # type: ignore[arg-type]
        for n, v in zip(p, raw)
    ]


def execute(program: ProgramLike, scene: Scene | SceneIndex) -> str:
    """The answer of a question's program, as the release writes it (``"yes"``, ``"3"``).

    Raises:
        DataError: when the program is ill-posed on the scene or does not end in an
            answer (its last node gives objects).
    """
    p, ix = _prepare(program, scene)
    if not p.answers_question:
        raise DataError(f"program ends in '{p[-1]}', which gives {p.output_kind}, not an answer")
    try:
        value = _run(p, ix)[-1]
    except _IllPosed as exc:
        raise DataError(
            f"scene {ix.scene.image_index}: program node {exc.node} '{p[exc.node]}': {exc}"
        ) from None
    return format_answer(value)


def is_well_posed(program: ProgramLike, scene: Scene | SceneIndex) -> bool:
    """Whether every ``unique`` of the program gets exactly one object on the scene."""
    p, ix = _prepare(program, scene)
    try:
        _run(p, ix)
    except _IllPosed:
        return False
    return True


__all__ = ["SceneIndex", "Value", "execute", "execute_trace", "is_well_posed", "mask_to_set"]
