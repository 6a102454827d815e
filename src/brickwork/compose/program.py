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
from brickwork.layouts import Kinds, Layout, Node, Runner, Source
from brickwork.modules import Module
from brickwork.types import Bool, NeuralType

#: the mask edge of a list: 1.0 where an element exists
MASK_TYPE = Bool("b n")


def feeds(src: CType, dst: CType) -> bool:
    """Whether a value of type ``src`` may flow where ``dst`` is expected (subtypes
    allowed, lists element-wise)."""
    if isinstance(src, ListOf) or isinstance(dst, ListOf):
        return isinstance(src, ListOf) and isinstance(dst, ListOf) and feeds(src.item, dst.item)
    return src.can_feed(dst)


class Fn(nn.Module):
    """Abstract: a typed function node. ``in_type``/``out_type`` are set when built.

    Every node is also a :class:`brickwork.layouts.Layout` (``fn.layout``): a chain of
    *stages* — the leaf modules and one module per combinator (``compose.map``,
    ``compose.fold``, ``compose.conv``) — type-checked by the layout when built, and run
    by the autobatched :class:`brickwork.layouts.Runner` (row ``i`` of the batch is one
    application of the layout). A list flows on two edges: ``values`` and ``mask``.

    Example:
        >>> f = compose(leaf(LibraryOp("not")), leaf(LibraryOp("as_count")))
        >>> f.layout, f(torch.tensor([[1.0], [0.0]])).tolist()
        (Layout('as_count ∘ not', 2 nodes, depth 2), [[0.0], [1.0]])
    """

    in_type: CType
    out_type: CType
    layout: Layout

    def term(self) -> Any:
        """The node's term (JSON-able nested lists), see :func:`term_str`."""
        raise NotImplementedError

    def stages(self) -> list[Module]:
        """The modules of this node's layout, first applied first."""
        raise NotImplementedError

    def __str__(self) -> str:
        return term_str(self.term())

    def _build_layout(self) -> None:
        kinds = Kinds()
        nodes: list[Node] = []
        prev: dict[str, Source] = {}
        stages = self.stages()
        for k, module in enumerate(stages):
            name = f"{k}.{_safe(module.kind)}"
            kinds.add(name, module)
            ports = list(module.inputs)
            if k == 0:
                inputs = {p: Source(None, p) for p in ports}
            elif len(ports) == 1:
                inputs = {ports[0]: prev["value"]}
            else:  # a list: values (or items) and mask
                vport = next(p for p in ports if p != "mask")
                inputs = {vport: prev["value"], "mask": prev["mask"]}
            node = Node(f"{name}#{k}", name, name, None, inputs)
            nodes.append(node)
            outs = list(module.outputs)
            prev = {"value": Source(node.id, next(p for p in outs if p != "mask"))}
            if "mask" in outs:
                prev["mask"] = Source(node.id, "mask")
        outputs = {"y": prev["value"]}
        if "mask" in prev:
            outputs["mask"] = prev["mask"]
        self.kinds = kinds
        self.layout = Layout(_safe(term_str(self.term()))[:80], nodes, kinds, outputs)
        self.runner = Runner(kinds)
        self._outputs = list(outputs)

    def forward(self, x: Any, state: torch.Tensor | None = None) -> Any:
        ext = list(self.layout.inputs)
        if isinstance(x, Padded):
            vport = next(p for p in ext if p != "mask")
            inputs = {vport: x.values, "mask": x.mask.to(x.values.dtype)}
        elif state is not None:
            item = next(p for p in ext if p != _state_port(ext))
            inputs = {_state_port(ext): state, item: x}
        else:
            if len(ext) != 1:
                raise LayoutError(
                    f"'{self}': takes a list (Padded) or a (state, item) pair, got "
                    f"{type(x).__name__}"
                )
            inputs = {ext[0]: x}
        rows = next(iter(inputs.values())).shape[0]
        out = self.runner([self.layout] * rows, inputs, self._outputs)
        if "mask" in out:
            return Padded(out["y"], out["mask"] > 0.5)
        return out["y"]


def _state_port(ports: list[str]) -> str:
    return "state" if "state" in ports else ports[0]


def _safe(text: str) -> str:
    """A module or layout name without the brackets module names reserve."""
    return text.replace("[", "<").replace("]", ">")


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
            self.ports: tuple[str, ...] = ("items", "mask")
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
        self._build_layout()

    def term(self) -> Any:
        return self._term

    def stages(self) -> list[Module]:
        return [self.module]


def leaf(module: Module, label: str | None = None, term: Any = None) -> Leaf:
    """Use a typed module as a function of a program.

    Example:
        >>> from brickwork.compose.library import LibraryOp
        >>> leaf(LibraryOp("not")).out_type
        Bool['b 1']
    """
    return Leaf(module, label, term)


class Compose(Fn):
    """``second ∘ first``: ``first``'s output feeds ``second`` (one layout: the stages of
    ``first`` then those of ``second``)."""

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
        self._build_layout()

    def term(self) -> Any:
        return ["compose", self.first.term(), self.second.term()]

    def stages(self) -> list[Module]:
        return self.first.stages() + self.second.stages()


def _padded_type(t: CType) -> NeuralType:
    if isinstance(t, ListOf) or not isinstance(t, NeuralType):
        raise LayoutError(f"lists of lists are not supported (got a list of {t!r})")
    return t.with_axes(ListOf(t).padded_axes)


def _vector_type(t: CType) -> NeuralType:
    if not isinstance(t, NeuralType):
        raise LayoutError(f"fold_l: the state must be a tensor type, got {t!r}")
    return t


class Stage(Module):
    """Abstract: a combinator as a layout module (ports: ``values`` and ``mask`` per
    list, ``[b, n, ...]`` and ``[b, n]``); holds the function it applies."""

    manual_config = True


class MapStage(Stage):
    """``map_l f`` in a layout: ``f``'s layout runs once on all present elements.

    Example:
        >>> m = MapStage(leaf(LibraryOp("not")))
        >>> m.inputs["values"], m(values=torch.ones(2, 3, 1), mask=torch.ones(2, 3))["values"].sum()
        (Bool['b n 1'], tensor(0.))
    """

    kind_name = "compose.map"
    manual_config = True

    def __init__(self, f: Fn):
        super().__init__()
        self.f = f
        self._bw_config = {"term": json.dumps(f.term())}
        self.inputs = {"values": _padded_type(f.in_type), "mask": MASK_TYPE}
        self.outputs = {"values": _padded_type(f.out_type), "mask": MASK_TYPE}

    def forward(self, values: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        b, n = mask.shape
        flat_mask = mask.reshape(-1) > 0.5
        items = values.reshape(b * n, *values.shape[2:])[flat_mask]
        if items.shape[0] == 0:
            raise LayoutError("map_l: every list of the batch is empty")
        out = self.f(items)
        full = out.new_zeros((b * n, *out.shape[1:]))
        full = full.index_put((flat_mask.nonzero().squeeze(1),), out)
        return {"values": full.reshape(b, n, *out.shape[1:]), "mask": mask}


class FoldStage(Stage):
    """``fold_l step`` in a layout: the step's layout runs once per position; lists that
    ended keep their state.

    Example:
        >>> f = FoldStage(leaf(LibraryOp("add")))
        >>> f(values=torch.ones(2, 3, 1), mask=torch.tensor([[1.0, 1, 1], [1, 0, 0]])).tolist()
        [[3.0], [1.0]]
    """

    kind_name = "compose.fold"
    manual_config = True

    def __init__(self, step: Fn, init: torch.Tensor | None = None):
        super().__init__()
        self.step_fn = step
        self.init = init
        self._bw_config = {"term": json.dumps(step.term())}
        self.inputs = {"values": _padded_type(step.in_type), "mask": MASK_TYPE}
        self.outputs = {"y": _vector_type(step.out_type)}

    def forward(self, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n = mask.shape
        out_type = self.outputs["y"]
        state = (
            self.init.expand(b, *self.init.shape[1:]).to(values.device)
            if self.init is not None
            else initial_state(out_type, b, values.device).to(values.dtype)
        )
        present = mask > 0.5
        for t in range(n):
            new = self.step_fn(values[:, t], state=state)
            keep = present[:, t].reshape(b, *([1] * (new.dim() - 1)))
            state = torch.where(keep, new, state)
        return state


class ConvStage(Stage):
    """``conv_l f`` in a layout: ``f`` (a list function) sees every window of ``width``
    neighbours (shorter at the ends), one output per element.

    Example:
        >>> c = ConvStage(fold_l(leaf(LibraryOp("add"))))
        >>> c(values=torch.ones(1, 4, 1), mask=torch.ones(1, 4))["values"].squeeze(-1).tolist()
        [[2.0, 3.0, 3.0, 2.0]]
    """

    kind_name = "compose.conv"
    manual_config = True

    def __init__(self, f: Fn, width: int = 3):
        super().__init__()
        if not isinstance(f.in_type, ListOf):
            raise LayoutError(f"conv_l: '{f}' must take a list, it takes {f.in_type!r}")
        self.f, self.width = f, int(width)
        self._bw_config = {"term": json.dumps(f.term()), "width": self.width}
        self.inputs = {"values": _padded_type(f.in_type.item), "mask": MASK_TYPE}
        self.outputs = {"values": _padded_type(f.out_type), "mask": MASK_TYPE}

    def forward(self, values: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        present = mask > 0.5
        b, n = present.shape
        r = self.width // 2
        vals = nn.functional.pad(values, [0, 0] * (values.dim() - 2) + [r, r])
        pmask = nn.functional.pad(present, [r, r])
        idx = torch.arange(n, device=mask.device)[:, None] + torch.arange(
            self.width, device=mask.device
        )
        win_vals = vals[:, idx]  # [b, n, w, ...]
        win_mask = pmask[:, idx] & present[:, :, None]
        # left-align every window so the padding is at the end (what list functions expect)
        order = torch.argsort((~win_mask).int(), dim=2, stable=True)
        win_mask = torch.gather(win_mask, 2, order)
        shape = order.shape + (1,) * (win_vals.dim() - 3)
        win_vals = torch.gather(win_vals, 2, order.reshape(shape).expand_as(win_vals))
        keep = present.reshape(-1)
        flat_vals = win_vals.reshape(b * n, self.width, *values.shape[2:])[keep]
        flat_mask = win_mask.reshape(b * n, self.width)[keep]
        out = self.f(Padded(flat_vals, flat_mask))
        full = out.new_zeros((b * n, *out.shape[1:]))
        full = full.index_put((keep.nonzero().squeeze(1),), out)
        return {"values": full.reshape(b, n, *out.shape[1:]), "mask": mask}


class Map(Fn):
    """``map_l f : List[A] → List[B]`` for ``f : A → B``."""

    def __init__(self, f: Fn):
        super().__init__()
        _need_function(f, "map_l")
        self.f = f
        self.in_type, self.out_type = ListOf(f.in_type), ListOf(f.out_type)
        self.stage = MapStage(f)
        self._build_layout()

    def term(self) -> Any:
        return ["map", self.f.term()]

    def stages(self) -> list[Module]:
        return [self.stage]


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
        self.in_type, self.out_type = ListOf(step.in_type), step.out_type
        self.stage = FoldStage(step, init)
        self._build_layout()

    def term(self) -> Any:
        return ["fold", self.step_fn.term()]

    def stages(self) -> list[Module]:
        return [self.stage]


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
        self.stage = ConvStage(f, width)
        self._build_layout()

    def term(self) -> Any:
        return ["conv", self.f.term()]

    def stages(self) -> list[Module]:
        return [self.stage]


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
