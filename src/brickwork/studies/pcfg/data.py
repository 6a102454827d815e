"""PCFG SET data: symbols, the ten string-edit functions, programs, files and splits.

The format (Hupkes et al., JAIR 2020): parallel ``.src`` / ``.tgt`` files, one example
per line, space-separated tokens. A symbol is a letter ``A``–``Z`` followed by a number
``1``–``20`` (520 symbols); a program is a function name in prefix notation followed by
its arguments, binary arguments separated by ``,``.

The reference functions here (:data:`REFERENCE`) *make targets* for generated data and
score predictions; they never stand in for a trained module at evaluation.

Example:
    >>> from brickwork.studies.pcfg.data import Call, Str, apply_reference, program_text
    >>> prog = Call("append", (Str(("X6", "Z11")), Call("reverse", (Str(("Q13", "Y2")),))))
    >>> program_text(prog)
    'append X6 Z11 , reverse Q13 Y2'
    >>> " ".join(apply_reference(prog))
    'X6 Z11 Y2 Q13'
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from brickwork.errors import DataError
from brickwork.modules import atomic_write_bytes

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
NUMBERS = 20
#: every symbol, in id order: A1 … A20, B1 … Z20
SYMBOLS: tuple[str, ...] = tuple(f"{c}{n}" for c in LETTERS for n in range(1, NUMBERS + 1))
SYMBOL_ID: dict[str, int] = {s: i for i, s in enumerate(SYMBOLS)}

UNARY = ("copy", "reverse", "shift", "echo", "swap_first_last", "repeat")
BINARY = ("append", "prepend", "remove_first", "remove_second")
FUNCTIONS = UNARY + BINARY
ARITY: dict[str, int] = {**{f: 1 for f in UNARY}, **{f: 2 for f in BINARY}}


def _swap(x: list[str]) -> list[str]:
    return x if len(x) < 2 else [x[-1], *x[1:-1], x[0]]


#: the functions' definitions (target makers for generated data, never a module)
REFERENCE: dict[str, Callable[..., list[str]]] = {
    "copy": lambda x: list(x),
    "reverse": lambda x: list(reversed(x)),
    "shift": lambda x: [*x[1:], *x[:1]],
    "echo": lambda x: [*x, *x[-1:]],
    "swap_first_last": _swap,
    "repeat": lambda x: [*x, *x],
    "append": lambda x, y: [*x, *y],
    "prepend": lambda x, y: [*y, *x],
    "remove_first": lambda x, y: list(y),
    "remove_second": lambda x, y: list(x),
}


@dataclass(frozen=True)
class Str:
    """A literal string argument (its symbols)."""

    symbols: tuple[str, ...]


@dataclass(frozen=True)
class Call:
    """A function applied to its arguments (one or two sub-programs)."""

    function: str
    args: tuple[Str | Call, ...]


Program = Str | Call


def apply_reference(program: Program) -> list[str]:
    """The target string of ``program`` under the benchmark's definitions."""
    if isinstance(program, Str):
        return list(program.symbols)
    return REFERENCE[program.function](*(apply_reference(a) for a in program.args))


def program_text(program: Program) -> str:
    """The program in the benchmark's prefix notation."""
    if isinstance(program, Str):
        return " ".join(program.symbols)
    if len(program.args) == 1:
        return f"{program.function} {program_text(program.args[0])}"
    return f"{program.function} {program_text(program.args[0])} , {program_text(program.args[1])}"


def functions_of(program: Program) -> list[str]:
    """Every function application, pre-order (a function used twice appears twice)."""
    if isinstance(program, Str):
        return []
    return [program.function, *(f for a in program.args for f in functions_of(a))]


def depth_of(program: Program) -> int:
    """Nesting depth: 0 for a literal string, 1 for one function over strings."""
    if isinstance(program, Str):
        return 0
    return 1 + max(depth_of(a) for a in program.args)


def direct_pairs(program: Program) -> set[tuple[str, str]]:
    """``(outer, inner)`` for every function applied directly to another's output."""
    if isinstance(program, Str):
        return set()
    out: set[tuple[str, str]] = set()
    for a in program.args:
        if isinstance(a, Call):
            out.add((program.function, a.function))
        out |= direct_pairs(a)
    return out


# ----------------------------------------------------------------------------- generator


def random_string(rng: random.Random, low: int, high: int, distinct: bool = False) -> Str:
    """A random string of ``low``–``high`` symbols (``distinct``: no repeated symbol)."""
    n = rng.randint(low, high)
    return Str(tuple(rng.sample(SYMBOLS, n) if distinct else rng.choices(SYMBOLS, k=n)))


def random_program(
    rng: random.Random,
    n_functions: int,
    *,
    functions: Sequence[str] = FUNCTIONS,
    string_length: tuple[int, int] = (1, 5),
    max_depth: int | None = None,
) -> Program:
    """A random program with exactly ``n_functions`` applications.

    Binary functions split the remaining applications between their two arguments at
    random; ``max_depth`` (when given) bounds the nesting.
    """
    if n_functions == 0:
        return random_string(rng, *string_length)
    fns = list(functions)
    if max_depth is not None and max_depth < n_functions:
        if max_depth <= 0:
            raise DataError(f"random_program: {n_functions} functions cannot nest in depth 0")
        fns = [f for f in fns if ARITY[f] == 2] or fns  # only binary ones can spread out
    fn = rng.choice(fns)
    rest = n_functions - 1
    sub_depth = None if max_depth is None else max_depth - 1
    if ARITY[fn] == 1:
        return Call(
            fn,
            (
                random_program(
                    rng, rest, functions=functions, string_length=string_length, max_depth=sub_depth
                ),
            ),
        )
    k = rng.randint(0, rest)
    if sub_depth is not None:  # keep both sides within reach of the depth bound
        cap = 2**sub_depth - 1
        k = min(max(k, rest - cap), cap)
    return Call(
        fn,
        (
            random_program(
                rng, k, functions=functions, string_length=string_length, max_depth=sub_depth
            ),
            random_program(
                rng, rest - k, functions=functions, string_length=string_length, max_depth=sub_depth
            ),
        ),
    )


@dataclass(frozen=True)
class Example:
    """One line pair of a PCFG SET file."""

    source: str
    target: str


def make_examples(
    n: int,
    *,
    seed: int,
    functions: tuple[int, int] = (1, 8),
    string_length: tuple[int, int] = (1, 5),
    max_target: int = 600,
    allowed: Sequence[str] = FUNCTIONS,
    keep: Callable[[Program], bool] | None = None,
    max_depth: int | None = None,
) -> list[Example]:
    """``n`` distinct random examples with ``functions[0]``–``functions[1]`` applications.

    Args:
        n: how many examples.
        seed: the generator's seed (same seed, same file).
        functions: inclusive range of the number of function applications per input.
        string_length: inclusive range of each literal string's length.
        max_target: targets longer than this are redrawn (the benchmark's targets run
            to several hundred symbols).
        allowed: the functions that may appear.
        keep: an extra filter on programs (split rules).
        max_depth: bound on the nesting depth.

    Example:
        >>> ex = make_examples(3, seed=0, functions=(2, 2))
        >>> len(ex), all(e.target for e in ex)
        (3, True)
    """
    rng = random.Random(seed)
    out: list[Example] = []
    seen: set[str] = set()
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 200 * n + 1000:
            raise DataError(
                f"make_examples: only {len(out)} of {n} examples satisfy the split "
                "rules after many draws; relax max_target or the filters"
            )
        prog = random_program(
            rng,
            rng.randint(*functions),
            functions=allowed,
            string_length=string_length,
            max_depth=max_depth,
        )
        if keep is not None and not keep(prog):
            continue
        target = apply_reference(prog)
        if len(target) > max_target or not target:
            continue
        src = program_text(prog)
        if src in seen:
            continue
        seen.add(src)
        out.append(Example(src, " ".join(target)))
    return out


#: function pairs held out of systematicity training: the first never takes the
#: second's output directly as an argument in training; every test input has one such pair
HELD_OUT_PAIRS: tuple[tuple[str, str], ...] = (
    ("swap_first_last", "repeat"),
    ("reverse", "append"),
    ("echo", "shift"),
    ("prepend", "remove_second"),
)


def productivity_split(
    n_train: int,
    n_test: int,
    seed: int = 0,
    *,
    test_functions: tuple[int, int] = (9, 12),
    string_length: tuple[int, int] = (1, 8),
    max_target: int = 600,
) -> tuple[list[Example], list[Example]]:
    """Train inputs with at most 8 functions, test inputs with 9 or more."""
    train = make_examples(
        n_train, seed=seed, functions=(1, 8), max_target=max_target, string_length=string_length
    )
    test = make_examples(
        n_test,
        seed=seed + 1,
        functions=test_functions,
        max_target=max_target,
        string_length=string_length,
    )
    return train, test


def systematicity_split(
    n_train: int,
    n_test: int,
    seed: int = 0,
    *,
    pairs: Sequence[tuple[str, str]] = HELD_OUT_PAIRS,
    functions: tuple[int, int] = (2, 8),
    string_length: tuple[int, int] = (1, 8),
    max_target: int = 600,
) -> tuple[list[Example], list[Example]]:
    """Train inputs never apply a held-out pair directly; every test input does."""
    held = set(pairs)
    train = make_examples(
        n_train,
        seed=seed,
        functions=(1, 8),
        max_target=max_target,
        string_length=string_length,
        keep=lambda p: not (direct_pairs(p) & held),
    )
    test = make_examples(
        n_test,
        seed=seed + 1,
        functions=functions,
        max_target=max_target,
        string_length=string_length,
        keep=lambda p: bool(direct_pairs(p) & held),
    )
    return train, test


# ----------------------------------------------------------------------------- files


def write_pcfg(stem: str | Path, examples: Iterable[Example]) -> tuple[Path, Path]:
    """Write ``stem.src`` and ``stem.tgt`` (atomically); returns both paths."""
    stem = Path(stem)
    examples = list(examples)
    src = stem.with_name(stem.name + ".src")
    tgt = stem.with_name(stem.name + ".tgt")
    atomic_write_bytes(src, "".join(e.source + "\n" for e in examples).encode())
    atomic_write_bytes(tgt, "".join(e.target + "\n" for e in examples).encode())
    return src, tgt


def read_pcfg(src: str | Path, tgt: str | Path | None = None) -> list[Example]:
    """Read a ``.src`` file (and its ``.tgt``; empty targets when ``tgt`` is None).

    Raises:
        DataError: the files have different numbers of lines, or a line is empty.
    """
    src_lines = Path(src).read_text(encoding="utf-8").splitlines()
    tgt_lines = (
        Path(tgt).read_text(encoding="utf-8").splitlines()
        if tgt is not None
        else [""] * len(src_lines)
    )
    if len(src_lines) != len(tgt_lines):
        raise DataError(
            f"{src}: {len(src_lines)} lines but {tgt} has {len(tgt_lines)}; "
            "the .src and .tgt files must be parallel (one example per line)"
        )
    out = []
    for i, (s, t) in enumerate(zip(src_lines, tgt_lines), 1):
        if not s.strip():
            raise DataError(f"{src}:{i}: empty line; every line holds one program")
        out.append(Example(" ".join(s.split()), " ".join(t.split())))
    return out


def examples_digest(examples: Iterable[Example]) -> str:
    """sha256 of the examples (recorded next to results)."""
    h = hashlib.sha256()
    for e in examples:
        h.update(e.source.encode() + b"\t" + e.target.encode() + b"\n")
    return h.hexdigest()
