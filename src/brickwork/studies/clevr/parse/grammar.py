"""Program tokens, prefix order, and the type constraint of decoding.

A program is decoded in **prefix order** (a node, then its inputs left to right), one
*program token* per node: the function with its value input (``filter_color[red]``,
``relate[left]``, ``count``). Each token's signature — the kinds of its inputs and of
its output — is read from the program format's own table
(:data:`brickwork.studies.clevr.data.FUNCTIONS`, the signatures that
:class:`~brickwork.studies.clevr.data.Program` type-checks and that
:func:`~brickwork.studies.clevr.nmn.layouts.program_layout` turns into typed module
ports), so the parser has no table of its own. While decoding, a stack holds the open
input ports; only tokens whose output kind fits the port on top are allowed, and near
the node budget only those whose cheapest completion still fits. Every finished
decode is therefore a well-typed program, hence a type-checked layout.

Example:
    >>> from brickwork.studies.clevr.data import Program
    >>> p = Program.from_json([{"function": "scene", "inputs": []},
    ...     {"function": "filter_color", "inputs": [0], "value_inputs": ["red"]},
    ...     {"function": "count", "inputs": [1]}])
    >>> prefix_tokens(p)
    ['count', 'filter_color[red]', 'scene']
    >>> from_prefix(prefix_tokens(p)) == p
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import torch

from brickwork.errors import DataError
from brickwork.studies.clevr.data import ATTRIBUTES, FUNCTIONS, Program, ProgramNode
from brickwork.studies.clevr.data.vocabulary import OBJECT, OBJECTS

#: the kind of the root port: any answer (not objects, not one object)
ANSWER_KIND: Final = "answer"


def _tokens() -> list[str]:
    out = []
    for name, spec in sorted(FUNCTIONS.items()):
        if spec.value_kind is None:
            out.append(name)
        else:
            out += [f"{name}[{v}]" for v in spec.allowed_values()]
    return out


#: every program token; index 0 is padding (never emitted)
TOKENS: Final[tuple[str, ...]] = ("<pad>", *_tokens())
TOKEN_INDEX: Final[dict[str, int]] = {t: i for i, t in enumerate(TOKENS)}
#: what a *cue word* can name, and the tokens any one of which answers it: an attribute
#: (``"color"``: ``equal_color``, ``query_color`` or ``same_color``; cued by "color",
#: "made"), a set operation (``"union"``; "either", "or") or a relation
#: (``"relate[left]"``; "left") — the tokens the words say, bar the filters (filter
#: words) and the structure every program has (``scene``, ``unique``, the family)
CUE_TOKENS: Final[dict[str, frozenset[str]]] = {
    **{
        a: frozenset(t for t in TOKENS if t in (f"equal_{a}", f"query_{a}", f"same_{a}"))
        for a in ATTRIBUTES
    },
    **{t: frozenset({t}) for t in TOKENS if t in ("union", "intersect") or t.startswith("relate[")},
}


def _split(token: str) -> tuple[str, tuple[str, ...]]:
    if token.endswith("]"):
        fn, _, val = token[:-1].partition("[")
        return fn, (val,)
    return token, ()


#: token -> (input kinds, output kind), from the program format's signatures
SIGNATURES: Final[dict[str, tuple[tuple[str, ...], str]]] = {
    t: (FUNCTIONS[_split(t)[0]].inputs, FUNCTIONS[_split(t)[0]].output) for t in TOKENS[1:]
}
#: every port kind: the root's plus every input kind
KINDS: Final[tuple[str, ...]] = (
    ANSWER_KIND,
    *sorted({k for ins, _ in SIGNATURES.values() for k in ins}),
)
KIND_INDEX: Final[dict[str, int]] = {k: i for i, k in enumerate(KINDS)}


def fits(port: str, output: str) -> bool:
    """Whether a node of output kind ``output`` may fill a port of kind ``port``."""
    if port == ANSWER_KIND:
        return output not in (OBJECTS, OBJECT)
    return port == output


def _min_cost() -> dict[str, int]:
    cost = {k: 10**6 for k in KINDS}
    for _ in range(len(TOKENS)):
        for ins, out in SIGNATURES.values():
            c = 1 + sum(cost[k] for k in ins)
            for port in KINDS:
                if fits(port, out) and c < cost[port]:
                    cost[port] = c
    return cost


#: nodes of the smallest program filling a port of each kind
MIN_COST: Final[dict[str, int]] = _min_cost()
#: [kinds, tokens] bool: which tokens may fill a port of each kind
ALLOWED: Final[torch.Tensor] = torch.tensor(
    [[t != "<pad>" and fits(k, SIGNATURES[t][1]) for t in TOKENS] for k in KINDS]
)
#: per token: nodes its cheapest completion needs (itself plus its inputs')
TOKEN_COST: Final[tuple[int, ...]] = (
    10**6,
    *(1 + sum(MIN_COST[k] for k in SIGNATURES[t][0]) for t in TOKENS[1:]),
)
_COST: Final = torch.tensor(TOKEN_COST)


def prefix_tokens(program: Program) -> list[str]:
    """The program's tokens in prefix order (root first, inputs left to right).

    A node used twice (a DAG) is written twice: the prefix form is a tree.
    """
    out: list[str] = []

    def walk(i: int) -> None:
        node = program[i]
        out.append(str(node))
        for j in node.inputs:
            walk(j)

    walk(len(program) - 1)
    return out


def from_prefix(tokens: Sequence[str], where: str = "") -> Program:
    """The program (CLEVR post-order node list) of prefix-order tokens.

    Raises:
        DataError: an unknown token, a kind that does not fit its port, tokens left
            over or ports left open; the message names the position.
    """
    prefix = f"{where}: " if where else ""
    nodes: list[ProgramNode] = []
    pos = 0

    def build(port: str) -> int:
        nonlocal pos
        if pos >= len(tokens):
            raise DataError(
                f"{prefix}prefix program ends after {len(tokens)} tokens with a {port} "
                "port still open; expected another token"
            )
        tok = tokens[pos]
        if tok not in SIGNATURES:
            raise DataError(
                f"{prefix}token {pos} {tok!r}: unknown program token; expected one of "
                f"{', '.join(TOKENS[1:8])}, …"
            )
        ins, out = SIGNATURES[tok]
        if not fits(port, out):
            raise DataError(
                f"{prefix}token {pos} {tok!r} gives {out}, but the open port expects {port}"
            )
        pos += 1
        kids = [build(k) for k in ins]
        fn, vals = _split(tok)
        nodes.append(ProgramNode(fn, tuple(kids), vals))
        return len(nodes) - 1

    build(ANSWER_KIND)
    if pos != len(tokens):
        raise DataError(
            f"{prefix}prefix program complete after {pos} tokens, but {len(tokens)} were given"
        )
    return Program(nodes, where=where)


@dataclass
class PortStack:
    """The open ports of one prefix decode (top = last), with each port's parent token and
    argument position, and the nodes emitted so far.

    Example:
        >>> s = PortStack.start(max_nodes=10)
        >>> s.push("count"); KINDS[s.kind()]
        'objects'
        >>> s.push("scene"); s.done
        True
    """

    ports: list[tuple[int, int, int]]  # (kind index, parent token, argument index)
    emitted: int
    max_nodes: int
    open_cost: int = 0  # nodes the cheapest completion of every open port needs

    @classmethod
    def start(cls, max_nodes: int) -> PortStack:
        return cls([(KIND_INDEX[ANSWER_KIND], 0, 0)], 0, max_nodes, MIN_COST[ANSWER_KIND])

    @property
    def done(self) -> bool:
        return not self.ports

    def kind(self) -> int:
        return self.ports[-1][0] if self.ports else 0

    def parent(self) -> tuple[int, int]:
        return (self.ports[-1][1], self.ports[-1][2]) if self.ports else (0, 0)

    def left(self) -> int:
        """Nodes the token for the top port may cost (its cheapest completion included)."""
        if not self.ports:
            return 0
        top = MIN_COST[KINDS[self.ports[-1][0]]]
        return self.max_nodes - self.emitted - (self.open_cost - top)

    def allowed(self) -> torch.Tensor:
        """Bool [tokens]: the tokens that fit the top port and whose cheapest completion
        (with every other open port's) stays within ``max_nodes``."""
        if not self.ports:
            return torch.zeros(len(TOKENS), dtype=torch.bool)
        return ALLOWED[self.ports[-1][0]] & (_COST <= self.left())

    def push(self, token: str | int) -> None:
        t = TOKENS[token] if isinstance(token, int) else token
        idx = TOKEN_INDEX[t]
        kind, _, _ = self.ports.pop()
        ins = SIGNATURES[t][0]
        self.open_cost += sum(MIN_COST[k] for k in ins) - MIN_COST[KINDS[kind]]
        for a in reversed(range(len(ins))):
            self.ports.append((KIND_INDEX[ins[a]], idx, a + 1))
        self.emitted += 1


def allowed_batch(stacks: Sequence[PortStack], device: torch.device | None = None) -> torch.Tensor:
    """Bool ``[len(stacks), tokens]``: :meth:`PortStack.allowed` of every stack (finished
    ones allow nothing), in one tensor operation."""
    kinds = torch.tensor([s.kind() for s in stacks])
    left = torch.tensor([s.left() for s in stacks])
    done = torch.tensor([s.done for s in stacks])
    mask = ALLOWED[kinds] & (_COST[None, :] <= left[:, None]) & ~done[:, None]
    return mask.to(device) if device is not None else mask


def constrained_choice(
    logits: torch.Tensor,
    stacks: Sequence[PortStack],
    *,
    sample: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[bool]]:
    """One decoding step of every decode under the constraint.

    Returns the chosen token ids ``[b]`` (sampled from the allowed tokens, or the most
    likely allowed one), their log-probabilities under the constraint (with gradients),
    and, per decode, whether the node budget overruled the type-allowed best token
    (always ``False`` when sampling). Finished decodes choose a placeholder.

    Example:
        >>> choice, lp, bent = constrained_choice(torch.zeros(1, len(TOKENS)),
        ...                                       [PortStack.start(max_nodes=2)])
        >>> SIGNATURES[TOKENS[int(choice)]][1] in ("integer", "bool"), bent
        (True, [False])
    """
    dev = logits.device
    typed = allowed_batch(stacks, dev)
    active = torch.tensor([not s.done for s in stacks], device=dev)
    typed[~active, 1] = True  # a harmless placeholder for finished decodes
    lp = torch.log_softmax(logits.masked_fill(~typed, -1e9), -1)
    bent = [False] * len(stacks)
    if sample:
        choice = torch.multinomial(lp.detach().exp(), 1, generator=generator).squeeze(1)
    else:
        choice = lp.argmax(-1)
        kinds = torch.tensor([s.kind() for s in stacks], device=dev)
        free = logits.masked_fill(~ALLOWED.to(dev)[kinds], -1e9).argmax(-1)
        bent = (active & (free != choice)).tolist()
    return choice, lp.gather(1, choice[:, None]).squeeze(1), bent


def port_sequence(tokens: Sequence[str]) -> list[tuple[int, int, int]]:
    """For each prefix token, the port it fills: (kind index, parent token, argument).

    Example:
        >>> [KINDS[k] for k, _, _ in port_sequence(["count", "scene"])]
        ['answer', 'objects']
    """
    stack = PortStack.start(len(tokens))
    out = []
    for t in tokens:
        kind, (par, arg) = stack.kind(), stack.parent()
        out.append((kind, par, arg))
        stack.push(t)
    return out


__all__ = [
    "ALLOWED",
    "ANSWER_KIND",
    "CUE_TOKENS",
    "KINDS",
    "MIN_COST",
    "PortStack",
    "SIGNATURES",
    "allowed_batch",
    "constrained_choice",
    "TOKENS",
    "TOKEN_INDEX",
    "fits",
    "from_prefix",
    "port_sequence",
    "prefix_tokens",
]
