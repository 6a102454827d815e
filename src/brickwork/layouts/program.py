"""Programs in three spellings, flattened to the CLEVR list ``from_program`` builds.

* the flat CLEVR list: ``[{"function", "value_inputs", "inputs": [earlier indices]}, …]``;
* a tree: ``{"function", "value_inputs", "inputs": [subtree, …]}``;
* an s-expression: ``"(exist (intersect (find red) (find cube)))"`` — a parenthesised
  function name followed by its arguments: a bare word is a value input, a
  parenthesised one a program input. A node without arguments is ``(scene)``.

Trees and s-expressions flatten in post-order (children left to right, then the
node), which is the order CLEVR writes its programs in, so all three spellings of one
program give the same layout.

Example:
    >>> [n["function"] for n in flatten_program("(exist (intersect (find red) (find cube)))")]
    ['find', 'find', 'intersect', 'exist']
    >>> flatten_program("(exist (intersect (find red) (find cube)))")[2]
    {'function': 'intersect', 'value_inputs': [], 'inputs': [0, 1]}
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from brickwork.errors import LayoutError

#: deeper programs are refused (a tree this deep is a bug or an attack, not a question)
MAX_DEPTH = 200

_TOKEN = re.compile(r"\s*(?:(\()|(\))|([^\s()]+))")


def flatten_program(program: Any, name: str = "program") -> list[dict[str, Any]]:
    """The flat CLEVR list of a flat list, a tree (a mapping) or an s-expression (a string).

    Raises:
        LayoutError: a malformed program; the message names the position (character
            offset for s-expressions, the path of the node for trees).
    """
    if isinstance(program, str):
        return _flatten_tree(parse_sexpr(program, name), name, "", [])
    if isinstance(program, Mapping):
        return _flatten_tree(program, name, "root", [])
    if isinstance(program, Sequence):
        out = []
        for i, node in enumerate(program):
            if not isinstance(node, Mapping):
                raise LayoutError(
                    f"program '{name}', node {i}: expected a mapping with "
                    f"'function', 'inputs', 'value_inputs', got {type(node).__name__}"
                )
            out.append(dict(node))
        return out
    raise LayoutError(
        f"program '{name}': expected a list of nodes, a tree (a mapping) or an "
        f"s-expression string, got {type(program).__name__}"
    )


def parse_sexpr(text: str, name: str = "program") -> dict[str, Any]:
    """Parse an s-expression into a tree ``{"function", "value_inputs", "inputs"}``.

    Example:
        >>> parse_sexpr("(find red)")
        {'function': 'find', 'value_inputs': ['red'], 'inputs': []}
        >>> parse_sexpr("(find red")
        Traceback (most recent call last):
        ...
        brickwork.errors.LayoutError: program 'program': s-expression ends at character 9
        with 1 '(' still open; add ')'
    """
    tokens: list[tuple[str, str, int]] = []  # (kind, text, offset)
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            break
        if m.group(1):
            tokens.append(("(", "(", m.start(1)))
        elif m.group(2):
            tokens.append((")", ")", m.start(2)))
        elif m.group(3):
            tokens.append(("word", m.group(3), m.start(3)))
        pos = m.end()
    where = f"program '{name}'"
    if not tokens:
        raise LayoutError(f"{where}: empty s-expression; write e.g. '(exist (find red))'")
    if tokens[0][0] == "word":
        if len(tokens) > 1:
            raise LayoutError(
                f"{where}: s-expression: text after '{tokens[0][1]}' at character "
                f"{tokens[1][2]}; wrap a node with arguments in parentheses"
            )
        return {"function": tokens[0][1], "value_inputs": [], "inputs": []}
    stack: list[dict[str, Any]] = []
    root: dict[str, Any] | None = None
    i = 0
    while i < len(tokens):
        kind, word, off = tokens[i]
        if root is not None and kind == ")":
            raise LayoutError(f"{where}: s-expression: unmatched ')' at character {off}")
        if root is not None:
            raise LayoutError(
                f"{where}: s-expression: text after the program's closing ')' at "
                f"character {off}; one program has one outer '( … )'"
            )
        if kind == "(":
            if i + 1 >= len(tokens) or tokens[i + 1][0] != "word":
                raise LayoutError(
                    f"{where}: s-expression: '(' at character {off} is not "
                    "followed by a function name"
                )
            if len(stack) >= MAX_DEPTH:
                raise LayoutError(
                    f"{where}: s-expression nested deeper than {MAX_DEPTH} at character {off}"
                )
            node = {"function": tokens[i + 1][1], "value_inputs": [], "inputs": []}
            if stack:
                stack[-1]["inputs"].append(node)
            stack.append(node)
            i += 2
            continue
        if kind == ")":
            if not stack:
                raise LayoutError(f"{where}: s-expression: unmatched ')' at character {off}")
            node = stack.pop()
            if not stack:
                root = node
        else:
            if not stack:  # pragma: no cover - a word outside parens is caught above
                raise LayoutError(
                    f"{where}: s-expression: '{word}' at character {off} is outside parentheses"
                )
            stack[-1]["value_inputs"].append(word)
        i += 1
    if stack:
        raise LayoutError(
            f"{where}: s-expression ends at character {len(text)} with "
            f"{len(stack)} '(' still open; add ')'"
        )
    assert root is not None
    return root


def _flatten_tree(
    node: Any, name: str, path: str, out: list[dict[str, Any]], depth: int = 0
) -> list[dict[str, Any]]:
    where = f"program '{name}', node {path or 'root'}"
    if depth > MAX_DEPTH:
        raise LayoutError(f"{where}: nested deeper than {MAX_DEPTH}")
    if not isinstance(node, Mapping):
        raise LayoutError(
            f"{where}: expected a mapping with 'function', 'value_inputs', "
            f"'inputs' (subtrees), got {type(node).__name__}"
        )
    fn = node.get("function", node.get("type"))
    if not isinstance(fn, str) or not fn:
        raise LayoutError(f"{where}: no 'function' (or 'type') string")
    values = node.get("value_inputs", []) or []
    if not isinstance(values, Sequence) or isinstance(values, str):
        raise LayoutError(
            f"{where} ('{fn}'): 'value_inputs' must be a list, got {type(values).__name__}"
        )
    children = node.get("inputs", []) or []
    if not isinstance(children, Sequence) or isinstance(children, str):
        raise LayoutError(
            f"{where} ('{fn}'): 'inputs' must be a list of subtrees, got {type(children).__name__}"
        )
    indices = []
    for k, child in enumerate(children):
        if isinstance(child, int) and not isinstance(child, bool):
            raise LayoutError(
                f"{where} ('{fn}'): input {k} is an index ({child}); a tree's "
                "inputs are subtrees (use the flat list for indices)"
            )
        _flatten_tree(child, name, f"{path or 'root'}.inputs[{k}]", out, depth + 1)
        indices.append(len(out) - 1)
    flat = {k: v for k, v in node.items() if k != "inputs"}
    flat["value_inputs"] = list(values)
    flat["inputs"] = indices
    out.append(flat)
    return out
