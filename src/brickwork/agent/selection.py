"""Selective input and update (§3.1, Fig. 3.2): which part of R(t) an operator reads and
where it writes its result back.

Three ways to select:

* :class:`Field` reads or writes a whole field.
* :class:`At` uses a ``Pointer`` field as an *address*: it reads the pointer-weighted
  value under the pointer (``Σ_i p_i · x_i``) and writes a value back there
  (``x_i ← (1 − p_i) · x_i + p_i · v``). A functional submodule behind ``At`` sees
  fixed-size inputs whatever the length of the list.
* :class:`Shifted` writes a pointer moved by a distribution over relative shifts
  (``Σ_d s_d · shift(p, d)``, location-based addressing): the functional submodule only
  says *how far* to move.

Example:
    >>> import torch
    >>> from brickwork.agent import Representation
    >>> from brickwork.types import OneHot, Pointer
    >>> rep = Representation({"v": OneHot("b n k"), "a": Pointer("b n")},
    ...                      {"v": torch.eye(3).unsqueeze(0), "a": torch.tensor([[0., 1., 0.]])})
    >>> At("v", "a").read(rep)
    tensor([[0., 1., 0.]])
    >>> Shifted("a", "a").write(rep, torch.tensor([[0., 0., 1.]]))["a"]
    tensor([[0., 0., 1.]])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import final

import torch

from brickwork.agent.representation import Representation
from brickwork.errors import AgentError
from brickwork.types import AxisBindings, NeuralType


def fit_reason(
    src: NeuralType, dst: NeuralType, bindings: AxisBindings | None = None, *, relaxed: bool = False
) -> str:
    """Why a value of type ``src`` cannot go where ``dst`` is expected, or ``''``.

    Besides the types' own ``can_feed`` rules, a value whose domain lies inside
    ``dst``'s (every Pointer is a valid SoftMask) fits. With ``relaxed`` (writes into
    a field), a value of a relaxation of the field's domain also fits (a SoftMask into a
    Pointer field): a typed interface projects it back onto the field's type.
    """
    b = bindings if bindings is not None else AxisBindings()
    reason = src.feed_reason(dst, b.copy())
    if not reason:
        src.feed_reason(dst, b)
        return ""
    src_range = getattr(src, "value_range", None)
    dst_range = getattr(dst, "value_range", None)
    if src_range is None or dst_range is None:
        return reason
    inside = dst_range[0] <= src_range[0] and src_range[1] <= dst_range[1]
    if relaxed:
        inside = inside or (src_range == dst_range)
    if not inside:
        return reason
    if src.dtype != dst.dtype:
        return f"dtype {src.dtype} vs {dst.dtype}"
    return b.unify(src.axes, dst.axes)


def _field_type(types: Mapping[str, NeuralType], name: str, where: str) -> NeuralType:
    if name not in types:
        raise AgentError(
            f"{where}: the representation has no field '{name}'; fields: "
            f"{sorted(types)}. Add the field or select another one"
        )
    return types[name]


def _address(
    types: Mapping[str, NeuralType], field: str, pointer: str, where: str
) -> tuple[NeuralType, int]:
    """The type read at ``pointer`` from ``field`` and the addressed axis's index."""
    ft = _field_type(types, field, where)
    pt = _field_type(types, pointer, where)
    if pt.kind not in ("Pointer", "OneHot"):
        raise AgentError(
            f"{where}: field '{pointer}' is a {pt!r}; an address must be a "
            "Pointer (a one-hot over positions)"
        )
    axis = pt.axes[-1]
    if axis not in ft.axes or ft.axes[0] != pt.axes[0]:
        raise AgentError(
            f"{where}: pointer '{pointer}' {pt!r} addresses axis '{axis}', which "
            f"field '{field}' {ft!r} does not have (or batch axes differ)"
        )
    index = ft.axes.index(axis)
    if index == 0:
        raise AgentError(f"{where}: cannot address the batch axis of field '{field}'")
    return ft.with_axes([a for a in ft.axes if a != axis]), index


def _weights(p: torch.Tensor, x: torch.Tensor, index: int) -> torch.Tensor:
    shape = [p.shape[0]] + [1] * (x.dim() - 1)
    shape[index] = p.shape[1]
    return p.reshape(shape).to(x.dtype)


class Selection:
    """Base of one selective read and/or write of the representation.

    Every method refuses by default (a subclass implements the ones it supports), so
    nothing is abstract and the class needs no ``abc.ABC``.
    """

    def read_type(self, types: Mapping[str, NeuralType], where: str) -> NeuralType:
        raise AgentError(f"{where}: {self!r} cannot be read from")

    def write_type(self, types: Mapping[str, NeuralType], where: str) -> NeuralType:
        raise AgentError(f"{where}: {self!r} cannot be written to")

    def read(self, rep: Representation) -> torch.Tensor:
        raise AgentError(f"{self!r} cannot be read from")

    def write(self, rep: Representation, value: torch.Tensor) -> dict[str, torch.Tensor]:
        raise AgentError(f"{self!r} cannot be written to")

    def target(self, before: Representation, after: Representation) -> torch.Tensor:
        """What a functional submodule should output so that writing it turns
        ``before`` into ``after`` (supervision from traces)."""
        raise AgentError(f"{self!r} cannot derive a training target")

    @property
    def fields(self) -> tuple[str, ...]:
        """Representation fields this selection touches."""
        return ()


@final
class Field(Selection):
    """A whole field, read as is or overwritten.

    Example:
        >>> Field("a")
        Field('a')
    """

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"Field({self.name!r})"

    @property
    def fields(self) -> tuple[str, ...]:
        return (self.name,)

    def read_type(self, types: Mapping[str, NeuralType], where: str) -> NeuralType:
        return _field_type(types, self.name, where)

    def write_type(self, types: Mapping[str, NeuralType], where: str) -> NeuralType:
        return _field_type(types, self.name, where)

    def read(self, rep: Representation) -> torch.Tensor:
        return rep[self.name]

    def write(self, rep: Representation, value: torch.Tensor) -> dict[str, torch.Tensor]:
        return {self.name: value}

    def target(self, before: Representation, after: Representation) -> torch.Tensor:
        return after[self.name]


@final
class At(Selection):
    """Addressed selection: the part of ``field`` under the pointer field ``pointer``.

    Example:
        >>> At("values", "a")
        At('values', 'a')
    """

    def __init__(self, field: str, pointer: str):
        self.field = field
        self.pointer = pointer

    def __repr__(self) -> str:
        return f"At({self.field!r}, {self.pointer!r})"

    @property
    def fields(self) -> tuple[str, ...]:
        return (self.field, self.pointer)

    def read_type(self, types: Mapping[str, NeuralType], where: str) -> NeuralType:
        return _address(types, self.field, self.pointer, where)[0]

    def write_type(self, types: Mapping[str, NeuralType], where: str) -> NeuralType:
        return _address(types, self.field, self.pointer, where)[0]

    def _index(self, rep: Representation) -> int:
        return _address(rep.types, self.field, self.pointer, repr(self))[1]

    def read(self, rep: Representation) -> torch.Tensor:
        x, p = rep[self.field], rep[self.pointer]
        index = self._index(rep)
        return (_weights(p, x, index) * x).sum(dim=index)

    def write(self, rep: Representation, value: torch.Tensor) -> dict[str, torch.Tensor]:
        x, p = rep[self.field], rep[self.pointer]
        index = self._index(rep)
        w = _weights(p, x, index)
        return {self.field: (1.0 - w) * x + w * value.unsqueeze(index).to(x.dtype)}

    def target(self, before: Representation, after: Representation) -> torch.Tensor:
        x, p = after[self.field], before[self.pointer]
        index = self._index(before)
        return (_weights(p, x, index) * x).sum(dim=index)


def shift(p: torch.Tensor, d: int) -> torch.Tensor:
    """``p`` moved by ``d`` positions along its last axis; what falls off is lost."""
    if d == 0:
        return p
    out = torch.zeros_like(p)
    if abs(d) >= p.shape[-1]:
        return out
    if d > 0:
        out[..., d:] = p[..., :-d]
    else:
        out[..., :d] = p[..., -d:]
    return out


@final
class Shifted(Selection):
    """Write ``field`` as the pointer ``source`` moved by a distribution over ``shifts``.

    The functional submodule outputs ``Probs['b s']`` over the relative moves
    (default ``(-1, 0, +1)``); the update writes ``Σ_d s_d · shift(source, d)``.

    Example:
        >>> Shifted("b", "a", shifts=(0, 1))
        Shifted('b', 'a', shifts=(0, 1))
    """

    def __init__(self, field: str, source: str, shifts: Sequence[int] = (-1, 0, 1)):
        self.field = field
        self.source = source
        self.shifts = tuple(int(s) for s in shifts)
        if len(set(self.shifts)) != len(self.shifts) or not self.shifts:
            raise AgentError(f"Shifted: shifts {shifts!r} must be distinct and non-empty")

    def __repr__(self) -> str:
        return f"Shifted({self.field!r}, {self.source!r}, shifts={self.shifts})"

    @property
    def fields(self) -> tuple[str, ...]:
        return (self.field, self.source)

    def write_type(self, types: Mapping[str, NeuralType], where: str) -> NeuralType:
        for name in (self.field, self.source):
            t = _field_type(types, name, where)
            if t.kind != "Pointer":
                raise AgentError(f"{where}: Shifted moves pointers; field '{name}' is {t!r}")
        from brickwork.types import Probs

        return Probs([types[self.field].axes[0], len(self.shifts)])

    def write(self, rep: Representation, value: torch.Tensor) -> dict[str, torch.Tensor]:
        p = rep[self.source]
        terms = (value[:, i : i + 1].to(p.dtype) * shift(p, d) for i, d in enumerate(self.shifts))
        out = sum(terms, torch.zeros_like(p))
        return {self.field: out}

    def target(self, before: Representation, after: Representation) -> torch.Tensor:
        p, q = before[self.source], after[self.field]
        scores = torch.stack([(shift(p, d) * q).sum(-1) for d in self.shifts], dim=-1)
        return torch.nn.functional.one_hot(scores.argmax(-1), len(self.shifts)).to(p.dtype)


def check_reads(
    reads: Mapping[str, Selection],
    ports: Mapping[str, NeuralType],
    types: Mapping[str, NeuralType],
    owner: str,
    fix: str,
    bindings: AxisBindings,
) -> None:
    """Raise :class:`AgentError` at the first selective read whose field type does not
    fit its input port (``owner`` names the reader, ``fix`` says how to mend it)."""
    for port, sel in reads.items():
        where = f"{owner}, input port '{port}'"
        found = sel.read_type(types, where)
        expected = ports[port]
        reason = fit_reason(found, expected, bindings)
        if reason:
            raise AgentError(
                f"{where} reads {sel!r}: found {found!r}, expected {expected!r} "
                f"({reason}). Fix: {fix}"
            )


__all__ = ["At", "Field", "Selection", "Shifted", "fit_reason", "shift"]
