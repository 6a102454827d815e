"""Named axes and their unification.

An axis spec is a string of space-separated names: ``"b c h w"``. A name is a variable
bound to a size when data flows (``b`` = batch); an integer literal (``"b 1 h w"``) is a
fixed size. Names are unified across a whole layout: the ``h`` of one module's output is
the ``h`` of the next module's input.

Example:
    >>> b = AxisBindings()
    >>> b.unify(parse_axes("b c h w"), parse_axes("b 64 h w"))
    ''
    >>> b.resolve("c")
    64
"""

from __future__ import annotations

from collections.abc import Sequence

from brickwork.errors import TypeMismatch

Axis = str | int


def parse_axes(spec: str | Sequence[Axis]) -> tuple[Axis, ...]:
    """Parse ``"b c h w"`` (or a sequence of names/ints) into a tuple of axes.

    Raises:
        TypeMismatch: an axis is neither an identifier nor a positive integer.
    """
    items = spec.split() if isinstance(spec, str) else list(spec)
    out: list[Axis] = []
    for item in items:
        if isinstance(item, int) or (isinstance(item, str) and item.isdigit()):
            size = int(item)
            if size <= 0:
                raise TypeMismatch(f"axis spec {spec!r}: size {size} must be positive")
            out.append(size)
        elif isinstance(item, str) and item.replace("_", "a").isalnum() and not item[0].isdigit():
            out.append(item)
        else:
            raise TypeMismatch(
                f"axis spec {spec!r}: {item!r} is neither a name (like 'h') nor a positive size"
            )
    return tuple(out)


def format_axes(axes: Sequence[Axis]) -> str:
    """The canonical string form of an axis tuple (``'b 1 h w'``)."""
    return " ".join(str(a) for a in axes)


class AxisBindings:
    """A union-find over axis names, each class bound to at most one size.

    Used at build time (names against names and literals) and at run time (names against
    the sizes of real tensors), so that the same ``h`` means one size across a layout.
    """

    def __init__(self) -> None:
        self._parent: dict[str, str] = {}
        self._size: dict[str, int] = {}

    def _find(self, name: str) -> str:
        self._parent.setdefault(name, name)
        root = name
        while self._parent[root] != root:
            root = self._parent[root]
        while self._parent[name] != root:
            self._parent[name], name = root, self._parent[name]
        return root

    def resolve(self, axis: Axis) -> Axis:
        """The size bound to ``axis`` if any, else its representative name."""
        if isinstance(axis, int):
            return axis
        root = self._find(axis)
        return self._size.get(root, root)

    def bind(self, axis: Axis, size: int) -> str:
        """Bind an axis to a concrete size; returns a reason when that contradicts."""
        if isinstance(axis, int):
            return "" if axis == size else f"size {size} where {axis} is fixed"
        root = self._find(axis)
        known = self._size.get(root)
        if known is None:
            self._size[root] = size
            return ""
        return "" if known == size else f"axis '{axis}' is {known} elsewhere, got {size}"

    def unify_axis(self, a: Axis, b: Axis) -> str:
        """Unify two axes; returns a reason when they cannot be the same size."""
        if isinstance(a, int) and isinstance(b, int):
            return "" if a == b else f"{a} vs {b}"
        if isinstance(a, int):
            return self.bind(b, a)
        if isinstance(b, int):
            return self.bind(a, b)
        ra, rb = self._find(a), self._find(b)
        if ra == rb:
            return ""
        sa, sb = self._size.get(ra), self._size.get(rb)
        if sa is not None and sb is not None and sa != sb:
            return f"axis '{a}' is {sa} but '{b}' is {sb}"
        self._parent[rb] = ra
        if sa is None and sb is not None:
            self._size[ra] = sb
        return ""

    def unify(self, a: Sequence[Axis], b: Sequence[Axis]) -> str:
        """Unify two axis tuples position by position; returns a reason or ``''``."""
        if len(a) != len(b):
            return f"{len(a)} axes [{format_axes(a)}] vs {len(b)} axes [{format_axes(b)}]"
        for x, y in zip(a, b):
            reason = self.unify_axis(x, y)
            if reason:
                return f"[{format_axes(a)}] vs [{format_axes(b)}]: {reason}"
        return ""

    def copy(self) -> AxisBindings:
        """An independent copy (to try a unification without committing to it)."""
        other = AxisBindings()
        other._parent = dict(self._parent)
        other._size = dict(self._size)
        return other
