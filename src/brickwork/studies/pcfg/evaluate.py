"""Scoring: exact match overall, by number of functions, by target length, by function,
with the first mismatching position of every error; and the length probes of the
benchmark (each module alone on strings of 1–500 symbols; single functions and depth-3
compositions on strings 10× and 50× the training length).

Example:
    >>> from brickwork.studies.pcfg.evaluate import score, length_bin
    >>> from brickwork.studies.pcfg.data import Example
    >>> r = score([Example("copy A1 B2", "A1 B2"), Example("reverse A1 B2", "B2 A1")],
    ...           [["A1", "B2"], ["A1", "B2"]])
    >>> r["accuracy"], r["errors"][0]["first_mismatch"], length_bin(7)
    (0.5, 0, '1-10')
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from brickwork.studies.pcfg.data import (
    ARITY,
    FUNCTIONS,
    SYMBOLS,
    Call,
    Example,
    Program,
    Str,
    apply_reference,
    functions_of,
    program_text,
)
from brickwork.studies.pcfg.parse import parse_program

#: target-length bins of the reports and the figure
LENGTH_BINS = (
    (1, 10),
    (11, 25),
    (26, 50),
    (51, 100),
    (101, 200),
    (201, 400),
    (401, 800),
    (801, 1600),
    (1601, 10**9),
)


def length_bin(n: int) -> str:
    """The report bin of a target of ``n`` symbols (``'1-10'``, …, ``'1601+'``)."""
    for lo, hi in LENGTH_BINS:
        if lo <= n <= hi:
            return f"{lo}-{hi}" if hi < 10**9 else f"{lo}+"
    return "0"


def _first_mismatch(pred: Sequence[str], target: Sequence[str]) -> int:
    for i, (a, b) in enumerate(zip(pred, target)):
        if a != b:
            return i
    return min(len(pred), len(target))


def score(
    examples: Sequence[Example],
    predictions: Sequence[Sequence[str]],
    programs: Sequence[Program] | None = None,
) -> dict[str, Any]:
    """The evaluation report of ``predictions`` against the examples' targets.

    Returns:
        ``{"accuracy", "n", "by_functions", "by_target_length", "by_function",
        "errors": [{"line", "first_mismatch", "expected", "got", "target_length",
        "predicted_length"}]}`` (``line`` is 1-based; ``by_function`` counts an example
        under every function it applies).
    """
    progs = list(programs) if programs is not None else [parse_program(e.source) for e in examples]
    hits: dict[str, dict[str, list[int]]] = {
        "f": defaultdict(list),
        "l": defaultdict(list),
        "fn": defaultdict(list),
    }
    errors = []
    correct = 0
    for i, (e, pred, prog) in enumerate(zip(examples, predictions, progs)):
        target = e.target.split()
        ok = list(pred) == target
        correct += ok
        fns = functions_of(prog)
        hits["f"][str(len(fns))].append(ok)
        hits["l"][length_bin(len(target))].append(ok)
        for f in set(fns):
            hits["fn"][f].append(ok)
        if not ok:
            k = _first_mismatch(pred, target)
            errors.append(
                {
                    "line": i + 1,
                    "first_mismatch": k,
                    "expected": target[k] if k < len(target) else "<end>",
                    "got": pred[k] if k < len(pred) else "<end>",
                    "target_length": len(target),
                    "predicted_length": len(pred),
                }
            )

    def table(d: Mapping[str, list[int]], key: Callable[[str], Any]) -> dict[str, float]:
        return {k: sum(v) / len(v) for k, v in sorted(d.items(), key=lambda kv: key(kv[0]))}

    n = len(examples)
    return {
        "accuracy": correct / n if n else 0.0,
        "n": n,
        "by_functions": table(hits["f"], int),
        "by_target_length": table(hits["l"], lambda b: int(b.split("-")[0].rstrip("+"))),
        "by_function": table(hits["fn"], FUNCTIONS.index),
        "counts_by_target_length": {k: len(v) for k, v in hits["l"].items()},
        "errors": errors,
    }


def _string(rng: random.Random, n: int) -> Str:
    return Str(tuple(rng.choices(SYMBOLS, k=n)))


def single_function_examples(
    function: str, string_lengths: Sequence[int], *, seed: int
) -> list[Example]:
    """One example of ``function`` per length (a binary's second argument has a random
    length in 1–``max(string_lengths)``)."""
    rng = random.Random(seed)
    top = max(string_lengths)
    out = []
    for n in string_lengths:
        args = [_string(rng, n)] + (
            [_string(rng, rng.randint(1, top))] if ARITY[function] == 2 else []
        )
        prog = Call(function, tuple(args))
        out.append(Example(program_text(prog), " ".join(apply_reference(prog))))
    return out


def random_chain(
    rng: random.Random, depth: int, string_length: int, functions: Sequence[str] = FUNCTIONS
) -> Program:
    """A program of nesting depth ``depth``: each level applies a random function to the
    level below (a binary's other argument is a literal string); every literal string
    has ``string_length`` symbols."""
    prog: Program = _string(rng, string_length)
    for _ in range(depth):
        f = rng.choice(list(functions))
        if ARITY[f] == 1:
            prog = Call(f, (prog,))
        else:
            other = _string(rng, string_length)
            prog = Call(f, (prog, other) if rng.random() < 0.5 else (other, prog))
    return prog


def extrapolation_examples(
    string_length: int, n_single: int, n_composed: int, *, seed: int, depth: int = 3
) -> list[Example]:
    """Single functions and depth-``depth`` compositions over strings of exactly
    ``string_length`` symbols."""
    rng = random.Random(seed)
    out = []
    for k in range(n_single):
        prog: Program = random_chain(rng, 1, string_length, [FUNCTIONS[k % len(FUNCTIONS)]])
        out.append(Example(program_text(prog), " ".join(apply_reference(prog))))
    for _ in range(n_composed):
        prog = random_chain(rng, depth, string_length)
        out.append(Example(program_text(prog), " ".join(apply_reference(prog))))
    return out
