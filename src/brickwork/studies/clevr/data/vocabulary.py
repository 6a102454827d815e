"""CLEVR's vocabulary: attribute values, relations, the function set and answers.

Everything here is a constant. The values and colors are CLEVR v1.0's
(``properties.json`` of the CLEVR generator); the function set is the one of the
CLEVR release programs.

Example:
    >>> from brickwork.studies.clevr.data.vocabulary import FUNCTIONS, ATTRIBUTES
    >>> FUNCTIONS["filter_color"].value_kind, FUNCTIONS["filter_color"].inputs
    ('color', ('objects',))
    >>> ATTRIBUTES["size"]
    ('small', 'large')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

COLORS: Final = ("gray", "red", "blue", "green", "brown", "purple", "cyan", "yellow")
SHAPES: Final = ("cube", "sphere", "cylinder")
SIZES: Final = ("small", "large")
MATERIALS: Final = ("rubber", "metal")

#: attribute name -> its values, in CLEVR's filter order (size, color, material, shape)
ATTRIBUTES: Final[dict[str, tuple[str, ...]]] = {
    "size": SIZES,
    "color": COLORS,
    "material": MATERIALS,
    "shape": SHAPES,
}

#: spatial relations of ``relate`` (the names of a scene's ``relationships``)
RELATIONS: Final = ("left", "right", "front", "behind")

#: sRGB base colors of CLEVR's ``properties.json``
COLOR_RGB: Final[dict[str, tuple[int, int, int]]] = {
    "gray": (87, 87, 87),
    "red": (173, 35, 35),
    "blue": (42, 75, 215),
    "green": (29, 105, 20),
    "brown": (129, 74, 25),
    "purple": (129, 38, 192),
    "cyan": (41, 208, 208),
    "yellow": (255, 238, 51),
}

#: object radius per size, as in CLEVR (a cube's half side is radius / sqrt(2))
SIZE_RADIUS: Final[dict[str, float]] = {"small": 0.35, "large": 0.7}

#: the string CLEVR's question engine returns for an ill-posed program
INVALID: Final = "__INVALID__"

# Value kinds flowing on program edges.
OBJECTS: Final = "objects"  # a set of object indices
OBJECT: Final = "object"  # one object index
INTEGER: Final = "integer"
BOOL: Final = "bool"


@dataclass(frozen=True)
class FunctionSpec:
    """Signature of one CLEVR function.

    Attributes:
        name: the function name as written in programs (``filter_color``).
        inputs: the kinds of its program inputs, in order (``objects``, ``object``,
            ``integer`` or an attribute name for a queried value).
        output: the kind of its output.
        value_kind: what its single value input is (an attribute name or
            ``relation``), or ``None`` when it takes none.

    Example:
        >>> FUNCTIONS["relate"]
        FunctionSpec(name='relate', inputs=('object',), output='objects', value_kind='relation')
    """

    name: str
    inputs: tuple[str, ...]
    output: str
    value_kind: str | None = None

    @property
    def arity(self) -> int:
        """Number of program inputs."""
        return len(self.inputs)

    @property
    def n_value_inputs(self) -> int:
        """Number of value inputs (0 or 1)."""
        return 0 if self.value_kind is None else 1

    def allowed_values(self) -> tuple[str, ...]:
        """The legal value inputs (empty when the function takes none)."""
        if self.value_kind is None:
            return ()
        if self.value_kind == "relation":
            return RELATIONS
        return ATTRIBUTES[self.value_kind]


def _build_functions() -> dict[str, FunctionSpec]:
    specs = [
        FunctionSpec("scene", (), OBJECTS),
        FunctionSpec("unique", (OBJECTS,), OBJECT),
        FunctionSpec("relate", (OBJECT,), OBJECTS, "relation"),
        FunctionSpec("union", (OBJECTS, OBJECTS), OBJECTS),
        FunctionSpec("intersect", (OBJECTS, OBJECTS), OBJECTS),
        FunctionSpec("count", (OBJECTS,), INTEGER),
        FunctionSpec("exist", (OBJECTS,), BOOL),
        FunctionSpec("equal_integer", (INTEGER, INTEGER), BOOL),
        FunctionSpec("less_than", (INTEGER, INTEGER), BOOL),
        FunctionSpec("greater_than", (INTEGER, INTEGER), BOOL),
    ]
    for attr in ATTRIBUTES:
        specs += [
            FunctionSpec(f"filter_{attr}", (OBJECTS,), OBJECTS, attr),
            FunctionSpec(f"query_{attr}", (OBJECT,), attr),
            FunctionSpec(f"same_{attr}", (OBJECT,), OBJECTS),
            FunctionSpec(f"equal_{attr}", (attr, attr), BOOL),
        ]
    return {s.name: s for s in specs}


#: every CLEVR function by name
FUNCTIONS: Final[dict[str, FunctionSpec]] = _build_functions()

#: all answers a CLEVR question can have, as strings (the release's format)
ANSWERS: Final[tuple[str, ...]] = (
    ("yes", "no") + tuple(str(i) for i in range(11)) + COLORS + SHAPES + SIZES + MATERIALS
)

__all__ = [
    "ANSWERS",
    "ATTRIBUTES",
    "BOOL",
    "COLORS",
    "COLOR_RGB",
    "FUNCTIONS",
    "FunctionSpec",
    "INTEGER",
    "INVALID",
    "MATERIALS",
    "OBJECT",
    "OBJECTS",
    "RELATIONS",
    "SHAPES",
    "SIZES",
    "SIZE_RADIUS",
]


def format_answer(value: object) -> str:
    """Write an answer the way the CLEVR release does (``"yes"``, ``"3"``, ``"red"``).

    Raw answers of CLEVR's own generator (``True``, ``3``) become release strings;
    strings pass through stripped and lower-cased.

    Example:
        >>> format_answer(True), format_answer(3), format_answer("Red ")
        ('yes', '3', 'red')
    """
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value.strip().lower()
    raise TypeError(f"an answer is a bool, an int or a string, got {type(value).__name__}")


__all__ += ["format_answer"]
