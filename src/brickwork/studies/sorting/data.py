"""Representations of lists, the sorting environment, and trace datasets for training.

The representation (§3.2.1): ``values`` one-hot per position over 10 digits plus a null
code (``OneHot['b n 11']``), pointers ``a`` and ``b`` (``Pointer['b n']``) and two
static end-of-list markers the environment provides (``end`` at n−1, ``penult`` at
n−2, ``SoftMask['b n']``; only the addressed controllers read them).

Example:
    >>> import torch
    >>> env = SortingEnvironment(torch.tensor([[3, 1, 2]]))
    >>> env.observe()["a"], env.lists()
    (tensor([[1., 0., 0.]]), tensor([[3, 1, 2]]))
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from brickwork.agent import Environment, Representation
from brickwork.errors import DataError
from brickwork.studies.sorting.teacher import (
    CODES,
    FLAT_OPS,
    NULL,
    RECURSIVE_OPS,
    recursive_trace,
    teacher_trace,
    validate_lists,
)
from brickwork.types import NeuralType, OneHot, Pointer, SoftMask

FIELDS: dict[str, NeuralType] = {
    "values": OneHot(["b", "n", CODES]),
    "a": Pointer("b n"),
    "b": Pointer("b n"),
    "end": SoftMask("b n"),
    "penult": SoftMask("b n"),
}


def encode(
    values: torch.Tensor, a: torch.Tensor, b: torch.Tensor, lengths: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Field tensors from digit codes ``(b, n)`` (null = 10), pointer indices and lengths
    (on the device of ``values``)."""
    n = values.shape[1]
    pos = torch.arange(n, device=values.device)
    return {
        "values": torch.nn.functional.one_hot(values.long(), CODES).float(),
        "a": torch.nn.functional.one_hot(a.long(), n).float(),
        "b": torch.nn.functional.one_hot(b.long(), n).float(),
        "end": (pos == (lengths.view(-1, 1) - 1)).float(),
        "penult": (pos == (lengths.view(-1, 1) - 2)).float(),
    }


def _initial_fields(lists: object, device: torch.device | str | None) -> dict[str, torch.Tensor]:
    values = validate_lists(lists)
    if device is None:
        device = lists.device if isinstance(lists, torch.Tensor) else "cpu"
    values = values.to(device)
    bsz, n = values.shape
    return encode(
        values,
        torch.zeros(bsz, device=device),
        torch.ones(bsz, device=device),
        torch.full((bsz,), n, device=device),
    )


def representation(lists: object, device: torch.device | str | None = None) -> Representation:
    """The initial representation of equal-length lists (A = 0, B = 1), on ``device``
    (default: the device of ``lists`` when it is a tensor, else the CPU).

    Raises:
        DataError: invalid lists (see :func:`~brickwork.studies.sorting.teacher.validate_lists`).
    """
    return Representation(FIELDS, _initial_fields(lists, device))


def decode(values: torch.Tensor) -> torch.Tensor:
    """Digit codes (null = 10) from a (soft) values field: argmax per position."""
    return values.argmax(-1)


class SortingEnvironment(Environment):
    """A batch of lists with two pointers: the true problem state.

    The state is kept as the last committed field tensors (cheap to apply every step)
    and decoded to digits on demand. ``device``: where the state lives (default: the
    device of ``lists`` when it is a tensor, else the CPU).
    """

    def __init__(self, lists: object, device: torch.device | str | None = None):
        self._fields = _initial_fields(lists, device)
        self._batch = int(self._fields["values"].shape[0])

    @property
    def batch_size(self) -> int:
        return self._batch

    def observe(self) -> dict[str, torch.Tensor]:
        return dict(self._fields)

    def apply(self, fields: Mapping[str, torch.Tensor]) -> None:
        for k in self._fields:
            if k in fields:
                self._fields[k] = fields[k]

    def lists(self) -> torch.Tensor:
        """The current lists as digit codes ``(b, n)`` (null = 10)."""
        return decode(self._fields["values"])

    def pointers(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions of A and B (argmax)."""
        return self._fields["a"].argmax(-1), self._fields["b"].argmax(-1)


def random_lists(count: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` uniformly random lists of digits of one length."""
    if length < 2:
        raise DataError(f"length {length}: lists need at least 2 digits")
    return torch.randint(0, 10, (count, length), generator=generator)


def digest_tensors(*tensors: torch.Tensor) -> str:
    """sha256 over tensors' bytes (data digests in run records)."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


@dataclass
class Transitions:
    """Decisions from teacher traces as arrays (one row per decision).

    ``values`` holds digit codes padded with null to the longest list; ``a``/``b`` the
    pointer positions; ``op``/``prev`` operator indices (``prev`` = number of ops for
    the start code); ``after_*`` the state after applying ``op``; ``episode`` and
    ``t`` locate the decision in its (sub-)episode.
    """

    values: np.ndarray
    a: np.ndarray
    b: np.ndarray
    op: np.ndarray
    prev: np.ndarray
    after_values: np.ndarray
    after_a: np.ndarray
    after_b: np.ndarray
    length: np.ndarray
    episode: np.ndarray
    t: np.ndarray
    ops: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.op)

    def digest(self) -> str:
        return digest_tensors(
            *(
                torch.from_numpy(np.ascontiguousarray(x))
                for x in (self.values, self.a, self.b, self.op, self.length)
            )
        )


def build_transitions(
    lists: Sequence[Sequence[int]], *, recursive: bool = False, pad_to: int | None = None
) -> Transitions:
    """Every decision of the (flat or recursive) teacher on ``lists``."""
    ops = RECURSIVE_OPS if recursive else FLAT_OPS
    index = {o: i for i, o in enumerate(ops)}
    width = pad_to or max(len(x) for x in lists)
    rows: list[tuple] = []
    episode = 0
    for lst in lists:
        episodes = recursive_trace(lst) if recursive else [teacher_trace(lst)]
        n = len(lst)
        for steps in episodes:
            for t, s in enumerate(steps):
                nxt = steps[t + 1] if t + 1 < len(steps) else s
                after_v = nxt.values
                if s.op == "sort_tail" or s.op == "EOP":
                    after_a, after_b = s.a, s.b
                else:
                    after_a, after_b = nxt.a, nxt.b
                rows.append(
                    (
                        s.values,
                        s.a,
                        s.b,
                        index[s.op],
                        len(ops) if s.previous is None else index[s.previous],
                        after_v,
                        after_a,
                        after_b,
                        n,
                        episode,
                        t,
                    )
                )
            episode += 1

    def pad(v: tuple[int, ...]) -> list[int]:
        return list(v) + [NULL] * (width - len(v))

    return Transitions(
        values=np.array([pad(r[0]) for r in rows], dtype=np.int64),
        a=np.array([r[1] for r in rows], dtype=np.int64),
        b=np.array([r[2] for r in rows], dtype=np.int64),
        op=np.array([r[3] for r in rows], dtype=np.int64),
        prev=np.array([r[4] for r in rows], dtype=np.int64),
        after_values=np.array([pad(r[5]) for r in rows], dtype=np.int64),
        after_a=np.array([r[6] for r in rows], dtype=np.int64),
        after_b=np.array([r[7] for r in rows], dtype=np.int64),
        length=np.array([r[8] for r in rows], dtype=np.int64),
        episode=np.array([r[9] for r in rows], dtype=np.int64),
        t=np.array([r[10] for r in rows], dtype=np.int64),
        ops=ops,
    )


def training_lists(count: int, max_length: int, seed: int, min_length: int = 2) -> list[list[int]]:
    """``count`` random lists, lengths uniform in ``[min_length, max_length]``."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_length, max_length + 1, size=count)
    return [rng.integers(0, 10, size=int(n)).tolist() for n in lengths]


def batch_representation(
    tr: Transitions, rows: np.ndarray, *, after: bool = False, device: torch.device | str = "cpu"
) -> Representation:
    """The representation of the chosen decisions (before, or after the operator),
    cropped to the longest list among them, on ``device``."""
    n = int(tr.length[rows].max())
    v = tr.after_values if after else tr.values
    a = tr.after_a if after else tr.a
    b = tr.after_b if after else tr.b
    fields = encode(
        *(torch.from_numpy(x).to(device) for x in (v[rows, :n], a[rows], b[rows], tr.length[rows]))
    )
    return Representation(FIELDS, fields)


def add_noise(rep: Representation, generator: torch.Generator) -> Representation:
    """Every field through its type's training noise (thesis eq. 3.1 / 3.2).

    The noise is drawn on the generator's device (the CPU for ``torch.Generator()``) and
    moved to the representation's, so a seed gives the same noise on every device.
    """
    device = rep.device
    if device != generator.device:
        return add_noise(rep.to(generator.device), generator).to(device)
    types = rep.types
    return rep.replace(**{k: types[k].noise(v, generator) for k, v in rep.values.items()})


__all__ = [
    "FIELDS",
    "SortingEnvironment",
    "Transitions",
    "add_noise",
    "batch_representation",
    "build_transitions",
    "decode",
    "digest_tensors",
    "encode",
    "random_lists",
    "representation",
    "training_lists",
]
