"""CLEVR programs as NMN layouts, for either interface set, and the full model.

A program node becomes a module name of the layout vocabulary: ``filter_color[red]``
runs as ``And(mask, find[red](features))`` (so find modules read the image only),
``intersect``/``union`` are the interface's ``And``/``Or``, ``count`` is
``measure[count]``, ``query_shape`` is ``query[shape]``, ``equal_color`` is
``compare[equal_color]``. The **depth** reported everywhere is the CLEVR program's
(:func:`brickwork.studies.clevr.data.program_depth`), not the layout's.

Example:
    >>> from brickwork.studies.clevr.data import Program
    >>> kinds = nmn_kinds("typed", channels=8)
    >>> p = Program.from_json([{"function": "scene", "inputs": []},
    ...     {"function": "filter_color", "inputs": [0], "value_inputs": ["red"]},
    ...     {"function": "count", "inputs": [1]}])
    >>> [n.module for n in program_layout(p, kinds).nodes]
    ['scene', 'find[red]', 'And', 'measure[count]']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from brickwork.errors import DataError
from brickwork.layouts import Kinds, Layout, Runner, from_program
from brickwork.modules import And, Or, module_device
from brickwork.studies.clevr.data import Program
from brickwork.studies.clevr.nmn.answers import Compare, Measure, Query, QuestionEncoder
from brickwork.studies.clevr.nmn.modules import Find, Relate, Same, Scene, Unique
from brickwork.types import Features


def nmn_kinds(interface: str, channels: int = 32) -> Kinds:
    """The module vocabulary of one interface set (typed or classic)."""
    typed = interface == "typed"
    return Kinds(
        scene=lambda: Scene(channels, interface),
        find=lambda value: Find(channels, interface),
        relate=lambda rel: Relate(channels, interface),
        same=lambda attr: Same(channels, interface),
        unique=lambda: Unique(interface),
        measure=lambda fn: Measure(fn, interface),
        query=lambda attr: Query(channels, attr, interface),
        compare=lambda fn: Compare(fn, interface),
        And=(lambda: And.min()) if typed else (lambda: And.product()),
        Or=(lambda: Or.max()) if typed else (lambda: Or.sum()),
    )


def layout_program(program: Program) -> list[dict[str, Any]]:
    """The CLEVR program rewritten in the layout vocabulary (a program dict list)."""
    out: list[dict[str, Any]] = []
    where: list[int] = []

    def add(fn: str, inputs: list[int], values: Sequence[str] = ()) -> int:
        out.append({"function": fn, "inputs": inputs, "value_inputs": list(values)})
        return len(out) - 1

    for node in program:
        fn, ins = node.function, [where[i] for i in node.inputs]
        if fn == "scene":
            idx = add("scene", [])
        elif fn.startswith("filter_"):
            f = add("find", [], node.value_inputs)
            idx = add("And", [ins[0], f])
        elif fn == "intersect":
            idx = add("And", ins)
        elif fn == "union":
            idx = add("Or", ins)
        elif fn == "relate":
            idx = add("relate", ins, node.value_inputs)
        elif fn.startswith("same_"):
            idx = add("same", ins, [fn[5:]])
        elif fn == "unique":
            idx = add("unique", ins)
        elif fn in ("count", "exist"):
            idx = add("measure", ins, [fn])
        elif fn.startswith("query_"):
            idx = add("query", ins, [fn[6:]])
        elif fn.startswith("equal_") or fn in ("less_than", "greater_than"):
            idx = add("compare", ins, [fn])
        else:
            raise DataError(f"program {program}: function {fn!r} has no NMN module")
        where.append(idx)
    return out


def program_layout(program: Program, kinds: Kinds, name: str = "q") -> Layout:
    """The type-checked layout of one CLEVR program."""
    channels = kinds.module("scene").config["channels"]
    return from_program(
        layout_program(program),
        kinds,
        name=name,
        externals={"features": Features(f"b {channels} h w")},
    )


class LayoutCache:
    """One layout per distinct program (layouts are immutable and shared).

    ``anchor``: a module whose device the layouts' modules follow: modules that a new
    layout instantiates (``find[purple]`` seen for the first time) are moved there.

    Example:
        >>> from brickwork.studies.clevr.data import Program
        >>> cache = LayoutCache(nmn_kinds("classic", channels=8))
        >>> p = Program.from_json(
        ...     [{"function": "scene", "inputs": []}, {"function": "exist", "inputs": [0]}]
        ... )
        >>> cache(p) is cache(p)
        True
    """

    def __init__(self, kinds: Kinds, anchor: nn.Module | None = None):
        self.kinds = kinds
        self.anchor = anchor
        self._cache: dict[Program, Layout] = {}

    def __call__(self, program: Program) -> Layout:
        lay = self._cache.get(program)
        if lay is None:
            lay = program_layout(program, self.kinds, name=f"p{len(self._cache)}")
            self._cache[program] = lay
            if self.anchor is not None:
                device = module_device(self.anchor)
                if device.type != "cpu":  # new modules are built on the CPU
                    self.kinds.to(device)
        return lay


def merge_prior(interface: str, logits: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """Answer log-probabilities from the layout's logits and the question prior.

    Typed: the prior is added to the answer logits (§4.3.2). Classic: the geometric
    average of the two distributions (original NMN), renormalised.
    """
    if interface == "typed":
        return torch.log_softmax(logits + prior, -1)
    mix = 0.5 * (torch.log_softmax(logits, -1) + torch.log_softmax(prior, -1))
    return torch.log_softmax(mix, -1)


class NMN(nn.Module):
    """A whole NMN: the module vocabulary, the question encoder and the prior merge.

    ``model.to(device)`` moves it; modules that later layouts instantiate follow.

    Example:
        >>> import torch
        >>> from brickwork.studies.clevr.data import Program
        >>> nmn = NMN("typed", vocab=10, channels=8)
        >>> p = Program.from_json(
        ...     [{"function": "scene", "inputs": []}, {"function": "exist", "inputs": [0]}]
        ... )
        >>> out = nmn([nmn.layouts(p)], torch.rand(1, 8, 8, 12), tokens=torch.ones(1, 4).long())
        >>> out.shape, bool(torch.isclose(out.exp().sum(), torch.tensor(1.0)))
        (torch.Size([1, 28]), True)
    """

    def __init__(self, interface: str, vocab: int, channels: int = 32):
        super().__init__()
        self.interface = interface
        self.kinds = nmn_kinds(interface, channels)
        self.question = QuestionEncoder(vocab)
        self.layouts = LayoutCache(self.kinds, anchor=self.question)
        self.runner = Runner(self.kinds, cache_size=0)

    def evidence(self, layouts: Sequence[Layout], features: torch.Tensor) -> torch.Tensor:
        """The layouts' answer logits (before the prior)."""
        return self.runner(layouts, {"features": features})["answer"]

    def forward(
        self,
        layouts: Sequence[Layout],
        features: torch.Tensor,
        *,
        tokens: torch.Tensor | None = None,
        prior: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if prior is None:
            if tokens is None:
                raise DataError("NMN: pass the question tokens or a cached prior")
            prior = self.question(tokens)
        return merge_prior(self.interface, self.evidence(layouts, features), prior)
