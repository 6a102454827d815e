"""Hand-coded reference operators and controllers with the same ports as the learned
ones: swap one in for a learned module and the agent still runs (hybrid by construction).

Example:
    >>> import torch
    >>> HandShift()(torch.tensor([[1.0, 0.0, 0.0]]))
    tensor([[0., 1., 0.]])
"""

from __future__ import annotations

from typing import final

import torch

from brickwork.agent import shift
from brickwork.modules import Module, register_kind
from brickwork.studies.sorting.teacher import CODES, FLAT_OPS, RECURSIVE_OPS
from brickwork.types import Features, OneHot, Probs, SoftMask


@final
@register_kind("sorting.HandShift", sizes={"b": 3, "n": 5})
class HandShift(Module):
    """Reference pointer operator (ports of :class:`PointerLSTM`): move one position right.

    Example:
        >>> HandShift()(torch.tensor([[0.0, 1.0]]))
        tensor([[0., 0.]])
    """

    inputs = {"pointer": SoftMask("b n")}
    outputs = {"moved": SoftMask("b n")}

    def forward(self, pointer: torch.Tensor) -> torch.Tensor:
        return shift(pointer, 1)


@final
@register_kind("sorting.HandSwap", sizes={"b": 3, "n": 5})
class HandSwap(Module):
    """Reference ``swap`` (ports of :class:`SwapBiLSTM`): exchange the values under A and B.

    Example:
        >>> v = torch.nn.functional.one_hot(torch.tensor([[3, 9]]), 11).float()
        >>> HandSwap()(torch.eye(2)[:1], torch.eye(2)[1:], v).argmax(-1)
        tensor([[9, 3]])
    """

    inputs = {"a": SoftMask("b n"), "b": SoftMask("b n"), "values": Probs(["b", "n", CODES])}
    outputs = {"swapped": Probs(["b", "n", CODES])}

    def forward(self, a: torch.Tensor, b: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        va = (a.unsqueeze(-1) * values).sum(1, keepdim=True)
        vb = (b.unsqueeze(-1) * values).sum(1, keepdim=True)
        wa, wb = a.unsqueeze(-1), b.unsqueeze(-1)
        out = (values * (1 - wa) * (1 - wb) + wa * vb + wb * va).clamp(min=0.0)
        # exact for one-hot pointers; keeps rows on the simplex for soft ones
        return out / out.sum(-1, keepdim=True).clamp(min=1e-12)


@final
@register_kind("sorting.HandShiftHead", sizes={"b": 3})
class HandShiftHead(Module):
    """Reference addressed pointer operator (ports of :class:`ShiftHead`): always +1.

    Example:
        >>> HandShiftHead()(torch.eye(11)[:1])
        tensor([[0., 0., 1.]])
    """

    inputs = {"value": Probs(["b", CODES])}
    outputs = {"shift": Probs(["b", 3])}

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(value.shape[0], 3, dtype=value.dtype, device=value.device)
        out[:, 2] = 1.0
        return out


@final
@register_kind("sorting.HandPairSwap", sizes={"b": 3})
class HandPairSwap(Module):
    """Reference addressed ``swap`` (ports of :class:`PairSwap`): (v_A, v_B) -> (v_B, v_A).

    Example:
        >>> a, b = HandPairSwap()(torch.eye(11)[:1], torch.eye(11)[1:2])
        >>> int(a.argmax()), int(b.argmax())
        (1, 0)
    """

    inputs = {"va": Probs(["b", CODES]), "vb": Probs(["b", CODES])}
    outputs = {"new_a": Probs(["b", CODES]), "new_b": Probs(["b", CODES])}

    def forward(self, va: torch.Tensor, vb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return vb, va


@final
@register_kind("sorting.HandDigestor", sizes={"b": 3})
class HandDigestor(Module):
    """Reference addressed digestor: the concatenation [v_A, v_B, B at end, A at n−2].

    Example:
        >>> HandDigestor()(torch.zeros(1), torch.ones(1), torch.eye(11)[:1],
        ...                torch.eye(11)[1:2]).shape
        torch.Size([1, 24])
    """

    inputs = {
        "a_penult": SoftMask("b"),
        "b_end": SoftMask("b"),
        "va": Probs(["b", CODES]),
        "vb": Probs(["b", CODES]),
    }
    outputs = {"embedding": Features(["b", 2 * CODES + 2])}

    def forward(
        self, a_penult: torch.Tensor, b_end: torch.Tensor, va: torch.Tensor, vb: torch.Tensor
    ) -> torch.Tensor:
        return torch.cat([va, vb, b_end.unsqueeze(-1), a_penult.unsqueeze(-1)], -1)


@final
@register_kind("sorting.TeacherPolicy", example_config={"recursive": False}, sizes={"b": 3})
class TeacherPolicy(Module):
    """The teacher as a hand-coded policy over :class:`HandDigestor`'s embedding.

    Flat choices ``mova, movb, retb, swap, EOP``; recursive ``movb, swap, sort_tail, EOP``.

    Example:
        >>> p = TeacherPolicy()
        >>> e = HandDigestor()(
        ...     torch.zeros(1), torch.zeros(1), torch.eye(11)[[5]], torch.eye(11)[[2]]
        ... )
        >>> FLAT_OPS[int(p(e, torch.eye(6)[[5]]).argmax())]
        'swap'
    """

    def __init__(self, recursive: bool = False):
        super().__init__()
        self.recursive = recursive
        self.ops = RECURSIVE_OPS if recursive else FLAT_OPS
        k = len(self.ops)
        self.inputs = {
            "embedding": Features(["b", 2 * CODES + 2]),
            "previous": OneHot(["b", k + 1]),
        }
        self.outputs = {"selection": Probs(["b", k])}

    def forward(self, embedding: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        va = embedding[:, :CODES].argmax(-1)
        vb = embedding[:, CODES : 2 * CODES].argmax(-1)
        b_end = embedding[:, -2] > 0.5
        a_penult = embedding[:, -1] > 0.5
        prev = previous.argmax(-1)
        index = {o: i for i, o in enumerate(self.ops)}
        after = index["sort_tail"] if self.recursive else index["mova"]
        then = index["EOP"] if self.recursive else index["retb"]
        tail = index["sort_tail"] if self.recursive else index["mova"]
        choice = torch.full_like(prev, index["EOP"])
        choice = torch.where(~a_penult, torch.full_like(prev, tail), choice)
        choice = torch.where(~b_end, torch.full_like(prev, index["movb"]), choice)
        choice = torch.where(vb < va, torch.full_like(prev, index["swap"]), choice)
        choice = torch.where(prev == after, torch.full_like(prev, then), choice)
        return torch.nn.functional.one_hot(choice, len(self.ops)).to(embedding.dtype)


__all__ = [
    "HandDigestor",
    "HandPairSwap",
    "HandShift",
    "HandShiftHead",
    "HandSwap",
    "TeacherPolicy",
]
