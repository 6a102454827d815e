"""``Controller`` = digestor + policy (§3.1.1, Fig. 3.5): which operator next."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import cast, final

import torch
from torch import nn

from brickwork.agent.representation import Representation
from brickwork.agent.selection import Field, Selection, check_reads, fit_reason
from brickwork.errors import AgentError
from brickwork.modules import Module, name_mismatch
from brickwork.types import AxisBindings, NeuralType, OneHot

#: the policy input port that receives the previous selection (one-hot, plus a start code)
PREVIOUS = "previous"
#: the digestor output / policy input port carrying the fixed-size embedding
EMBEDDING = "embedding"
#: the policy output port with the distribution over operators
SELECTION = "selection"


@final
class Controller(nn.Module):
    """The control module: a *digestor* turns the selected part of R(t) (any size) into a
    fixed-size embedding; a *policy* maps embedding + its own state to a selection over
    the operators.

    The policy declares the ports ``embedding`` (in) and ``selection`` (out, a
    distribution over ``choices``). Ports present both as input and output (``h``,
    ``c`` …) are its recurrent state, started by ``policy.initial_state(batch)``. An
    input port named ``previous`` receives the previous selection as a one-hot with an
    extra start code (index ``len(choices)``).

    Args:
        digestor: module whose single output is the embedding.
        policy: module as described above.
        reads: digestor input port -> selection of R(t) (a string means a whole field).
        choices: operator names, in the order of the policy's selection.

    Example:
        >>> import torch
        >>> from brickwork.modules import typed
        >>> from brickwork.types import Features, Probs, SoftMask
        >>> class Mean(torch.nn.Module):
        ...     def forward(self, m):
        ...         return m.mean(-1, keepdim=True)
        >>> class Rule(torch.nn.Module):
        ...     def forward(self, embedding):
        ...         return torch.cat([embedding, 1 - embedding], -1)
        >>> ctl = Controller(typed(Mean(), {"m": SoftMask("b n")}, {"e": Features("b 1")}),
        ...                  typed(Rule(), {"embedding": Features("b 1")},
        ...                        {"selection": Probs("b 2")}),
        ...                  reads={"m": "mask"}, choices=["grow", "EOP"])
        >>> rep = Representation({"mask": SoftMask("b n")}, {"mask": torch.ones(1, 3)})
        >>> sel, state = ctl.decide(rep, ctl.initial_state(1))
        >>> ctl.choices[int(sel.argmax())]
        'grow'
    """

    def __init__(
        self,
        digestor: Module,
        policy: Module,
        *,
        reads: Mapping[str, Selection | str],
        choices: Sequence[str],
    ):
        super().__init__()
        for role, m in (("digestor", digestor), ("policy", policy)):
            if not isinstance(m, Module):
                raise AgentError(
                    f"controller {role}: expected a brickwork Module, got "
                    f"{type(m).__name__}; wrap it with brickwork.modules.typed(...)"
                )
        if len(digestor.outputs) != 1:
            raise AgentError(
                f"controller digestor {digestor.kind}: declares outputs "
                f"{list(digestor.outputs)}; a digestor has exactly one (the embedding)"
            )
        if EMBEDDING not in policy.inputs or SELECTION not in policy.outputs:
            raise AgentError(
                f"controller policy {policy.kind}: ports {policy.signature}; a "
                f"policy takes '{EMBEDDING}' and returns '{SELECTION}'"
            )
        if len(set(choices)) != len(choices) or not choices:
            raise AgentError(f"controller: choices {list(choices)} must be distinct and non-empty")
        self.digestor = digestor
        self.policy = policy
        self.reads = {k: Field(v) if isinstance(v, str) else v for k, v in reads.items()}
        if problem := name_mismatch(digestor.inputs, self.reads):
            raise AgentError(
                f"controller digestor {digestor.kind}: input ports "
                f"{list(digestor.inputs)}; reads cover {list(self.reads)} ({problem})"
            )
        self.choices = list(choices)
        self.state_ports = [p for p in policy.inputs if p in policy.outputs and p != SELECTION]
        extra_in = [
            p for p in policy.inputs if p not in (EMBEDDING, PREVIOUS) and p not in self.state_ports
        ]
        if extra_in:
            raise AgentError(
                f"controller policy {policy.kind}: input ports {extra_in} are "
                f"neither '{EMBEDDING}', '{PREVIOUS}' nor recurrent state (ports that "
                "are also outputs)"
            )
        if self.state_ports and not hasattr(policy, "initial_state"):
            raise AgentError(
                f"controller policy {policy.kind}: has recurrent state "
                f"{self.state_ports} but no initial_state(batch) method"
            )
        emb_out = next(iter(digestor.outputs.values()))
        reason = fit_reason(emb_out, policy.inputs[EMBEDDING])
        if reason:
            raise AgentError(
                f"controller: digestor output {emb_out!r} cannot feed the policy's "
                f"'{EMBEDDING}' port {policy.inputs[EMBEDDING]!r} ({reason})"
            )

    @property
    def uses_previous(self) -> bool:
        """Whether the policy sees the previous selection."""
        return PREVIOUS in self.policy.inputs

    def check(self, types: Mapping[str, NeuralType]) -> None:
        """Raise :class:`AgentError` when the digestor's reads do not fit these fields."""
        check_reads(
            self.reads,
            self.digestor.inputs,
            types,
            f"controller digestor {self.digestor.kind}",
            "select a field of the expected type or change the digestor's port",
            AxisBindings(),
        )

    def initial_state(
        self, batch: int, device: torch.device | str | None = None
    ) -> dict[str, torch.Tensor]:
        """The policy's state at the start of an episode (and the start code).

        Args:
            batch: rows.
            device: where the state is made (default: the device of the policy's
                parameters, else the CPU). A policy whose ``initial_state`` takes a
                ``device`` keyword gets it; otherwise its state is moved there.
        """
        if device is None:
            device = _module_device(self.policy)
        device = torch.device(device)
        state: dict[str, torch.Tensor] = {}
        if self.uses_previous:
            prev = torch.zeros(batch, len(self.choices) + 1, device=device)
            prev[:, -1] = 1.0
            state[PREVIOUS] = prev
        if self.state_ports:
            # a policy with state ports declares initial_state(batch[, device=])
            init_fn = cast(Callable[..., Mapping[str, torch.Tensor]], self.policy.initial_state)
            init = init_fn(batch, device=device) if _takes_device(init_fn) else init_fn(batch)
            state.update({k: init[k].to(device) for k in self.state_ports})
        return state

    def embed(self, rep: Representation) -> torch.Tensor:
        """The digestor's fixed-size embedding of R(t)."""
        inputs = {port: sel.read(rep) for port, sel in self.reads.items()}
        return next(iter(self.digestor.call_ports(**inputs).values()))

    def decide(
        self, rep: Representation, state: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One step: the selection over ``choices`` and the policy's next state.

        The next state's ``previous`` is the argmax of the selection; training code that
        forces the teacher's choice overwrites it (:meth:`force_previous`).
        """
        return self.policy_step(self.embed(rep), state)

    def policy_step(
        self, embedding: torch.Tensor, state: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The policy alone, on a precomputed embedding."""
        kwargs = {EMBEDDING: embedding}
        kwargs.update({k: state[k] for k in self.state_ports})
        if self.uses_previous:
            kwargs[PREVIOUS] = state[PREVIOUS]
        out = self.policy.call_ports(**kwargs)
        selection = out[SELECTION]
        new_state = {k: out[k] for k in self.state_ports}
        if self.uses_previous:
            new_state[PREVIOUS] = self.force_previous(selection.argmax(-1))
        return selection, new_state

    def force_previous(self, choice: torch.Tensor) -> torch.Tensor:
        """The one-hot ``previous`` code for the given choice indices."""
        return torch.nn.functional.one_hot(choice.long(), len(self.choices) + 1).float()

    def forward(
        self, rep: Representation, state: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.decide(rep, state)


def _module_device(module: nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (the CPU when it has none)."""
    for t in module.parameters():
        return t.device
    for b in module.buffers():
        return b.device
    return torch.device("cpu")


def _takes_device(fn: object) -> bool:
    try:
        params = inspect.signature(fn).parameters  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return "device" in params or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
    )


def previous_type(choices: int) -> OneHot:
    """The type of the ``previous`` port for ``choices`` operators (plus the start code)."""
    return OneHot(["b", choices + 1])


__all__ = ["EMBEDDING", "PREVIOUS", "SELECTION", "Controller", "previous_type"]
