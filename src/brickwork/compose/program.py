"""Programs: typed functions built from modules with ``compose``, ``map_l``, ``fold_l``
and ``conv_l`` (HOUDINI's combinators), type-checked when built, run batched.

A program is a tree of :class:`Fn` nodes (``torch.nn.Module``s). Leaves wrap a typed
:class:`brickwork.modules.Module` with one output port; combinators are parameter-free.
Lists are :class:`Padded` batches: ``map_l`` runs its function once on every element
of the whole batch (one call, padded positions skipped), ``fold_l`` runs its step once
per position over the batch and keeps the state of lists that already ended, ``conv_l``
applies a list function to every window of 3 neighbours.

Example:
    >>> import torch
    >>> from brickwork.compose.library import LibraryOp
    >>> from brickwork.compose.types import Padded
    >>> count = compose(map_l(leaf(LibraryOp("as_count"))), fold_l(leaf(LibraryOp("add"))))
    >>> count.in_type, count.out_type
    (List[Bool['b 1']], Count['b 1'])
    >>> bools = Padded.from_list([torch.tensor([[1.0], [0.0], [1.0]]), torch.tensor([[1.0]])])
    >>> count(bools).tolist()
    [[2.0], [1.0]]
"""

from __future__ import annotations

import json
from typing import Any, cast

import torch
from torch import nn

from brickwork.compose.library import LibraryOp, initial_state
from brickwork.compose.types import CType, ListOf, Padded, ctype_from_json, type_to_json
from brickwork.errors import LayoutError
from brickwork.modules import Module
from brickwork.types import Bool, NeuralType


def feeds(src: CType, dst: CType) -> bool:
    """Whether a value of type ``src`` may flow where ``dst`` is expected (subtypes
    allowed, lists element-wise)."""
    if isinstance(src, ListOf) or isinstance(dst, ListOf):
        return isinstance(src, ListOf) and isinstance(dst, ListOf) and feeds(src.item, dst.item)
    return src.can_feed(dst)


class Fn(nn.Module):
    """Abstract: a typed function node. ``in_type``/``out_type`` are set when built."""

    in_type: CType
    out_type: CType

    def term(self) -> Any:
        """The node's term (JSON-able nested lists), see :func:`term_str`."""
        raise NotImplementedError

    def __str__(self) -> str:
        return term_str(self.term())


class Leaf(Fn):
    """A module with one output port used as a function (one input port), or as a fold
    step (``state`` and ``item`` ports, or any two ports whose first has the output's type).

    ``label`` names it in printed programs; ``term`` is what the search records.
    """

    def __init__(self, module: Module, label: str | None = None, term: Any = None):
        super().__init__()
        if len(module.outputs) != 1:
            raise LayoutError(
                f"leaf {label or module.kind!r}: a function needs one output port, "
                f"{module.kind} has {list(module.outputs)}; wrap it in a module "
                "that returns one"
            )
        self.module = module
        if isinstance(module, LibraryOp):
            self.label = label or module.name
            self._term = term if term is not None else ["lib", module.name]
        else:
            self.label = label or module.kind
            self._term = term if term is not None else ["module", self.label]
        self.out_type = next(iter(module.outputs.values()))
        ins = dict(module.inputs)
        if getattr(module, "arch", None) == "rnn":
            self.ports: tuple[str, ...] = ("items",)
            self.in_type = cast(Any, module).in_types["x"]  # a Hole's port types
            self.step = False
        elif len(ins) == 1:
            self.ports = (next(iter(ins)),)
            self.in_type = ins[self.ports[0]]
            self.step = False
        elif len(ins) == 2:
            names = list(ins)
            if "state" in ins and "item" in ins:
                names = ["state", "item"]
            self.ports = tuple(names)
            self.in_type = ins[names[1]]  # the item type; the state has out_type
            self.state_type = ins[names[0]]
            self.step = True
        else:
            raise LayoutError(
                f"leaf {self.label!r}: a function takes one input port (or two for "
                f"a fold step), {module.kind} has {list(ins)}"
            )

    def term(self) -> Any:
        return self._term

    def forward(self, x: Any, state: torch.Tensor | None = None) -> Any:
        m = self.module
        if self.step:
            out = m(**{self.ports[0]: state, self.ports[1]: x})
        elif getattr(m, "arch", None) == "rnn":
            out = m(items=x.values, mask=x.mask.float())
        else:
            out = m(**{self.ports[0]: x})
        return next(iter(m.outputs_as_dict(out).values()))


def leaf(module: Module, label: str | None = None, term: Any = None) -> Leaf:
    """Use a typed module as a function of a program.

    Example:
        >>> from brickwork.compose.library import LibraryOp
        >>> leaf(LibraryOp("not")).out_type
        Bool['b 1']
    """
    return Leaf(module, label, term)


class Compose(Fn):
    """``second ∘ first``: ``first``'s output feeds ``second``."""

    def __init__(self, first: Fn, second: Fn):
        super().__init__()
        _need_function(first, "compose")
        _need_function(second, "compose")
        if not feeds(first.out_type, second.in_type):
            raise LayoutError(
                f"compose: '{first}' produces {first.out_type!r} but '{second}' "
                f"expects {second.in_type!r}; insert a function between them (e.g. "
                "map_l(as_count) to turn Bool items into Count) or pick another module"
            )
        self.first, self.second = first, second
        self.in_type, self.out_type = first.in_type, second.out_type

    def term(self) -> Any:
        return ["compose", self.first.term(), self.second.term()]

    def forward(self, x: Any) -> Any:
        return self.second(self.first(x))


class Map(Fn):
    """``map_l f : List[A] → List[B]`` for ``f : A → B``."""

    def __init__(self, f: Fn):
        super().__init__()
        _need_function(f, "map_l")
        self.f = f
        self.in_type, self.out_type = ListOf(f.in_type), ListOf(f.out_type)

    def term(self) -> Any:
        return ["map", self.f.term()]

    def forward(self, x: Padded) -> Padded:
        _need_padded(x, "map_l")
        b, n = x.mask.shape
        flat_mask = x.mask.reshape(-1)
        items = x.values.reshape(b * n, *x.values.shape[2:])[flat_mask]
        if items.shape[0] == 0:
            raise LayoutError("map_l: every list of the batch is empty")
        out = self.f(items)
        full = out.new_zeros((b * n, *out.shape[1:]))
        full = full.index_put((flat_mask.nonzero().squeeze(1),), out)
        return Padded(full.reshape(b, n, *out.shape[1:]), x.mask)


class Fold(Fn):
    """``fold_l step init : List[A] → S`` for ``step : (S, A) → S`` (``init``: zeros of
    ``S``, a uniform distribution for ``Probs``, unless given)."""

    def __init__(self, step: Fn, init: torch.Tensor | None = None):
        super().__init__()
        if not isinstance(step, Leaf) or not step.step:
            raise LayoutError(
                f"fold_l: the step '{step}' must take (state, item) and return a "
                "state; use a two-port module such as library 'add' or a step hole"
            )
        if not feeds(step.out_type, step.state_type):
            raise LayoutError(
                f"fold_l: the step '{step}' returns {step.out_type!r} but its state "
                f"port expects {step.state_type!r}"
            )
        self.step_fn = step
        self.init = init
        self.in_type, self.out_type = ListOf(step.in_type), step.out_type

    def term(self) -> Any:
        return ["fold", self.step_fn.term()]

    def forward(self, x: Padded) -> torch.Tensor:
        _need_padded(x, "fold_l")
        b, n = x.mask.shape
        assert isinstance(self.out_type, NeuralType)
        state = (
            self.init.expand(b, *self.init.shape[1:]).to(x.values.device)
            if self.init is not None
            else initial_state(self.out_type, b, x.values.device)
        )
        for t in range(n):
            new = self.step_fn(x.values[:, t], state=state)
            keep = x.mask[:, t].reshape(b, *([1] * (new.dim() - 1)))
            state = torch.where(keep, new, state)
        return state


class Conv(Fn):
    """``conv_l f : List[A] → List[B]`` for ``f : List[A] → B``: ``f`` sees every window
    of 3 neighbours (shorter at the ends), one output per element."""

    def __init__(self, f: Fn, width: int = 3):
        super().__init__()
        _need_function(f, "conv_l")
        if not isinstance(f.in_type, ListOf):
            raise LayoutError(f"conv_l: '{f}' must take a list, it takes {f.in_type!r}")
        self.f, self.width = f, int(width)
        self.in_type, self.out_type = f.in_type, ListOf(f.out_type)

    def term(self) -> Any:
        return ["conv", self.f.term()]

    def forward(self, x: Padded) -> Padded:
        _need_padded(x, "conv_l")
        b, n = x.mask.shape
        r = self.width // 2
        vals = nn.functional.pad(x.values, [0, 0] * (x.values.dim() - 2) + [r, r])
        mask = nn.functional.pad(x.mask, [r, r])
        idx = torch.arange(n, device=x.mask.device)[:, None] + torch.arange(
            self.width, device=x.mask.device
        )
        win_vals = vals[:, idx]  # [b, n, w, ...]
        win_mask = mask[:, idx] & x.mask[:, :, None]
        # left-align every window so the padding is at the end (what list functions expect)
        order = torch.argsort((~win_mask).int(), dim=2, stable=True)
        win_mask = torch.gather(win_mask, 2, order)
        shape = order.shape + (1,) * (win_vals.dim() - 3)
        win_vals = torch.gather(win_vals, 2, order.reshape(shape).expand_as(win_vals))
        keep = x.mask.reshape(-1)
        flat_vals = win_vals.reshape(b * n, self.width, *x.values.shape[2:])[keep]
        flat_mask = win_mask.reshape(b * n, self.width)[keep]
        out = self.f(Padded(flat_vals, flat_mask))
        full = out.new_zeros((b * n, *out.shape[1:]))
        full = full.index_put((keep.nonzero().squeeze(1),), out)
        return Padded(full.reshape(b, n, *out.shape[1:]), x.mask)


def compose(*fns: Fn) -> Fn:
    """Chain functions left to right: ``compose(f, g, h)`` is ``h ∘ g ∘ f``.

    Raises:
        LayoutError: an output does not feed the next input (the message names both).
    """
    if not fns:
        raise LayoutError("compose: no functions given")
    out = fns[0]
    for f in fns[1:]:
        out = Compose(out, f)
    return out


def map_l(f: Fn) -> Map:
    """``map_l f``: apply ``f`` to every element of a list."""
    return Map(f)


def fold_l(step: Fn, init: torch.Tensor | None = None) -> Fold:
    """``fold_l step init``: reduce a list with a (state, item) → state step."""
    return Fold(step, init)


def conv_l(f: Fn, width: int = 3) -> Conv:
    """``conv_l f``: apply a list function to every window of ``width`` neighbours."""
    return Conv(f, width)


def _need_function(f: Any, where: str) -> None:
    if not isinstance(f, Fn):
        raise LayoutError(
            f"{where}: expected a program function (leaf(module), map_l(...), ...), "
            f"got {type(f).__name__}"
        )
    if isinstance(f, Leaf) and f.step:
        raise LayoutError(
            f"{where}: '{f}' is a fold step (state, item) -> state; use it inside fold_l"
        )


def _need_padded(x: Any, where: str) -> None:
    if not isinstance(x, Padded):
        raise LayoutError(f"{where}: expected a Padded list batch, got {type(x).__name__}")


# ----- terms -----------------------------------------------------------------------------
def term_str(term: Any) -> str:
    """Readable form of a term: ``fold(add) ∘ map(as_count ∘ recog)``.

    Example:
        >>> term_str(["compose", ["map", ["lib", "as_count"]], ["fold", ["lib", "add"]]])
        'fold(add) ∘ map(as_count)'
    """
    op = term[0]
    if op == "compose":
        return f"{term_str(term[2])} ∘ {term_str(term[1])}"
    if op in ("map", "fold", "conv"):
        return f"{op}({term_str(term[1])})"
    if op == "lib":
        return str(term[1])
    if op == "reg":
        return str(term[1]).split("@")[0]
    if op == "hole":
        ins = json.loads(term[1])
        out = ctype_from_json(json.loads(term[2]))
        shown = ", ".join(repr(ctype_from_json(v)) for v in ins.values())
        return f"NEW[{shown} -> {out!r}]"
    return str(term[-1])


def term_holes(term: Any) -> list[Any]:
    """The hole leaves of a term, in order."""
    if term[0] == "hole":
        return [term]
    if term[0] in ("compose", "map", "fold", "conv"):
        return [h for t in term[1:] for h in term_holes(t)]
    return []


def term_refs(term: Any) -> list[str]:
    """The registry references a term uses."""
    if term[0] == "reg":
        return [term[1]]
    if term[0] in ("compose", "map", "fold", "conv"):
        return [r for t in term[1:] for r in term_refs(t)]
    return []


def term_size(term: Any) -> int:
    if term[0] in ("compose", "map", "fold", "conv"):
        return 1 + sum(term_size(t) for t in term[1:])
    return 1


def hole_term(inputs: dict[str, CType], output: CType) -> list[str]:
    """The term of a hole with these ports."""
    return [
        "hole",
        json.dumps({k: type_to_json(v) for k, v in inputs.items()}, sort_keys=True),
        json.dumps(type_to_json(output), sort_keys=True),
    ]


def build_program(term: Any, resolve: Any) -> Fn:
    """Build the :class:`Fn` tree of ``term``; ``resolve(leaf_term, index)`` returns the
    module of a leaf (``index`` counts holes in order)."""
    counter = [0]

    def go(t: Any) -> Fn:
        op = t[0]
        if op == "compose":
            return Compose(go(t[1]), go(t[2]))
        if op == "map":
            return Map(go(t[1]))
        if op == "fold":
            return Fold(go(t[1]))
        if op == "conv":
            return Conv(go(t[1]))
        k = counter[0]
        if op == "hole":
            counter[0] += 1
        module = resolve(t, k)
        return Leaf(module, term_str(t), term=list(t))

    return go(term)


MASK_TYPE = Bool("b n")
