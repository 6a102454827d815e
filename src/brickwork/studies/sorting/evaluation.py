"""Closed-loop evaluation: exact match per list length, Wilson intervals, the maximum
verified length and the extrapolation factor.

A list counts as solved when the agent selects EOP within 2× the teacher's steps and the
final list is the input sorted (hence also a permutation of it).

Example:
    >>> wilson(50, 50)[0] > 0.92
    True
    >>> max_verified({2: 1.0, 3: 1.0, 5: 0.5}, [2, 3, 5])
    3
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from brickwork.agent import Agent, Interface
from brickwork.studies.sorting.data import FIELDS, SortingEnvironment, random_lists

log = logging.getLogger(__name__)


def wilson(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval (95 % by default) for ``correct`` of ``total``."""
    if total == 0:
        return (0.0, 1.0)
    p = correct / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def teacher_steps_batch(lists: torch.Tensor) -> torch.Tensor:
    """The flat teacher's number of decisions for each list (vectorised simulation, on
    the CPU; the result is on the CPU)."""
    v = lists.detach().cpu().numpy().copy()
    n = v.shape[1]
    steps = np.ones(len(v), dtype=np.int64)  # EOP
    for a in range(n - 1):
        steps += n - 1 - (a + 1)  # movb
        if a < n - 2:
            steps += 2  # mova + retb
        for b in range(a + 1, n):
            swap = v[:, b] < v[:, a]
            steps += swap
            va = v[:, a].copy()
            v[swap, a] = v[swap, b]
            v[swap, b] = va[swap]
    return torch.from_numpy(steps)


def eval_lengths(max_train: int, factors: Sequence[float]) -> list[int]:
    """2…max_train, then ``ceil(f · max_train)`` for each factor."""
    out = list(range(2, max_train + 1))
    for f in factors:
        n = int(math.ceil(f * max_train))
        if n not in out:
            out.append(n)
    return out


def max_verified(
    accuracy: Mapping[int, float | None], lengths: Sequence[int], threshold: float = 0.99
) -> int:
    """The longest length such that every evaluated length up to it has ≥ ``threshold``."""
    best = 0
    for n in sorted(lengths):
        acc = accuracy.get(n)
        if acc is None:
            continue  # not evaluated (e.g. a long length on a later seed)
        if acc < threshold:
            break
        best = n
    return best


def evaluate_length(
    agent: Agent, typed: bool, lists: torch.Tensor, chunk: int = 500, *, device: str = "cpu"
) -> dict[str, Any]:
    """Run the agent closed loop on equal-length lists; counts of solved lists.

    The episodes run on ``device`` (the agent's modules must be there already: see
    :func:`~brickwork.studies.sorting.study.evaluate_variant`).
    """
    correct = terminated = 0
    steps_total = 0
    t0 = time.perf_counter()
    for i in range(0, len(lists), chunk):
        part = lists[i : i + chunk]
        limit = 2 * teacher_steps_batch(part)
        env = SortingEnvironment(part, device=device)
        ui = Interface(env, FIELDS, typed=typed)
        with torch.no_grad():
            episode = agent.run(ui, step_limit=limit.to(device))
        expected = part.sort(-1).values.to(device)
        ok = episode.terminated & (env.lists() == expected).all(-1)
        correct += int(ok.sum())
        terminated += int(episode.terminated.sum())
        steps_total += int(episode.steps.sum())
    total = len(lists)
    lo, hi = wilson(correct, total)
    return {
        "correct": correct,
        "total": total,
        "accuracy": correct / total,
        "wilson_low": lo,
        "wilson_high": hi,
        "terminated": terminated,
        "mean_steps": steps_total / total,
        "seconds": time.perf_counter() - t0,
    }


def evaluate_agent(
    agent: Agent,
    typed: bool,
    lengths: Sequence[int],
    counts: Mapping[int, int],
    seed: int,
    *,
    skip_after_zero: bool = False,
    device: str = "cpu",
) -> dict[int, dict[str, Any] | None]:
    """Evaluate at each length on ``counts[length]`` random lists (seeded, drawn on the
    CPU: the same lists on every device), running the episodes on ``device``.

    With ``skip_after_zero``, lengths after one where no list was solved are not run
    (recorded as ``None``): the cost of whole-list variants grows as n³.
    """
    out: dict[int, dict[str, Any] | None] = {}
    dead = False
    for n in lengths:
        if dead or counts.get(n, 0) <= 0:
            out[n] = None
            continue
        gen = torch.Generator().manual_seed(seed * 100_000 + n)
        res = evaluate_length(agent, typed, random_lists(counts[n], n, gen), device=device)
        log.info(
            "%s length %d: %d/%d (%.1f s)",
            agent.name,
            n,
            res["correct"],
            res["total"],
            res["seconds"],
        )
        out[n] = res
        dead = skip_after_zero and res["correct"] == 0
    return out


__all__ = [
    "eval_lengths",
    "evaluate_agent",
    "evaluate_length",
    "max_verified",
    "teacher_steps_batch",
    "wilson",
]
