"""The study's agents: thesis architectures, addressed, recursive, and hybrids.

Module sets are plain dicts ``role -> Module`` with roles ``mova``, ``movb``, ``retb``,
``swap``, ``digestor`` and ``policy`` (the recursive controller: ``rec_digestor``,
``rec_policy``). Training *units* are what trains independently: one per operator and
one per controller (digestor + policy together).

Example:
    >>> agent = build_agent("modular_addressed", handcoded_modules("addressed"))
    >>> [op.name for op in agent.operators]
    ['mova', 'movb', 'retb', 'swap', 'EOP']
"""

from __future__ import annotations

from collections.abc import Mapping

from brickwork.agent import (
    EOP,
    Agent,
    At,
    Controller,
    ModuleOperator,
    Operator,
    Recurse,
    Shifted,
    SubInterface,
)
from brickwork.errors import AgentError
from brickwork.modules import Module
from brickwork.studies.sorting.data import FIELDS
from brickwork.studies.sorting.handcoded import (
    HandDigestor,
    HandPairSwap,
    HandShift,
    HandShiftHead,
    HandSwap,
    TeacherPolicy,
)
from brickwork.studies.sorting.modules import (
    HIDDEN,
    AddressedDigestor,
    PairSwap,
    PointerLSTM,
    PolicyLSTM,
    PolicyMLP,
    ShiftHead,
    SwapBiLSTM,
    WholeListDigestor,
)
from brickwork.studies.sorting.teacher import FLAT_OPS, RECURSIVE_OPS

OPERATORS = ("mova", "movb", "retb", "swap")
VARIANTS = (
    "monolithic",
    "modular_untyped",
    "modular_typed",
    "modular_addressed",
    "modular_addressed_recursive",
    "hybrid_mova",
    "hybrid_movb",
    "hybrid_retb",
    "hybrid_swap",
)
#: variants whose learned parts read the whole list (evaluation cost grows as n³)
WHOLE_LIST = (
    "monolithic",
    "modular_untyped",
    "modular_typed",
    "hybrid_mova",
    "hybrid_movb",
    "hybrid_retb",
    "hybrid_swap",
)
#: training units per family: unit -> roles it trains (an operator unit trains its own role)
THESIS_UNITS = {
    **{f"thesis.{op}": (op,) for op in OPERATORS},
    "thesis.controller": ("digestor", "policy"),
}
ADDRESSED_UNITS = {
    **{f"addr.{op}": (op,) for op in OPERATORS},
    "addr.controller": ("digestor", "policy"),
    "rec.controller": ("rec_digestor", "rec_policy"),
}


def new_modules(unit: str, hidden: int = HIDDEN) -> dict[str, Module]:
    """Freshly initialised modules of a training unit, by role."""
    family, role = unit.split(".")
    if family == "thesis":
        if role == "controller":
            return {
                "digestor": WholeListDigestor(hidden=hidden),
                "policy": PolicyLSTM(embedding=hidden, hidden=hidden, choices=len(FLAT_OPS)),
            }
        if role == "swap":
            return {"swap": SwapBiLSTM(hidden=hidden)}
        return {role: PointerLSTM(hidden=hidden)}
    if family == "addr":
        if role == "controller":
            return {"digestor": AddressedDigestor(), "policy": PolicyMLP(choices=len(FLAT_OPS))}
        if role == "swap":
            return {"swap": PairSwap()}
        return {role: ShiftHead()}
    if family == "rec" and role == "controller":
        return {
            "rec_digestor": AddressedDigestor(),
            "rec_policy": PolicyMLP(choices=len(RECURSIVE_OPS)),
        }
    raise AgentError(
        f"unknown training unit {unit!r}; units: {sorted(THESIS_UNITS) + sorted(ADDRESSED_UNITS)}"
    )


def handcoded_modules(family: str) -> dict[str, Module]:
    """Hand-coded modules with the ports of the ``'thesis'`` or ``'addressed'`` family."""
    if family == "thesis":
        return {"mova": HandShift(), "movb": HandShift(), "retb": HandShift(), "swap": HandSwap()}
    if family == "addressed":
        return {
            "mova": HandShiftHead(),
            "movb": HandShiftHead(),
            "retb": HandShiftHead(),
            "swap": HandPairSwap(),
            "digestor": HandDigestor(),
            "policy": TeacherPolicy(),
            "rec_digestor": HandDigestor(),
            "rec_policy": TeacherPolicy(recursive=True),
        }
    raise AgentError(f"unknown module family {family!r}; use 'thesis' or 'addressed'")


#: the pointer operators: (pointer read, pointer written); ``retb`` puts B just after A
POINTER_MOVES = {"mova": ("a", "a"), "movb": ("b", "b"), "retb": ("a", "b")}


def thesis_operators(m: Mapping[str, Module]) -> list[Operator]:
    """Whole-list operators (§3.2.1): each functional reads whole fields."""
    return [
        *(
            ModuleOperator(op, m[op], inputs={"pointer": read}, outputs={"moved": written})
            for op, (read, written) in POINTER_MOVES.items()
        ),
        ModuleOperator(
            "swap",
            m["swap"],
            inputs={"values": "values", "a": "a", "b": "b"},
            outputs={"swapped": "values"},
        ),
    ]


def thesis_controller(m: Mapping[str, Module]) -> Controller:
    """The whole-list controller (digestor LSTM + policy LSTM)."""
    return Controller(
        m["digestor"], m["policy"], reads={"values": "values", "a": "a", "b": "b"}, choices=FLAT_OPS
    )


def addressed_operators(m: Mapping[str, Module]) -> list[Operator]:
    """Addressed operators: reads and writes under the pointers, moves as shifts."""
    return [
        *(
            ModuleOperator(
                op,
                m[op],
                inputs={"value": At("values", read)},
                outputs={"shift": Shifted(written, read)},
            )
            for op, (read, written) in POINTER_MOVES.items()
        ),
        ModuleOperator(
            "swap",
            m["swap"],
            inputs={"va": At("values", "a"), "vb": At("values", "b")},
            outputs={"new_a": At("values", "a"), "new_b": At("values", "b")},
        ),
    ]


ADDRESSED_READS = {
    "va": At("values", "a"),
    "vb": At("values", "b"),
    "b_end": At("end", "b"),
    "a_penult": At("penult", "a"),
}


def addressed_controller(m: Mapping[str, Module], recursive: bool = False) -> Controller:
    """The controller whose digestor sees v_A, v_B and the end-of-list flags."""
    if recursive:
        return Controller(
            m["rec_digestor"], m["rec_policy"], reads=ADDRESSED_READS, choices=RECURSIVE_OPS
        )
    return Controller(m["digestor"], m["policy"], reads=ADDRESSED_READS, choices=FLAT_OPS)


def recursive_agent(m: Mapping[str, Module], step_limit: int = 10_000) -> Agent:
    """Place the minimum at A (movb/swap), then call itself on the list after A.

    The recursive call's sub-interface copies the fields down, moves the sub-problem's
    pointers with the ``mova`` and ``retb`` operators (A' = A + 1, B' = A' + 1) and writes
    the values back up; the caller's pointers stay where they were.
    """
    ops = addressed_operators(m)
    by_name = {op.name: op for op in ops}
    sub = SubInterface(
        FIELDS,
        reads={k: k for k in FIELDS},
        writes={"values": "values"},
        enter=[by_name["mova"], by_name["retb"]],
    )
    return Agent(
        "sorter_recursive",
        FIELDS,
        [by_name["movb"], by_name["swap"], Recurse("sort_tail", sub), EOP()],
        addressed_controller(m, recursive=True),
        step_limit=step_limit,
        max_depth=1024,
    )


def build_agent(variant: str, modules: Mapping[str, Module], step_limit: int = 10_000) -> Agent:
    """The agent of ``variant`` from a module set (``hybrid_<op>`` swaps in the hand-coded
    ``<op>`` into the thesis-typed agent)."""
    if variant in ("monolithic", "modular_untyped", "modular_typed"):
        return Agent(
            f"sorter_{variant}",
            FIELDS,
            thesis_operators(modules) + [EOP()],
            thesis_controller(modules),
            step_limit=step_limit,
        )
    if variant.startswith("hybrid_"):
        op = variant[len("hybrid_") :]
        if op not in OPERATORS:
            raise AgentError(f"unknown hybrid {variant!r}; use hybrid_<op> with op in {OPERATORS}")
        mixed = dict(modules)
        mixed[op] = handcoded_modules("thesis")[op]
        return build_agent("modular_typed", mixed, step_limit)
    if variant == "modular_addressed":
        return Agent(
            "sorter_addressed",
            FIELDS,
            addressed_operators(modules) + [EOP()],
            addressed_controller(modules),
            step_limit=step_limit,
        )
    if variant == "modular_addressed_recursive":
        return recursive_agent(modules, step_limit)
    raise AgentError(f"unknown variant {variant!r}; variants: {list(VARIANTS)}")


def is_typed(variant: str) -> bool:
    """Whether the variant's interface projects fields onto their types between operators."""
    return variant not in ("monolithic", "modular_untyped")


__all__ = [
    "ADDRESSED_UNITS",
    "OPERATORS",
    "THESIS_UNITS",
    "VARIANTS",
    "WHOLE_LIST",
    "addressed_controller",
    "addressed_operators",
    "build_agent",
    "handcoded_modules",
    "is_typed",
    "new_modules",
    "recursive_agent",
    "thesis_controller",
    "thesis_operators",
]
