"""``Operator``: selective input -> functional submodule -> selective update (Fig. 3.2)."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import final

import torch

from brickwork.agent.representation import Representation
from brickwork.agent.selection import Field, Selection, check_reads, fit_reason
from brickwork.errors import AgentError
from brickwork.modules import Module, name_mismatch
from brickwork.types import AxisBindings, NeuralType


class Operator(abc.ABC):
    """Abstract: an action on the representation (representation in, representation out).

    Every operator has a ``name`` (what the controller selects) and can be checked
    against a representation's field types before any data flows.
    """

    name: str = ""
    #: operators that run whole sub-episodes (agents) are applied to all the rows that
    #: selected them at once, after the other rows have settled (batched recursion)
    deferred: bool = False

    @abc.abstractmethod
    def __call__(self, rep: Representation) -> Representation:
        """Apply the operator to every row of ``rep``."""

    def check(self, types: Mapping[str, NeuralType]) -> None:  # noqa: B027 (optional hook)
        """Raise :class:`AgentError` when the operator does not fit these field types."""

    def apply(
        self, rep: Representation, budget: torch.Tensor, depth: int = 0
    ) -> tuple[Representation, torch.Tensor]:
        """Apply within a per-row step ``budget``; returns the result and steps used.

        A primitive operator uses no steps of its own (the caller counts the one step
        that selected it); an agent used as an operator returns its episode's steps.
        """
        return self(rep), torch.zeros_like(budget)


@final
class ModuleOperator(Operator):
    """An operator built from a functional submodule and its selective input/update.

    Args:
        name: what the controller selects (``'mova'``).
        functional: any brickwork :class:`~brickwork.modules.Module`, learned or
            hand-coded; interchangeable when the ports are the same.
        inputs: functional input port -> :class:`Selection` it reads (a field name
            string means ``Field(name)``).
        outputs: functional output port -> :class:`Selection` it writes, applied in order.

    Example:
        >>> import torch
        >>> from brickwork.agent import Field, Representation
        >>> from brickwork.modules import Adapter
        >>> from brickwork.types import Logits, SoftMask
        >>> op = ModuleOperator("squash", Adapter("sigmoid", "b n"), inputs={"x": "s"},
        ...                     outputs={"y": "m"})
        >>> rep = Representation({"s": Logits("b n"), "m": SoftMask("b n")},
        ...                      {"s": torch.zeros(1, 2), "m": torch.ones(1, 2)})
        >>> op(rep)["m"]
        tensor([[0.5000, 0.5000]])
    """

    def __init__(
        self,
        name: str,
        functional: Module,
        *,
        inputs: Mapping[str, Selection | str],
        outputs: Mapping[str, Selection | str],
    ):
        if not isinstance(functional, Module):
            raise AgentError(
                f"operator '{name}': the functional submodule must be a brickwork "
                f"Module, got {type(functional).__name__}; wrap it with "
                "brickwork.modules.typed(...)"
            )
        self.name = name
        self.functional = functional
        self.inputs = {k: Field(v) if isinstance(v, str) else v for k, v in inputs.items()}
        self.outputs = {k: Field(v) if isinstance(v, str) else v for k, v in outputs.items()}
        for side, given, declared in (
            ("input", self.inputs, functional.inputs),
            ("output", self.outputs, functional.outputs),
        ):
            if problem := name_mismatch(declared, given):
                raise AgentError(
                    f"operator '{name}': functional {functional.kind} has {side} ports "
                    f"{list(declared)}; the selective {side} covers {list(given)} "
                    f"({problem}). Select exactly one part of the "
                    f"representation per {side} port"
                )

    def __repr__(self) -> str:
        return f"ModuleOperator({self.name!r}, {self.functional.kind})"

    def check(self, types: Mapping[str, NeuralType]) -> None:
        bindings = AxisBindings()
        check_reads(
            self.inputs,
            self.functional.inputs,
            types,
            f"operator '{self.name}'",
            "select a field of the expected type, change the representation's field "
            "type, or give the functional a port that accepts it",
            bindings,
        )
        for port, sel in self.outputs.items():
            where = f"operator '{self.name}', output port '{port}'"
            expected = sel.write_type(types, where)
            found = self.functional.outputs[port]
            reason = fit_reason(found, expected, bindings, relaxed=True)
            if reason:
                raise AgentError(
                    f"{where} writes {sel!r}: found {found!r}, expected {expected!r} ({reason}). "
                    "Fix: end the functional with an activation into the field's domain "
                    "(sigmoid, softmax) or insert a brickwork.modules.Adapter"
                )

    def gather(self, rep: Representation) -> dict[str, torch.Tensor]:
        """The selective input: the functional's inputs by port."""
        return {port: sel.read(rep) for port, sel in self.inputs.items()}

    def scatter(self, rep: Representation, out: Mapping[str, torch.Tensor]) -> Representation:
        """The selective update: write the functional's outputs back, in port order."""
        for port, sel in self.outputs.items():
            rep = rep.replace(**sel.write(rep, out[port]))
        return rep

    def targets(self, before: Representation, after: Representation) -> dict[str, torch.Tensor]:
        """Supervision for the functional from a trace transition ``before -> after``."""
        return {port: sel.target(before, after) for port, sel in self.outputs.items()}

    def __call__(self, rep: Representation) -> Representation:
        out = self.functional.call_ports(**self.gather(rep))
        return self.scatter(rep, out)


@final
class EOP(Operator):
    """End of program: leaves the representation unchanged and ends the episode.

    Example:
        >>> EOP().name
        'EOP'
    """

    def __init__(self, name: str = "EOP"):
        self.name = name

    def __repr__(self) -> str:
        return f"EOP({self.name!r})"

    def __call__(self, rep: Representation) -> Representation:
        return rep


__all__ = ["EOP", "ModuleOperator", "Operator"]
