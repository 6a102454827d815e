"""Teacher traces, input validation and the sorting representation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from brickwork.errors import DataError
from brickwork.studies.sorting import (
    max_verified,
    recursive_steps,
    recursive_trace,
    representation,
    run_ops,
    teacher_steps,
    teacher_steps_batch,
    teacher_trace,
    validate_lists,
    wilson,
)
from brickwork.studies.sorting.data import SortingEnvironment, build_transitions


def test_teacher_traces_sort_every_short_list():
    for n in (2, 3, 4):
        for lst in itertools.product(range(10), repeat=n):
            trace = teacher_trace(lst)
            assert list(trace[-1].values) == sorted(lst)
            assert run_ops(lst, [s.op for s in trace]) == sorted(lst)
            assert trace[-1].op == "EOP" and trace[-1].a == n - 2 and trace[-1].b == n - 1


def test_teacher_traces_sort_random_long_lists_flat_and_recursive():
    rng = np.random.default_rng(0)
    for n in (5, 7, 20, 70):
        for _ in range(20):
            lst = rng.integers(0, 10, n).tolist()
            assert run_ops(lst, [s.op for s in teacher_trace(lst)]) == sorted(lst)
            episodes = recursive_trace(lst)
            assert list(episodes[0][-1].values) == sorted(lst)
            assert len(episodes) == n - 1  # one sub-episode per position but the last
            assert recursive_steps(lst) == teacher_steps(lst)


def test_vectorised_teacher_steps_match_the_teacher():
    lists = torch.randint(0, 10, (40, 9), generator=torch.Generator().manual_seed(3))
    assert teacher_steps_batch(lists).tolist() == [teacher_steps(x) for x in lists.tolist()]


@pytest.mark.parametrize(
    "bad, message",
    [
        ([[1, 10, 2]], "digit 10 is outside 0–9"),
        ([[]], "0 elements"),
        ([[4]], "1 element;"),
        ([[1, -1]], "digit -1 is outside 0–9"),
        ([[1.0, 2.0]], "is a float"),
        (torch.tensor([[1.0, 2.0]]), "dtype torch.float32"),
        ([], "non-empty batch"),
        ([[1, 2], [1, 2, 3]], "lengths \\[2, 3\\] differ"),
        ("12", "non-empty batch"),
    ],
)
def test_invalid_lists_raise_data_error(bad, message):
    with pytest.raises(DataError, match=message):
        validate_lists(bad)
    with pytest.raises(DataError):
        SortingEnvironment(bad)


def test_representation_and_environment():
    rep = representation([[3, 1, 2]])
    assert rep["values"].argmax(-1).tolist() == [[3, 1, 2]]
    assert rep["a"].tolist() == [[1.0, 0.0, 0.0]] and rep["b"].tolist() == [[0.0, 1.0, 0.0]]
    assert rep["end"].tolist() == [[0.0, 0.0, 1.0]] and rep["penult"].tolist() == [[0.0, 1.0, 0.0]]
    assert not rep.check()


def test_transitions_hold_before_and_after_states():
    tr = build_transitions([[2, 1, 0]])
    ops = [("mova", "movb", "retb", "swap", "EOP")[i] for i in tr.op]
    assert ops == [s.op for s in teacher_trace([2, 1, 0])]
    first_swap = ops.index("swap")
    assert tr.after_values[first_swap].tolist() == [1, 2, 0]


def test_wilson_and_max_verified():
    lo, hi = wilson(500, 500)
    assert 0.99 < lo < 1.0 and hi == pytest.approx(1.0)
    assert max_verified({2: 1.0, 3: 0.995, 4: 0.5, 5: 1.0}, [2, 3, 4, 5]) == 3
    assert max_verified({2: 1.0, 3: None, 4: 1.0}, [2, 3, 4]) == 4  # not evaluated: skipped
