"""The programmatic teacher: selection-sort execution traces (§3.2.1) and input checks.

Flat teacher (the calibration's): after ``mova`` comes ``retb``; else ``swap`` if
v[B] < v[A]; else ``movb`` if B < n−1; else ``mova`` if A < n−2; else ``EOP``.

Recursive teacher (one call level = one sub-episode): after ``sort_tail`` comes ``EOP``;
else ``swap`` if v[B] < v[A]; else ``movb`` if B < n−1; else ``sort_tail`` (the same
agent on the list after A) if A < n−2; else ``EOP``.

Example:
    >>> trace = teacher_trace([2, 1])
    >>> [step.op for step in trace], trace[-1].values
    (['swap', 'EOP'], (1, 2))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from brickwork.errors import DataError

#: digits 0-9 and the null code (padding, "extend the output vocabulary", §3.2.2)
DIGITS = 10
NULL = 10
CODES = 11
FLAT_OPS = ("mova", "movb", "retb", "swap", "EOP")
RECURSIVE_OPS = ("movb", "swap", "sort_tail", "EOP")


@dataclass(frozen=True)
class Step:
    """One decision of a trace: the state it was taken in and the operator chosen."""

    values: tuple[int, ...]
    a: int
    b: int
    op: str
    previous: str | None


def validate_list(values: object, where: str = "list") -> list[int]:
    """Check one input list: digits 0–9, at least two of them.

    Raises:
        DataError: empty or one-element list, a digit outside 0–9, a non-integer.
    """
    if isinstance(values, torch.Tensor):
        if values.is_floating_point() or values.dtype == torch.bool:
            raise DataError(
                f"{where}: dtype {values.dtype}; lists hold integer digits 0–9 "
                "(use dtype torch.long)"
            )
        values = values.tolist()
    elif isinstance(values, np.ndarray):
        if values.dtype.kind not in "iu":
            raise DataError(f"{where}: dtype {values.dtype}; lists hold integer digits 0–9")
        values = values.tolist()
    if not isinstance(values, (list, tuple)):
        raise DataError(f"{where}: expected a list of digits, got {type(values).__name__}")
    if len(values) < 2:
        raise DataError(
            f"{where}: {len(values)} element{'s' if len(values) != 1 else ''}; the "
            "sorting study needs at least 2 (pointers A and B start at 0 and 1)"
        )
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise DataError(
                f"{where}, position {i}: {v!r} is a {type(v).__name__}; lists hold "
                "integer digits 0–9"
            )
        if not 0 <= int(v) < DIGITS:
            raise DataError(f"{where}, position {i}: digit {int(v)} is outside 0–9")
        out.append(int(v))
    return out


def validate_lists(lists: object) -> torch.Tensor:
    """Check a batch of equal-length lists; returns a ``(b, n)`` long tensor.

    Raises:
        DataError: see :func:`validate_list`; also an empty batch or ragged lengths.
    """
    if isinstance(lists, torch.Tensor):
        if lists.dim() != 2:
            raise DataError(
                f"lists: a tensor of shape {tuple(lists.shape)}; expected (batch, length)"
            )
        rows = [validate_list(row, f"list {i}") for i, row in enumerate(lists)]
    else:
        if not isinstance(lists, (list, tuple)) or not lists:
            raise DataError("lists: expected a non-empty batch of lists")
        rows = [validate_list(row, f"list {i}") for i, row in enumerate(lists)]
    lengths = {len(r) for r in rows}
    if len(lengths) != 1:
        raise DataError(f"lists: lengths {sorted(lengths)} differ; batch lists of one length")
    return torch.tensor(rows, dtype=torch.long)


def _apply(values: list[int], a: int, b: int, op: str) -> tuple[list[int], int, int]:
    if op == "mova":
        return values, a + 1, b
    if op == "movb":
        return values, a, b + 1
    if op == "retb":
        return values, a, a + 1
    if op == "swap":
        values = list(values)
        values[a], values[b] = values[b], values[a]
        return values, a, b
    return values, a, b


def _next_op(v: Sequence[int], a: int, b: int, prev: str | None, *, recursive: bool) -> str:
    """Both teachers' decision: they differ only in how A advances (``mova`` then
    ``retb``, or ``sort_tail`` on the rest, after which the call ends)."""
    advance = "sort_tail" if recursive else "mova"
    if prev == advance:
        return "EOP" if recursive else "retb"
    if v[b] < v[a]:
        return "swap"
    if b < len(v) - 1:
        return "movb"
    if a < len(v) - 2:
        return advance
    return "EOP"


def teacher_trace(values: Sequence[int]) -> list[Step]:
    """The flat teacher's trace; the last step is ``EOP`` (its state is the sorted list)."""
    v = validate_list(list(values))
    a, b, prev = 0, 1, None
    steps: list[Step] = []
    while True:
        op = _next_op(v, a, b, prev, recursive=False)
        steps.append(Step(tuple(v), a, b, op, prev))
        if op == "EOP":
            return steps
        v, a, b = _apply(v, a, b, op)
        prev = op


def recursive_trace(values: Sequence[int]) -> list[list[Step]]:
    """The recursive teacher's sub-episodes in call order (outermost first), each with
    the states it actually sees (an inner call starts after the outer swaps)."""
    return _recursive_states(validate_list(list(values)), 0)


def _recursive_states(v: list[int], a: int) -> list[list[Step]]:
    b, prev, steps = a + 1, None, []
    inner: list[list[Step]] = []
    while True:
        op = _next_op(v, a, b, prev, recursive=True)
        steps.append(Step(tuple(v), a, b, op, prev))
        if op == "EOP":
            return [steps] + inner
        if op == "sort_tail":
            inner = _recursive_states(v, a + 1)
            v = list(inner[0][-1].values)  # the child's final state: the tail sorted
        else:
            v, a, b = _apply(v, a, b, op)
        prev = op


def teacher_steps(values: Sequence[int]) -> int:
    """Number of decisions (EOP included) the flat teacher takes on ``values``."""
    return len(teacher_trace(values))


def recursive_steps(values: Sequence[int]) -> int:
    """Number of decisions (EOP included, all levels) the recursive teacher takes."""
    return sum(len(e) for e in recursive_trace(values))


def run_ops(values: Sequence[int], ops: Sequence[str]) -> list[int]:
    """Apply flat operators to a list from A = 0, B = 1 (to check traces)."""
    v, a, b = list(values), 0, 1
    for op in ops:
        if op == "EOP":
            break
        v, a, b = _apply(v, a, b, op)
    return v


__all__ = [
    "CODES",
    "DIGITS",
    "FLAT_OPS",
    "NULL",
    "RECURSIVE_OPS",
    "Step",
    "recursive_steps",
    "recursive_trace",
    "run_ops",
    "teacher_steps",
    "teacher_trace",
    "validate_list",
    "validate_lists",
]
