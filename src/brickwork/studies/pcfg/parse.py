"""The prefix parser: a PCFG SET input line → a program tree (the parse is the program).

Grammar: ``expr := UNARY expr | BINARY expr ',' expr | SYMBOL+``. A literal string runs
until a ``,`` or the end of the line. Errors are one line naming the token position
(1-based), what was found and what was expected.

Example:
    >>> parse_program("append X6 Z11 , reverse Q13 Y2")
    Call(function='append', args=(Str(symbols=('X6', 'Z11')),
        Call(function='reverse', args=(Str(symbols=('Q13', 'Y2')),))))
    >>> parse_program("append X6 Z11 reverse Q13")
    Traceback (most recent call last):
    ...
    brickwork.studies.pcfg.parse.ProgramError: token 4 'reverse': expected ',' or a symbol
    after the first argument of 'append' (token 1), found a function name
"""

from __future__ import annotations

import re

from brickwork.errors import DataError
from brickwork.studies.pcfg.data import ARITY, FUNCTIONS, SYMBOL_ID, Call, Program, Str

_SYMBOL_LIKE = re.compile(r"^[A-Za-z]\d+$")


class ProgramError(DataError):
    """A PCFG SET input line does not parse; the message names the token position."""


def _describe(tok: str) -> str:
    if tok == ",":
        return "','"
    if tok in ARITY:
        return "a function name"
    if tok in SYMBOL_ID:
        return "a symbol"
    return f"'{tok}'"


def _unknown(tok: str, pos: int) -> ProgramError:
    if _SYMBOL_LIKE.match(tok):
        return ProgramError(
            f"token {pos} '{tok}': unknown symbol; expected a letter A-Z "
            "followed by a number 1-20 (e.g. 'Q13')"
        )
    return ProgramError(
        f"token {pos} '{tok}': unknown function; expected one of "
        f"{', '.join(FUNCTIONS)} or a symbol A1-Z20"
    )


def parse_program(line: str, where: str = "") -> Program:
    """Parse one input line.

    Args:
        line: the tokens, space separated.
        where: a prefix for error messages (e.g. ``"test.src:17: "``).

    Raises:
        ProgramError: unknown function or symbol, a missing ``,``, unbalanced arguments
            (too few or too many), or an empty line.
    """
    toks = line.split()
    if not toks:
        raise ProgramError(f"{where}empty input; expected a function name and its arguments")
    pos = 0

    def expr(owner: str) -> Program:
        nonlocal pos
        if pos >= len(toks):
            raise ProgramError(
                f"{where}input ends after token {len(toks)}: expected {owner} "
                "(a function name or a symbol); unbalanced arguments"
            )
        tok = toks[pos]
        if tok in ARITY:
            start = pos
            pos += 1
            name = f"'{tok}' (token {start + 1})"
            first = expr(
                f"the first argument of {name}" if ARITY[tok] == 2 else f"the argument of {name}"
            )
            if ARITY[tok] == 1:
                return Call(tok, (first,))
            if pos >= len(toks):
                raise ProgramError(
                    f"{where}input ends after token {len(toks)}: {name} is "
                    "missing ',' and its second argument"
                )
            if toks[pos] != ",":
                found = toks[pos]
                if found not in ARITY and found not in SYMBOL_ID:
                    raise ProgramError(f"{where}" + str(_unknown(found, pos + 1)))
                raise ProgramError(
                    f"{where}token {pos + 1} '{found}': expected ',' or a symbol "
                    f"after the first argument of '{tok}' (token {start + 1}), "
                    f"found {_describe(found)}"
                )
            pos += 1
            second = expr(f"the second argument of {name}")
            return Call(tok, (first, second))
        if tok == ",":
            raise ProgramError(
                f"{where}token {pos + 1} ',': expected {owner} (a function name "
                "or a symbol), found ',' (unbalanced arguments)"
            )
        symbols = []
        while pos < len(toks) and toks[pos] != ",":
            t = toks[pos]
            if t not in SYMBOL_ID:
                if t in ARITY:
                    break
                raise ProgramError(f"{where}" + str(_unknown(t, pos + 1)))
            symbols.append(t)
            pos += 1
        return Str(tuple(symbols))

    if toks[0] not in ARITY:
        if toks[0] in SYMBOL_ID:
            raise ProgramError(
                f"{where}token 1 '{toks[0]}': expected a function name, found a "
                "symbol; an input starts with a function"
            )
        raise ProgramError(f"{where}" + str(_unknown(toks[0], 1)))
    program = expr("the program")
    if pos < len(toks):
        tok = toks[pos]
        if tok == ",":
            raise ProgramError(
                f"{where}token {pos + 1} ',': unbalanced arguments; every "
                "function's arguments are complete here, so this ',' has no "
                "binary function (expected the end of the input)"
            )
        raise ProgramError(
            f"{where}token {pos + 1} '{tok}': expected the end of the input, found {_describe(tok)}"
        )
    return program


def parse_target(line: str, where: str = "") -> list[str]:
    """A target line's symbols.

    Raises:
        ProgramError: a token that is not a symbol (named with its position).
    """
    toks = line.split()
    for i, t in enumerate(toks, 1):
        if t not in SYMBOL_ID:
            raise ProgramError(
                f"{where}target token {i} '{t}': unknown symbol; expected a "
                "letter A-Z followed by a number 1-20"
            )
    return toks
