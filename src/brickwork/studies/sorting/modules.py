"""Functional submodules of the sorting study, registered as brickwork module kinds.

Thesis architectures (§3.2.1, Fig. 3.3–3.5), LSTMs with 100 hidden units:

* :class:`PointerLSTM` — ``mova``/``movb``/``retb``: an LSTM along the positions of a
  pointer and a sigmoid per position (learns to delay the pointer by one position).
* :class:`SwapBiLSTM` — ``swap``: values and both pointers into a bidirectional LSTM, one
  shared fully connected layer per direction, directions merged by addition, softmax.
* :class:`WholeListDigestor` + :class:`PolicyLSTM` — the controller: an LSTM over the
  whole list makes the embedding; an LSTM cell over time picks the operator.

Addressed architectures (beyond the thesis): their selective inputs read the values
under the pointers, so the functional submodules see fixed-size inputs:

* :class:`ShiftHead` — value under a pointer -> distribution over moves (−1, 0, +1).
* :class:`PairSwap` — (v_A, v_B) -> (v_B, v_A) as two distributions over codes.
* :class:`AddressedDigestor` + :class:`PolicyMLP` — v_A, v_B, end-of-list flags ->
  embedding; embedding + previous operator -> operator.

Example:
    >>> import torch
    >>> PointerLSTM(hidden=8)(torch.tensor([[1.0, 0.0, 0.0]])).shape
    torch.Size([1, 3])
"""

from __future__ import annotations

from typing import final

import torch
from torch import nn

from brickwork.modules import Module, register_kind
from brickwork.studies.sorting.teacher import CODES
from brickwork.types import Features, OneHot, Probs, SoftMask

HIDDEN = 100


@final
@register_kind("sorting.PointerLSTM", example_config={"hidden": 8}, sizes={"b": 3, "n": 5})
class PointerLSTM(Module):
    """Thesis pointer operator (Fig. 3.3): LSTM along positions, sigmoid per position.

    Example:
        >>> m = PointerLSTM(hidden=4)
        >>> bool(((m(torch.eye(4)) >= 0) & (m(torch.eye(4)) <= 1)).all())
        True
    """

    inputs = {"pointer": SoftMask("b n")}
    outputs = {"moved": SoftMask("b n")}

    def __init__(self, hidden: int = HIDDEN):
        super().__init__()
        self.lstm = nn.LSTM(1, hidden, batch_first=True)
        self.out = nn.Linear(hidden, 1)

    def forward(self, pointer: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(pointer.unsqueeze(-1))
        return torch.sigmoid(self.out(h)).squeeze(-1)


@final
@register_kind("sorting.SwapBiLSTM", example_config={"hidden": 8}, sizes={"b": 3, "n": 5})
class SwapBiLSTM(Module):
    """Thesis ``swap`` (Fig. 3.4): BiLSTM, shared FC per direction, merged by addition.

    Example:
        >>> v = torch.nn.functional.one_hot(torch.tensor([[3, 9, 5]]), 11).float()
        >>> SwapBiLSTM(hidden=4)(torch.eye(3)[:1], torch.eye(3)[1:2], v).shape
        torch.Size([1, 3, 11])
    """

    # ports in alphabetical order: saved signatures are stored with sorted keys
    inputs = {"a": SoftMask("b n"), "b": SoftMask("b n"), "values": Probs(["b", "n", CODES])}
    outputs = {"swapped": Probs(["b", "n", CODES])}

    def __init__(self, hidden: int = HIDDEN):
        super().__init__()
        self.hidden = hidden
        self.lstm = nn.LSTM(CODES + 2, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(hidden, CODES)  # shared by both directions

    def forward(self, a: torch.Tensor, b: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        x = torch.cat([values, a.unsqueeze(-1), b.unsqueeze(-1)], dim=-1)
        h, _ = self.lstm(x)
        fwd, bwd = h[..., : self.hidden], h[..., self.hidden :]
        return torch.softmax(self.out(fwd) + self.out(bwd), dim=-1)


@final
@register_kind("sorting.WholeListDigestor", example_config={"hidden": 8}, sizes={"b": 3, "n": 5})
class WholeListDigestor(Module):
    """Thesis digestor (Fig. 3.5): an LSTM over the whole list; last output = embedding.

    Example:
        >>> v = torch.nn.functional.one_hot(torch.tensor([[3, 9]]), 11).float()
        >>> WholeListDigestor(hidden=4)(torch.eye(2)[:1], torch.eye(2)[1:], v).shape
        torch.Size([1, 4])
    """

    def __init__(self, hidden: int = HIDDEN):
        super().__init__()
        self.inputs = {
            "a": SoftMask("b n"),
            "b": SoftMask("b n"),
            "values": Probs(["b", "n", CODES]),
        }
        self.outputs = {"embedding": Features(["b", hidden])}
        self.lstm = nn.LSTM(CODES + 2, hidden, batch_first=True)

    def forward(self, a: torch.Tensor, b: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        x = torch.cat([values, a.unsqueeze(-1), b.unsqueeze(-1)], dim=-1)
        _, (h, _) = self.lstm(x)
        return h[-1]


@final
@register_kind(
    "sorting.PolicyLSTM", example_config={"embedding": 6, "hidden": 8, "choices": 5}, sizes={"b": 3}
)
class PolicyLSTM(Module):
    """Thesis policy (Fig. 3.5): an LSTM cell over time on the embedding -> operator.

    Example:
        >>> p = PolicyLSTM(embedding=4, hidden=6, choices=5)
        >>> s = p.initial_state(2)
        >>> p(s["c"], torch.zeros(2, 4), s["h"])[2].shape
        torch.Size([2, 5])
    """

    def __init__(self, embedding: int = HIDDEN, hidden: int = HIDDEN, choices: int = 5):
        super().__init__()
        self.hidden = hidden
        self.inputs = {
            "c": Features(["b", hidden]),
            "embedding": Features(["b", embedding]),
            "h": Features(["b", hidden]),
        }
        self.outputs = {
            "c": Features(["b", hidden]),
            "h": Features(["b", hidden]),
            "selection": Probs(["b", choices]),
        }
        self.cell = nn.LSTMCell(embedding, hidden)
        self.out = nn.Linear(hidden, choices)

    def initial_state(
        self, batch: int, device: torch.device | str | None = None
    ) -> dict[str, torch.Tensor]:
        """Zero LSTM state, on ``device`` (default: where the weights are)."""
        z = torch.zeros(
            batch, self.hidden, device=self.out.weight.device if device is None else device
        )
        return {"h": z, "c": z.clone()}

    def forward(
        self, c: torch.Tensor, embedding: torch.Tensor, h: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h, c = self.cell(embedding, (h, c))
        return c, h, torch.softmax(self.out(h), dim=-1)


@final
@register_kind("sorting.ShiftHead", example_config={"hidden": 8}, sizes={"b": 3})
class ShiftHead(Module):
    """Addressed pointer operator: the value under the pointer -> move (−1, 0, +1).

    Example:
        >>> ShiftHead(hidden=4)(torch.eye(11)[:2]).shape
        torch.Size([2, 3])
    """

    inputs = {"value": Probs(["b", CODES])}
    outputs = {"shift": Probs(["b", 3])}

    def __init__(self, hidden: int = 32):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(CODES, hidden), nn.Tanh(), nn.Linear(hidden, 3))

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(value), dim=-1)


@final
@register_kind("sorting.PairSwap", example_config={"hidden": 8}, sizes={"b": 3})
class PairSwap(Module):
    """Addressed ``swap``: (v_A, v_B) -> (new v_A, new v_B), one distribution each.

    Example:
        >>> a, b = PairSwap(hidden=4)(torch.eye(11)[:1], torch.eye(11)[1:2])
        >>> a.shape, b.shape
        (torch.Size([1, 11]), torch.Size([1, 11]))
    """

    inputs = {"va": Probs(["b", CODES]), "vb": Probs(["b", CODES])}
    outputs = {"new_a": Probs(["b", CODES]), "new_b": Probs(["b", CODES])}

    def __init__(self, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(2 * CODES, hidden), nn.Tanh(), nn.Linear(hidden, 2 * CODES)
        )

    def forward(self, va: torch.Tensor, vb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.net(torch.cat([va, vb], dim=-1))
        return torch.softmax(z[:, :CODES], -1), torch.softmax(z[:, CODES:], -1)


@final
@register_kind("sorting.AddressedDigestor", example_config={"embedding": 8}, sizes={"b": 3})
class AddressedDigestor(Module):
    """Addressed digestor: v_A, v_B and the end-of-list flags -> a fixed-size embedding.

    Example:
        >>> d = AddressedDigestor(embedding=6)
        >>> d(torch.zeros(1), torch.ones(1), torch.eye(11)[:1], torch.eye(11)[1:2]).shape
        torch.Size([1, 6])
    """

    def __init__(self, embedding: int = 64):
        super().__init__()
        self.inputs = {
            "a_penult": SoftMask("b"),
            "b_end": SoftMask("b"),
            "va": Probs(["b", CODES]),
            "vb": Probs(["b", CODES]),
        }
        self.outputs = {"embedding": Features(["b", embedding])}
        self.net = nn.Sequential(nn.Linear(2 * CODES + 2, embedding), nn.Tanh())

    def forward(
        self, a_penult: torch.Tensor, b_end: torch.Tensor, va: torch.Tensor, vb: torch.Tensor
    ) -> torch.Tensor:
        return self.net(torch.cat([va, vb, b_end.unsqueeze(-1), a_penult.unsqueeze(-1)], -1))


@final
@register_kind(
    "sorting.PolicyMLP", example_config={"embedding": 6, "hidden": 8, "choices": 5}, sizes={"b": 3}
)
class PolicyMLP(Module):
    """Addressed policy: embedding + previous operator (one-hot + start code) -> operator.

    Its only state is the previous selection, which the interface provides, so it has no
    recurrent memory to drift over thousands of steps.

    Example:
        >>> PolicyMLP(embedding=4, hidden=8, choices=5)(torch.zeros(2, 4), torch.eye(6)[:2]).shape
        torch.Size([2, 5])
    """

    def __init__(self, embedding: int = 64, hidden: int = 64, choices: int = 5):
        super().__init__()
        self.inputs = {
            "embedding": Features(["b", embedding]),
            "previous": OneHot(["b", choices + 1]),
        }
        self.outputs = {"selection": Probs(["b", choices])}
        self.net = nn.Sequential(
            nn.Linear(embedding + choices + 1, hidden), nn.Tanh(), nn.Linear(hidden, choices)
        )

    def forward(self, embedding: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(torch.cat([embedding, previous], -1)), dim=-1)


__all__ = [
    "HIDDEN",
    "AddressedDigestor",
    "PairSwap",
    "PointerLSTM",
    "PolicyLSTM",
    "PolicyMLP",
    "ShiftHead",
    "SwapBiLSTM",
    "WholeListDigestor",
]
