"""Type-directed enumeration of programs (HOUDINI §3, with value-domain types).

The grammar, for a goal ``A → B`` of size ``s`` with ``h`` holes:

* a library function or registry module ``f : A → B`` (size 1);
* a hole ``A → B`` when an architecture fits (size 1, one hole);
* ``map f`` (``A = List[a]``, ``B = List[b]``, ``f : a → b``);
* ``conv f`` (``A = List[a]``, ``B = List[b]``, ``f : List[a] → b``);
* ``fold step`` (``A = List[a]``, ``step : (B, a) → B``: a library step, a registry
  module with a (state, item) signature, or a step hole; size 2);
* ``g ∘ f`` over every intermediate type ``C`` (``f`` is not itself a composition, so
  each program is enumerated once).

The same grammar counts programs under three abstractions of the types (see
:func:`brickwork.compose.types.abstract`): ``typed`` (kinds with value domains: a
``Bool`` is not a ``Count``), ``shape_only`` (tensor shapes, as HOUDINI) and ``untyped``.
Typed mode uses the value domains twice: functions only meet values of their domain
(``add`` takes counts, ``or`` booleans), and holes only where a new network can add
something (:func:`brickwork.compose.types.hole_allowed`: a new module reads perception
or reduces a distribution to a scalar decision; a fold state has a neutral element, and
a state the library already folds — ``Count`` with ``add``, ``Bool`` with ``or`` — gets
no learned step: ``fold(add) ∘ map(g)`` is the step that extrapolates).

Example:
    >>> from brickwork.compose.library import standard_library
    >>> from brickwork.compose.types import ListOf
    >>> from brickwork.types import Bool, Count
    >>> space = Space.build(ListOf(Bool("b 1")), Count("b 1"), functions(standard_library()))
    >>> [term_str(t) for t in space.programs(5, max_holes=0)]
    ['as_count ∘ fold(or)', 'as_count ∘ fold(and)', 'fold(add) ∘ map(as_count)',
     'fold(max) ∘ map(as_count)']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from brickwork.compose.holes import hole_arch
from brickwork.compose.program import hole_term, term_str
from brickwork.compose.types import CType, ListOf, TypeKey, abstract, hole_allowed
from brickwork.modules import Module


@dataclass(frozen=True)
class Function:
    """A library function or registry module as the enumerator sees it.

    Attributes:
        term: its leaf term (``["lib", name]`` or ``["reg", ref]``).
        inputs: its input types (one, or ``state`` then ``item`` for a step).
        output: its output type.
    """

    term: tuple[str, str]
    inputs: tuple[CType, ...]
    output: CType

    @property
    def step(self) -> bool:
        return len(self.inputs) == 2


def module_function(term: tuple[str, str], module_or_signature: Any) -> Function | None:
    """The :class:`Function` of a module (or a :class:`Signature`), or None when it is not
    a function (one output, one input, or a (state, item) step whose state has the
    output's type)."""
    sig = (
        module_or_signature.signature
        if isinstance(module_or_signature, Module)
        else module_or_signature
    )
    if len(sig.outputs) != 1:
        return None
    out = next(iter(sig.outputs.values()))
    ins = dict(sig.inputs)
    if len(ins) == 1:
        return Function(term, (next(iter(ins.values())),), out)
    if len(ins) == 2:
        names = ["state", "item"] if {"state", "item"} <= set(ins) else list(ins)
        if ins[names[0]] == out:
            return Function(term, (ins[names[0]], ins[names[1]]), out)
    return None


def functions(library: Mapping[str, Module]) -> list[Function]:
    """Library ops (``{name: module}``) as functions."""
    out = []
    for name, m in library.items():
        f = module_function(("lib", name), m)
        if f is not None:
            out.append(f)
    return out


@dataclass
class Space:
    """The program space of one task under one type abstraction.

    Build it with :meth:`build`; :meth:`count` counts programs, :meth:`programs`
    lists them (typed mode only needs that).
    """

    goal_in: TypeKey
    goal_out: TypeKey
    mode: str
    unary: list[tuple[TypeKey, TypeKey, Any]] = field(default_factory=list)
    steps: list[tuple[TypeKey, TypeKey, Any]] = field(default_factory=list)
    universe: list[TypeKey] = field(default_factory=list)
    concrete: dict[TypeKey, CType] = field(default_factory=dict)
    monoids: set[str] = field(default_factory=set)  # state kinds with a library step

    @classmethod
    def build(
        cls, goal_in: CType, goal_out: CType, fns: list[Function], mode: str = "typed"
    ) -> Space:
        """The space for ``goal_in → goal_out`` over ``fns`` under abstraction ``mode``."""
        space = cls(abstract(goal_in, mode), abstract(goal_out, mode), mode)
        types: list[CType] = [goal_in, goal_out]
        for f in fns:
            types.extend(f.inputs)
            types.append(f.output)
            keys = tuple(abstract(t, mode) for t in f.inputs)
            if f.step:
                space.steps.append((keys[0], keys[1], f.term))
                if f.term[0] == "lib":
                    space.monoids.add(getattr(f.inputs[0], "kind", ""))
            else:
                space.unary.append((keys[0], abstract(f.output, mode), f.term))
        closed: list[CType] = []
        for t in types:
            closed.append(t)
            closed.append(t.item if isinstance(t, ListOf) else ListOf(t))
        for t in closed:
            k = abstract(t, mode)
            if k not in space.concrete:
                space.concrete[k] = t
                space.universe.append(k)
        return space

    # ----- holes ----------------------------------------------------------------------
    def _hole(self, a: TypeKey, b: TypeKey) -> Any:
        if self.mode == "untyped":
            return ("hole", "T", "T")
        ta, tb = self.concrete[a], self.concrete[b]
        if self.mode == "typed" and hole_allowed(ta, tb):
            return None  # value domains prune holes (see hole_allowed)
        if hole_arch({"x": ta}, tb) is None:
            return None
        return tuple(hole_term({"x": ta}, tb))

    def _step_hole(self, s: TypeKey, a: TypeKey) -> Any:
        if self.mode == "untyped":
            return ("hole", "T", "T")
        ts, ta = self.concrete[s], self.concrete[a]
        if self.mode == "typed" and hole_allowed((ts, ta), ts, monoids=self.monoids):
            return None
        if hole_arch({"state": ts, "item": ta}, ts) is None:
            return None
        return tuple(hole_term({"state": ts, "item": ta}, ts))

    def _list(self, k: TypeKey) -> TypeKey | None:
        """The item key of a list key (None when ``k`` is not a list)."""
        if self.mode == "untyped":
            return "T"
        if isinstance(k, tuple) and k and k[0] == "List":
            return k[1]
        return None

    def _list_of(self, item: TypeKey) -> TypeKey:
        return "T" if self.mode == "untyped" else ("List", item)

    # ----- the grammar ----------------------------------------------------------------
    def _gen(
        self, a: TypeKey, b: TypeKey, size: int, holes: int, top_compose: bool, counting: bool
    ) -> Any:
        return _gen_cached(self, a, b, size, holes, top_compose, counting)

    def count(self, max_size: int, max_holes: int = 2) -> int:
        """Programs of size ≤ ``max_size`` with ≤ ``max_holes`` holes for the goal."""
        _gen_cached.cache_clear()
        return sum(
            self._gen(self.goal_in, self.goal_out, s, h, True, True)
            for s in range(1, max_size + 1)
            for h in range(max_holes + 1)
        )

    def programs(self, max_size: int, max_holes: int = 2) -> list[Any]:
        """Every program (as a term) of size ≤ ``max_size`` with ≤ ``max_holes`` holes,
        smallest first (typed mode)."""
        _gen_cached.cache_clear()
        out: list[Any] = []
        for s in range(1, max_size + 1):
            for h in range(max_holes + 1):
                out.extend(
                    _to_list(t) for t in self._gen(self.goal_in, self.goal_out, s, h, True, False)
                )
        return out

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other


def _to_list(term: Any) -> Any:
    if isinstance(term, tuple):
        return [_to_list(t) for t in term]
    return term


@cache
def _gen_cached(
    space: Space, a: TypeKey, b: TypeKey, size: int, holes: int, top_compose: bool, counting: bool
) -> Any:
    total: Any = 0 if counting else []

    def add(item: Any, n: int = 1) -> None:
        nonlocal total
        if counting:
            total += n
        else:
            total.append(item)

    if size == 1:
        if holes == 0:
            for ka, kb, term in space.unary:
                if ka == a and kb == b:
                    add(term)
        elif holes == 1:
            h = space._hole(a, b)
            if h is not None:
                add(h)
        return total
    la, lb = space._list(a), space._list(b)
    if la is not None and lb is not None:
        for sub in _sub(space, la, lb, size - 1, holes, counting):  # map
            add(("map", sub) if not counting else None, sub if counting else 1)
        for sub in _sub(space, space._list_of(la), lb, size - 1, holes, counting):  # conv
            add(("conv", sub) if not counting else None, sub if counting else 1)
    if la is not None and size == 2 and (lb is None or space.mode == "untyped"):
        if holes == 0:
            for ks, ki, term in space.steps:
                if ks == b and ki == la:
                    add(("fold", term))
        elif holes == 1:
            h = space._step_hole(b, la)
            if h is not None:
                add(("fold", h))
    if top_compose and size >= 3:
        for c in space.universe:
            for s1 in range(1, size - 1):
                s2 = size - 1 - s1
                for h1 in range(holes + 1):
                    left = _gen_cached(space, a, c, s1, h1, False, counting)
                    if not left:
                        continue
                    right = _gen_cached(space, c, b, s2, holes - h1, True, counting)
                    if not right:
                        continue
                    if counting:
                        add(None, left * right)
                    else:
                        for f in left:
                            for g in right:
                                add(("compose", f, g))
    return total


def _sub(space: Space, a: TypeKey, b: TypeKey, size: int, holes: int, counting: bool) -> list[Any]:
    got = _gen_cached(space, a, b, size, holes, True, counting)
    if counting:
        return [got] if got else []
    return got


__all__ = ["Function", "Space", "functions", "module_function", "term_str"]
