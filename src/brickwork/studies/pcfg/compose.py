"""Composition: a parsed program becomes a layout of the trained function modules, and
batches of layouts of different shapes run through the autobatched ``Runner``.

The literal strings of a program are the layout's external inputs ``s0``, ``s1``, … (in
reading order); each function application is a node (``reverse#2``) whose ports read
its arguments. Every ``SymbolSeq`` edge of a batch shares one width ``w``, the longest
length any node will produce — computed bottom-up with the modules' *own* learned
length heads (a batch never looks at targets).

Example:
    >>> from brickwork.studies.pcfg.compose import function_kinds, program_layout
    >>> from brickwork.studies.pcfg.modules import make_function_module
    >>> from brickwork.studies.pcfg.parse import parse_program
    >>> kinds = function_kinds({f: make_function_module(f) for f in ("append", "reverse")})
    >>> lay = program_layout(parse_program("append X6 Z11 , reverse Q13 Y2"), kinds)
    >>> [n.id for n in lay.nodes], sorted(lay.inputs)
    (['reverse#0', 'append#1'], ['s0', 's1'])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from brickwork.errors import DataError
from brickwork.layouts import Kinds, Layout, LayoutBuilder, Runner
from brickwork.layouts.node import Source
from brickwork.studies.pcfg.data import ARITY, Program, Str, functions_of, program_text
from brickwork.studies.pcfg.modules import _PointerFunction
from brickwork.studies.pcfg.types import decode, encode

#: a batch holds at most this many rows × width positions (memory bound of one call)
MAX_CELLS = 1 << 15


def function_kinds(modules: Mapping[str, _PointerFunction]) -> Kinds:
    """A vocabulary holding the trained modules: function ``reverse`` is an instance of
    kind ``unary``, ``append`` of ``binary`` (instances of a kind share calls)."""
    kinds = Kinds(functions={f: ("unary" if ARITY[f] == 1 else "binary") for f in modules})
    for f, m in modules.items():
        kinds.add(f, m)
    return kinds


def leaves(program: Program) -> list[Str]:
    """The literal strings of ``program`` in reading order."""
    if isinstance(program, Str):
        return [program]
    return [s for a in program.args for s in leaves(a)]


def program_layout(program: Program, kinds: Kinds, name: str = "program") -> Layout:
    """The layout of ``program``: one node per function application."""
    b = LayoutBuilder(kinds, name=name)
    counter = iter(range(10**9))

    def build(p: Program) -> Source:
        if isinstance(p, Str):
            return b.input(f"s{next(counter)}")
        srcs = [build(a) for a in p.args]  # children first: node ids in post-order
        return b.add(p.function, **dict(zip(("x", "y"), srcs))).source()

    if isinstance(program, Str):
        raise DataError(
            f"program '{name}': a literal string alone; a program applies at least one function"
        )
    b.output("out", build(program))
    return b.build(input_types=None)


def predicted_width(program: Program, modules: Mapping[str, _PointerFunction]) -> int:
    """The longest length any node of ``program`` produces, by the modules' length heads."""
    best = 0

    def walk(p: Program) -> int:
        nonlocal best
        if isinstance(p, Str):
            n = len(p.symbols)
        else:
            n = modules[p.function].predict_length([walk(a) for a in p.args])
        best = max(best, n)
        return n

    walk(program)
    return max(best, 1)


class Composer:
    """Run parsed programs through the trained modules, autobatched.

    Args:
        modules: the trained module of every function (by name).
        device: where to run (the modules are moved there).
        max_cells: bound on rows × width per batch.

    Example:
        >>> from brickwork.studies.pcfg.modules import make_function_module
        >>> from brickwork.studies.pcfg.parse import parse_program
        >>> comp = Composer({"copy": make_function_module("copy")})
        >>> len(comp([parse_program("copy A1 B2")])[0]) <= 3
        True
    """

    def __init__(
        self,
        modules: Mapping[str, _PointerFunction],
        *,
        device: str | torch.device | None = None,
        max_cells: int = MAX_CELLS,
    ):
        self.modules = {f: m.eval() for f, m in modules.items()}
        self.kinds = function_kinds(self.modules)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.kinds.to(self.device)
        self.runner = Runner(self.kinds, device=self.device, cache_size=0)
        self.max_cells = max_cells
        self.calls = 0

    def __call__(self, programs: Sequence[Program]) -> list[list[str]]:
        """The output string of every program (same order).

        Raises:
            DataError: a program applies a function that has no module here.
        """
        for i, p in enumerate(programs):
            missing = sorted(set(functions_of(p)) - set(self.modules))
            if missing:
                raise DataError(
                    f"program {i + 1} ('{program_text(p)[:60]}'): no trained module "
                    f"for {', '.join(missing)}; modules here: "
                    f"{', '.join(sorted(self.modules))}"
                )
        widths = [predicted_width(p, self.modules) for p in programs]
        order = sorted(range(len(programs)), key=lambda i: widths[i])
        results: list[list[str] | None] = [None] * len(programs)
        start = 0
        while start < len(order):
            width = widths[order[start]]
            end = start + 1
            while end < len(order):
                w = widths[order[end]]
                if (end - start + 1) * w > self.max_cells or w > 2 * widths[order[start]] + 8:
                    break  # rows of one batch share its width: keep widths close
                width = w
                end += 1
            batch = order[start:end]
            for i, out in zip(batch, self._run([programs[i] for i in batch], width)):
                results[i] = out
            start = end
        return results  # type: ignore[return-value]

    def _run(self, programs: Sequence[Program], width: int) -> list[list[str]]:
        layouts = [program_layout(p, self.kinds, name=f"p{i}") for i, p in enumerate(programs)]
        strings = [leaves(p) for p in programs]
        n_in = max(len(s) for s in strings)
        inputs = {
            f"s{k}": encode(
                [list(s[k].symbols) if k < len(s) else [] for s in strings],
                width=width,
                device=self.device,
            )
            for k in range(n_in)
        }
        with torch.no_grad():
            out = self.runner(layouts, inputs, ["out"])["out"]
        self.calls += len(self.runner.last_schedule.steps) if self.runner.last_schedule else 0
        return decode(out)
