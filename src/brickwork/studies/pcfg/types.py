"""``SymbolSeq``: a padded sequence of PCFG symbols whose length varies per row.

A value is a tensor ``[b, w, 46]``: per position, a one-hot over the 26 letters
followed by a one-hot over the 20 numbers; a *pad* position is all zeros, and pads
form a suffix, so each row carries its own length (the count of non-pad positions).
Every module of the study reads and writes this type, so a layout's edges all share
the width ``w`` of the batch.

Example:
    >>> import torch
    >>> from brickwork.studies.pcfg.types import SymbolSeq, encode, decode
    >>> x = encode([["A1", "B2"], ["Z20"]], width=3)
    >>> SymbolSeq("b w 46").check(x), decode(x)
    ('', [['A1', 'B2'], ['Z20']])
    >>> SymbolSeq("b w 46").check(torch.flip(x, [1]))
    'row 0: a symbol at position 1 after a pad; pads must form a suffix'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from brickwork.errors import DataError
from brickwork.studies.pcfg.data import LETTERS, NUMBERS, SYMBOL_ID, SYMBOLS
from brickwork.types import NeuralType

N_LETTERS = len(LETTERS)
CODE = N_LETTERS + NUMBERS  # 46


def _straight_through(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return y.detach() + (x - x.detach())


@final
class SymbolSeq(NeuralType):
    """Padded symbol sequences (letter one-hot ‖ number one-hot per position; pads all
    zero, at the end). The last axis has 46 entries.

    Example:
        >>> t = SymbolSeq("b w 46")
        >>> x = encode([["Q13", "Y2"]], width=3)
        >>> t.check(x), lengths(x).tolist(), decode(t.project(0.9 * x))
        ('', [2], [['Q13', 'Y2']])
    """

    kind = "SymbolSeq"
    codes = (0.0, 1.0)

    def domain_reason(self, x: torch.Tensor) -> str:
        if x.shape[-1] != CODE:
            return f"last axis has {x.shape[-1]} entries, expected {CODE} (26 letters + 20 numbers)"
        lo, hi = float(x.min()) if x.numel() else 0.0, float(x.max()) if x.numel() else 0.0
        if lo < 0.0 or hi > 1.0:
            return f"values in [{lo:.3g}, {hi:.3g}], expected [0, 1]"
        letters = (x[..., :N_LETTERS] > 0.5).sum(-1)
        numbers = (x[..., N_LETTERS:] > 0.5).sum(-1)
        present = letters > 0
        bad = (letters > 1) | (numbers > 1) | (present != (numbers > 0))
        if bool(bad.any()):
            r, p = (int(v) for v in bad.nonzero()[0][:2])
            return (
                f"row {r}, position {p}: {int(letters[r, p])} letters and "
                f"{int(numbers[r, p])} numbers above 0.5, expected one of each (or none: pad)"
            )
        after_pad = present[..., 1:] & ~present[..., :-1]
        if bool(after_pad.any()):
            r, p = (int(v) for v in after_pad.nonzero()[0][:2])
            return f"row {r}: a symbol at position {p + 1} after a pad; pads must form a suffix"
        return ""

    def project(self, x: torch.Tensor) -> torch.Tensor:
        clean = torch.nan_to_num(x, nan=0.0).clamp(0.0, 1.0)
        letters, numbers = clean[..., :N_LETTERS], clean[..., N_LETTERS:]
        present = (letters.amax(-1, keepdim=True) > 0.5) & (numbers.amax(-1, keepdim=True) > 0.5)
        present = present.to(torch.long).cummin(dim=-2).values.bool()  # pads form a suffix
        hard = torch.cat(
            [
                torch.nn.functional.one_hot(letters.argmax(-1), N_LETTERS),
                torch.nn.functional.one_hot(numbers.argmax(-1), NUMBERS),
            ],
            dim=-1,
        ).to(x.dtype)
        return _straight_through(x, hard * present.to(x.dtype))

    def penalty(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.relu(-x) ** 2 + torch.relu(x - 1.0) ** 2).mean()


def encode(
    rows: Sequence[Sequence[str]],
    width: int | None = None,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Symbol lists → a ``SymbolSeq`` tensor ``[len(rows), width, 46]`` (zero padded).

    Raises:
        DataError: a row longer than ``width`` or an unknown symbol.
    """
    width = max((len(r) for r in rows), default=0) if width is None else width
    ids = torch.full((len(rows), max(width, 1)), -1, dtype=torch.long)
    for i, r in enumerate(rows):
        if len(r) > width:
            raise DataError(f"encode: row {i} has {len(r)} symbols, more than width {width}")
        try:
            ids[i, : len(r)] = torch.tensor([SYMBOL_ID[s] for s in r], dtype=torch.long)
        except KeyError as exc:
            raise DataError(
                f"encode: row {i}: unknown symbol {exc.args[0]!r}; expected a "
                "letter A-Z followed by a number 1-20"
            ) from None
    return encode_ids(ids, device)


def encode_ids(ids: torch.Tensor, device: str | torch.device | None = None) -> torch.Tensor:
    """Symbol ids ``[b, w]`` (``-1`` = pad) → a ``SymbolSeq`` tensor ``[b, w, 46]``."""
    ids = ids.to(device) if device is not None else ids
    valid = ids >= 0
    safe = ids.clamp(min=0)
    code = torch.cat(
        [
            torch.nn.functional.one_hot(safe // NUMBERS, N_LETTERS),
            torch.nn.functional.one_hot(safe % NUMBERS, NUMBERS),
        ],
        dim=-1,
    )
    return code.to(torch.float32) * valid.unsqueeze(-1).to(torch.float32)


def lengths(x: torch.Tensor) -> torch.Tensor:
    """Each row's length (non-pad positions) of a ``SymbolSeq`` tensor, as ``long [b]``."""
    return (x[..., :N_LETTERS].amax(-1) > 0.5).sum(-1)


def decode_ids(x: torch.Tensor) -> torch.Tensor:
    """``SymbolSeq`` → symbol ids ``[b, w]`` (``-1`` at pads)."""
    present = x[..., :N_LETTERS].amax(-1) > 0.5
    ids = x[..., :N_LETTERS].argmax(-1) * NUMBERS + x[..., N_LETTERS:].argmax(-1)
    return torch.where(present, ids, torch.full_like(ids, -1))


def decode(x: torch.Tensor) -> list[list[str]]:
    """``SymbolSeq`` → symbol lists (each row up to its first pad)."""
    out = []
    for row in decode_ids(x).tolist():
        syms = []
        for i in row:
            if i < 0:
                break
            syms.append(SYMBOLS[i])
        out.append(syms)
    return out
