"""The function modules: one learned *pointer* per output position, read through.

Each of the ten functions is one module (``pcfg.unary`` or ``pcfg.binary``), trained
alone. A module never sees symbol contents to decide *where* to read: for output
position ``j`` it builds **bounded** relative-position features — ``j`` and
``L_out − 1 − j`` clipped at ``K + 1``, and ``j − L_a`` for each argument ``a``
clipped to ``[−K − 1, K + 1]`` — and an MLP scores a fixed set of *address slots*.
A slot is (argument ``a``, input frame: from its start or from its end, output frame:
``j``, ``L_out − 1 − j`` or ``j − L_b``, shift ``δ ∈ [−D, D]``); each slot names one
input position, e.g. (x, from-end, ``j``, 0) is ``L_x − 1 − j``. The output symbol is
the input *read through* the chosen slot's address (a soft mixture while training, the
argmax slot at evaluation), so every output symbol comes from the trained module, and
since its features are bounded the module sits in its training regime at any length.
``L_out`` comes from the module's learned length head (a linear map of the argument
lengths, rounded: a count).

Example:
    >>> import torch
    >>> from brickwork.studies.pcfg.modules import UnaryPointer
    >>> from brickwork.studies.pcfg.types import encode
    >>> m = UnaryPointer(function="copy").eval()
    >>> m(encode([["A1", "B2"]], width=4)).shape
    torch.Size([1, 4, 46])
"""

from __future__ import annotations

import torch
from torch import nn

from brickwork.modules import Module, register_kind
from brickwork.studies.pcfg.types import CODE, SymbolSeq, lengths

SEQ = SymbolSeq("b w 46")
#: the length head reads ``L − LENGTH_CENTER`` (about the middle of the training lengths)
LENGTH_CENTER = 5.0


class _PointerFunction(Module):
    """Abstract: the pointer network shared by the unary and binary kinds."""

    arity: int = 1
    #: buffers, one entry per slot: the argument read, read direction, frame, shift
    slot_arg: torch.Tensor
    slot_in: torch.Tensor
    slot_out: torch.Tensor
    slot_shift: torch.Tensor

    def _setup(self, feature_clip: int, max_shift: int, hidden: int) -> None:
        k, d, a = feature_clip, max_shift, self.arity
        self.k, self.d = k, d
        n_feat = (k + 2) + (k + 3) + a * (2 * k + 3)
        slots = [
            (ai, uf, vf, dd)
            for ai in range(a)
            for uf in (0, 1)
            for vf in range(2 + a)
            for dd in range(-d, d + 1)
        ]
        table = torch.tensor(slots, dtype=torch.long)
        self.register_buffer("slot_arg", table[:, 0].clone(), persistent=False)
        self.register_buffer("slot_in", table[:, 1].clone(), persistent=False)
        self.register_buffer("slot_out", table[:, 2].clone(), persistent=False)
        self.register_buffer("slot_shift", table[:, 3].clone(), persistent=False)
        self.score = nn.Sequential(
            nn.Linear(n_feat, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, len(slots)),
        )
        self.length = nn.Linear(a, 1)
        # start as "the arguments laid end to end" (L_out = Σ L_a): an untrained module
        # already writes every position it could read, so gradients reach the pointer
        nn.init.ones_(self.length.weight)
        nn.init.constant_(self.length.bias, LENGTH_CENTER * a)

    @property
    def slots(self) -> int:
        return int(self.slot_arg.numel())

    # ------------------------------------------------------------------ lengths
    def length_float(self, lens: torch.Tensor, *, integer: bool | None = None) -> torch.Tensor:
        """The length head's output for argument lengths ``[b, arity]``.

        The head's coefficients are counts (how many copies of each argument, plus a
        constant): learned as reals, projected onto the integers outside training
        (``integer``, default ``not self.training``) like a ``Count`` value, so a length
        learned on strings of ≤ 10 symbols stays exact on strings of thousands.
        """
        integer = (not self.training) if integer is None else integer
        w = self.length.weight
        # parametrised around LENGTH_CENTER so weight and constant do not fight while
        # training (lengths 1-10 all share the sign of L); the constant is b - c·Σw
        b = self.length.bias - LENGTH_CENTER * w.sum()
        if integer:
            w = torch.round(w)
            b = torch.round(self.length.bias - LENGTH_CENTER * w.sum())
        return nn.functional.linear(lens.to(w.dtype), w, b).squeeze(-1)

    def predict_length(self, arg_lengths: list[int]) -> int:
        """The output length this module produces for arguments of these lengths."""
        with torch.no_grad():
            t = torch.tensor(
                [arg_lengths], dtype=self.length.weight.dtype, device=self.length.weight.device
            )
            return max(0, int(torch.round(self.length_float(t))[0]))

    # ------------------------------------------------------------------ core
    def _features(self, jj: torch.Tensor, lout: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        k = self.k
        oh = nn.functional.one_hot
        parts = [
            oh(jj.clamp(max=k + 1), k + 2),
            oh((lout[:, None] - 1 - jj).clamp(-1, k + 1) + 1, k + 3),
        ]
        for a in range(self.arity):
            parts.append(oh((jj - lens[:, a : a + 1]).clamp(-k - 1, k + 1) + k + 1, 2 * k + 3))
        return torch.cat(parts, dim=-1).to(self.length.weight.dtype)

    def core(
        self,
        args: list[torch.Tensor],
        *,
        hard: bool,
        lout: torch.Tensor | None = None,
        integer_length: bool | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the function on padded arguments.

        Args:
            args: one ``SymbolSeq`` tensor ``[b, w, 46]`` per argument (same ``w``).
            hard: read through the argmax slot (evaluation) instead of the soft mixture.
            lout: output lengths to use (teacher forcing in training); default: the
                length head's rounded prediction.
            integer_length: project the length head's coefficients onto the integers
                (default: outside training).

        Returns:
            The output ``[b, w, 46]`` and the length head's raw prediction ``[b]``.
        """
        b, w, _ = args[0].shape
        dev = args[0].device
        lens = torch.stack([lengths(x) for x in args], dim=-1)  # [b, arity]
        raw = self.length_float(lens, integer=integer_length)
        if lout is None:
            lout = torch.round(raw).clamp(0, w).to(torch.long)
        jj = torch.arange(w, device=dev).unsqueeze(0).expand(b, w)
        logits = self.score(self._features(jj, lout, lens))  # [b, w, S]
        frames = [jj, lout[:, None] - 1 - jj] + [jj - lens[:, a : a + 1] for a in range(self.arity)]
        v = torch.stack(frames, dim=-1)  # [b, w, 2 + arity]
        u = v[..., self.slot_out] + self.slot_shift  # [b, w, S]
        la = lens[:, self.slot_arg].unsqueeze(1)  # [b, 1, S]
        idx = torch.where(self.slot_in == 0, u, la - 1 - u)
        valid = (idx >= 0) & (idx < la) & (jj < lout[:, None]).unsqueeze(-1)
        flat = self.slot_arg * w + idx.clamp(0, w - 1)  # [b, w, S] into the concatenated args
        source = torch.cat(args, dim=1)  # [b, arity * w, 46]
        row_ok = valid.any(-1, keepdim=True)  # [b, w, 1]
        masked = logits.masked_fill(~valid, -1e9)
        if hard:
            pick = flat.gather(-1, masked.argmax(-1, keepdim=True))  # [b, w, 1]
            out = source.gather(1, pick.expand(-1, -1, CODE))
        else:
            p = torch.softmax(masked, dim=-1)  # over slots; slots sharing an address add up
            address = torch.zeros(b, w, source.shape[1], dtype=p.dtype, device=dev)
            address = address.scatter_add(-1, flat, p * valid.to(p.dtype))
            out = torch.bmm(address, source)
        return out * row_ok.to(out.dtype), raw

    def _read(self, args: list[torch.Tensor]) -> torch.Tensor:
        """The port output: the hard read in eval mode; in training the soft read
        projected onto ``SymbolSeq`` (straight-through), so it stays in its domain."""
        if not self.training:
            return self.core(args, hard=True)[0]
        return SEQ.project(self.core(args, hard=False)[0])


@register_kind("pcfg.unary", example_config={"function": "reverse"})
class UnaryPointer(_PointerFunction):
    """A unary PCFG SET function (copy, reverse, shift, echo, swap_first_last, repeat) as
    a learned pointer read.

    Example:
        >>> UnaryPointer(function="reverse").slots
        18
    """

    arity = 1
    inputs = {"x": SEQ}
    outputs = {"out": SEQ}

    def __init__(
        self, function: str = "copy", feature_clip: int = 2, max_shift: int = 1, hidden: int = 64
    ):
        super().__init__()
        self.function = function
        self._setup(feature_clip, max_shift, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._read([x])


@register_kind("pcfg.binary", example_config={"function": "append"})
class BinaryPointer(_PointerFunction):
    """A binary PCFG SET function (append, prepend, remove_first, remove_second) as a
    learned pointer read over both arguments.

    Example:
        >>> BinaryPointer(function="append").slots
        48
    """

    arity = 2
    inputs = {"x": SEQ, "y": SEQ}
    outputs = {"out": SEQ}

    def __init__(
        self, function: str = "append", feature_clip: int = 2, max_shift: int = 1, hidden: int = 64
    ):
        super().__init__()
        self.function = function
        self._setup(feature_clip, max_shift, hidden)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self._read([x, y])


def make_function_module(function: str, **config: int) -> _PointerFunction:
    """The untrained module for ``function`` (unary or binary by its arity)."""
    from brickwork.studies.pcfg.data import ARITY

    cls = UnaryPointer if ARITY[function] == 1 else BinaryPointer
    return cls(function=function, **config)
