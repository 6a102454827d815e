"""Parameter-free library functions the search composes with (HOUDINI's library).

Each is a typed :class:`brickwork.modules.Module` of kind ``compose.op``: unary
functions (``as_count``, ``not``, ``expect``) and fold steps (``add``, ``max``, ``or``,
``and``), whose ``state`` port has the type of their output.

Example:
    >>> import torch
    >>> add = LibraryOp("add")
    >>> add(state=torch.tensor([[2.0]]), item=torch.tensor([[1.0]]))
    tensor([[3.]])
    >>> LibraryOp("expect", k=3)(x=torch.tensor([[0.0, 0.0, 1.0]]))
    tensor([[2.]])
"""

from __future__ import annotations

from typing import Any

import torch

from brickwork.errors import PortError
from brickwork.modules import Module, register_kind
from brickwork.types import Bool, Count, NeuralType, Probs

#: op name -> (input ports, output type); ``k`` is the size of a Probs input
_OPS: dict[str, Any] = {
    "as_count": lambda k: ({"x": Bool("b 1")}, Count("b 1")),
    "not": lambda k: ({"x": Bool("b 1")}, Bool("b 1")),
    "expect": lambda k: ({"x": Probs(f"b {k}")}, Count("b 1")),
    "add": lambda k: ({"state": Count("b 1"), "item": Count("b 1")}, Count("b 1")),
    "max": lambda k: ({"state": Count("b 1"), "item": Count("b 1")}, Count("b 1")),
    "or": lambda k: ({"state": Bool("b 1"), "item": Bool("b 1")}, Bool("b 1")),
    "and": lambda k: ({"state": Bool("b 1"), "item": Bool("b 1")}, Bool("b 1")),
}
STEP_OPS = ("add", "max", "or", "and")


@register_kind(
    "compose.op",
    example_config={"op": "add"},
    sizes={"b": 3},
    description="a parameter-free library function of brickwork.compose",
)
class LibraryOp(Module):
    """A parameter-free library function (see the module docstring for the list).

    Args:
        op: ``as_count`` (Bool→Count), ``not`` (Bool→Bool), ``expect`` (Probs[k]→Count,
            the expected class index), ``add``/``max`` ((Count, Count)→Count),
            ``or``/``and`` ((Bool, Bool)→Bool).
        k: the number of classes of ``expect``'s input.
    """

    _values: torch.Tensor  # a buffer: 0 .. k-1

    def __init__(self, op: str, k: int = 10):
        super().__init__()
        if op not in _OPS:
            raise PortError(f"compose.op: unknown op {op!r}; choose one of {sorted(_OPS)}")
        self.op, self.k = op, int(k)
        ins, out = _OPS[op](self.k)
        self.inputs = ins
        self.outputs = {"y": out}
        self.register_buffer("_values", torch.arange(self.k, dtype=torch.float32), persistent=False)

    @property
    def name(self) -> str:
        return f"expect{self.k}" if self.op == "expect" else self.op

    def forward(self, **ports: torch.Tensor) -> torch.Tensor:
        op = self.op
        if op == "as_count":
            return ports["x"]
        if op == "not":
            return 1.0 - ports["x"]
        if op == "expect":
            x = ports["x"]
            return (x * self._values.to(x.dtype)).sum(-1, keepdim=True)
        s, i = ports["state"], ports["item"]
        if op == "add":
            return s + i
        if op in ("max", "or"):
            return torch.maximum(s, i)
        return torch.minimum(s, i)


def standard_library(classes: tuple[int, ...] = (10,)) -> dict[str, LibraryOp]:
    """Every library function by name (``expect`` once per class count in ``classes``).

    Example:
        >>> sorted(standard_library())
        ['add', 'and', 'as_count', 'expect10', 'max', 'not', 'or']
    """
    out: dict[str, LibraryOp] = {}
    for op in _OPS:
        if op == "expect":
            for k in classes:
                m = LibraryOp("expect", k=k)
                out[m.name] = m
        else:
            out[op] = LibraryOp(op)
    return out


def initial_state(t: NeuralType, batch: int, device: torch.device | None = None) -> torch.Tensor:
    """The default initial state of a fold over a state of type ``t``: zeros (Count 0,
    Bool false), a uniform distribution for Probs."""
    shape = [batch] + [int(a) for a in t.axes[1:]]
    if t.kind == "Probs":
        return torch.full(shape, 1.0 / shape[-1], device=device)
    return torch.zeros(shape, device=device)
