"""``Agent``: controller + operators in a perception-action loop; itself an operator
(hierarchy and recursion through a selective sub-interface, §3.1.1)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import final

import torch

from brickwork.agent.controller import Controller
from brickwork.agent.episode import Episode
from brickwork.agent.interface import Interface
from brickwork.agent.operator import EOP, Operator
from brickwork.agent.representation import Representation
from brickwork.agent.selection import fit_reason
from brickwork.errors import AgentError
from brickwork.types import NeuralType


@final
class SubInterface:
    """The interface between a calling agent's R(t) and a sub-agent's: its selective
    input (copy fields down, then place the sub-problem with ``enter`` operators) and
    selective update (copy fields back up).

    Args:
        types: the sub-agent's representation fields.
        reads: sub field -> parent field it starts from.
        writes: sub field -> parent field it is written back to when the call returns.
        enter: operators (on the sub representation) that set up the sub-problem, e.g.
            move the pointers onto the tail of a list.
        typed: project the sub representation onto its types after every operator.

    Example:
        >>> from brickwork.types import Pointer
        >>> SubInterface({"p": Pointer("b n")}, reads={"p": "q"}, writes={}).reads
        {'p': 'q'}
    """

    def __init__(
        self,
        types: Mapping[str, NeuralType],
        *,
        reads: Mapping[str, str],
        writes: Mapping[str, str],
        enter: Sequence[Operator] = (),
        typed: bool = True,
    ):
        self.types = dict(types)
        self.reads = dict(reads)
        self.writes = dict(writes)
        self.enter = list(enter)
        self.typed = bool(typed)
        missing = [f for f in self.types if f not in self.reads]
        if missing:
            raise AgentError(
                f"sub-interface: sub fields {missing} are not read from the parent; "
                "every sub field needs a starting value"
            )
        unknown = [f for f in list(self.reads) + list(self.writes) if f not in self.types]
        if unknown:
            raise AgentError(f"sub-interface: {unknown} are not sub fields {sorted(self.types)}")
        for op in self.enter:
            op.check(self.types)

    def check(self, parent: Mapping[str, NeuralType], where: str) -> None:
        for sub, par in self.reads.items():
            if par not in parent:
                raise AgentError(
                    f"{where}: sub field '{sub}' reads parent field '{par}', which "
                    f"does not exist; parent fields: {sorted(parent)}"
                )
            reason = fit_reason(parent[par], self.types[sub])
            if reason:
                raise AgentError(
                    f"{where}: parent field '{par}' {parent[par]!r} cannot start sub "
                    f"field '{sub}' {self.types[sub]!r} ({reason})"
                )
        for sub, par in self.writes.items():
            if par not in parent:
                raise AgentError(
                    f"{where}: sub field '{sub}' writes parent field '{par}', which "
                    f"does not exist; parent fields: {sorted(parent)}"
                )
            reason = fit_reason(self.types[sub], parent[par], relaxed=True)
            if reason:
                raise AgentError(
                    f"{where}: sub field '{sub}' {self.types[sub]!r} cannot be "
                    f"written to parent field '{par}' {parent[par]!r} ({reason})"
                )

    def open(self, parent: Representation) -> Representation:
        """The sub representation for the parent's rows."""
        rep = Representation(self.types, {s: parent[p] for s, p in self.reads.items()})
        if self.typed:
            rep = rep.project()
        for op in self.enter:
            rep = op(rep)
            if self.typed:
                rep = rep.project()
        return rep

    def close(self, parent: Representation, sub: Representation) -> Representation:
        """The parent representation updated with the sub-agent's result."""
        return parent.replace(**{p: sub[s] for s, p in self.writes.items()})


class _SubCall(Operator):
    """Abstract: an operator that runs a (sub-)agent through a sub-interface."""

    deferred = True
    agent: Agent | None = None
    sub: SubInterface

    def _agent(self) -> Agent:
        if self.agent is None:
            raise AgentError(
                f"operator '{self.name}': not bound to an agent; a Recurse "
                "operator is bound by the Agent that lists it"
            )
        return self.agent

    def check(self, types: Mapping[str, NeuralType]) -> None:
        self.sub.check(types, f"operator '{self.name}'")

    def apply(
        self, rep: Representation, budget: torch.Tensor, depth: int = 0
    ) -> tuple[Representation, torch.Tensor]:
        agent = self._agent()
        child = self.sub.open(rep)
        child, steps, _ = agent._episode(child, budget, depth, typed=self.sub.typed)
        return self.sub.close(rep, child), steps

    def __call__(self, rep: Representation) -> Representation:
        agent = self._agent()
        budget = torch.full(
            (rep.batch_size,), agent.step_limit, dtype=torch.long, device=rep.device
        )
        return self.apply(rep, budget)[0]


@final
class Call(_SubCall):
    """Call another agent as an operator (hierarchy), through a sub-interface.

    Example:
        >>> from brickwork.types import Pointer
        >>> sub = SubInterface({"p": Pointer("b n")}, reads={"p": "q"}, writes={"p": "q"})
        >>> Call("helper", None, sub).deferred
        True
    """

    def __init__(self, name: str, agent: Agent | None, sub: SubInterface):
        self.name = name
        self.agent = agent
        self.sub = sub
        if agent is not None:
            _check_sub_types(agent, sub, name)


@final
class Recurse(_SubCall):
    """The agent that lists this operator calls *itself* on a sub-problem.

    Example:
        >>> from brickwork.types import Pointer
        >>> sub = SubInterface({"p": Pointer("b n")}, reads={"p": "p"}, writes={"p": "p"})
        >>> Recurse("again", sub).name
        'again'
    """

    def __init__(self, name: str, sub: SubInterface):
        self.name = name
        self.sub = sub
        self.agent = None


def _check_sub_types(agent: Agent, sub: SubInterface, name: str) -> None:
    if set(sub.types) != set(agent.types):
        raise AgentError(
            f"operator '{name}': the sub-interface provides fields "
            f"{sorted(sub.types)}, agent '{agent.name}' works on {sorted(agent.types)}"
        )
    for k, t in agent.types.items():
        reason = fit_reason(sub.types[k], t)
        if reason:
            raise AgentError(
                f"operator '{name}': sub field '{k}' {sub.types[k]!r} does not fit "
                f"agent '{agent.name}' field {t!r} ({reason})"
            )


@final
class Agent(Operator):
    """A perception-action loop: at each step the controller selects an operator, the
    operator changes R(t), until the controller selects EOP or the step limit is hit.

    Episodes run batched: every row is an environment; rows that selected the same
    operator are processed together, and rows that selected a sub-agent (``Call``,
    ``Recurse``) wait until the other rows settle, then call it together.

    Episodes run on the device of the representation's tensors: the step counters,
    budgets and the controller's state are made there (move the modules there too, e.g.
    ``controller.to(device)``; :meth:`Representation.to` moves a representation).

    An agent is itself an :class:`Operator` (same fields in and out), so a higher agent
    can list it, and it can list a :class:`Recurse` to call itself on a sub-problem.

    Args:
        name: the agent's name (in errors, and what a parent selects).
        types: representation field -> type; every operator and the controller are
            type-checked against these fields when the agent is built.
        operators: one per controller choice, in the same order (include an :class:`EOP`).
        controller: the :class:`Controller`.
        step_limit: default per-episode step limit.
        max_depth: maximal nesting of sub-agent calls.

    Example:
        >>> import torch
        >>> from brickwork.agent import Controller, ModuleOperator
        >>> from brickwork.modules import typed
        >>> from brickwork.types import Bool, Count, Features, Probs
        >>> class Inc(torch.nn.Module):
        ...     def forward(self, x):
        ...         return x + 1
        >>> class Done(torch.nn.Module):
        ...     def forward(self, x):
        ...         return torch.cat([(x < 3).float(), (x >= 3).float()], -1)
        >>> class Keep(torch.nn.Module):
        ...     def forward(self, embedding):
        ...         return embedding
        >>> types = {"x": Count("b 1")}
        >>> inc = ModuleOperator("inc", typed(Inc(), {"x": Count("b 1")}, {"y": Count("b 1")}),
        ...                      inputs={"x": "x"}, outputs={"y": "x"})
        >>> ctl = Controller(typed(Done(), {"x": Count("b 1")}, {"e": Features("b 2")}),
        ...                  typed(Keep(), {"embedding": Features("b 2")},
        ...                        {"selection": Probs("b 2")}),
        ...                  reads={"x": "x"}, choices=["inc", "EOP"])
        >>> agent = Agent("count", types, [inc, EOP()], ctl)
        >>> ep = agent.run(Representation(types, {"x": torch.tensor([[0.0], [2.0]])}))
        >>> ep.representation["x"].flatten().tolist(), ep.steps.tolist()
        ([3.0, 3.0], [4, 2])
    """

    deferred = True

    def __init__(
        self,
        name: str,
        types: Mapping[str, NeuralType],
        operators: Sequence[Operator],
        controller: Controller,
        *,
        step_limit: int = 10_000,
        max_depth: int = 256,
    ):
        self.name = name
        self.types = dict(types)
        self.operators = list(operators)
        self.controller = controller
        self.step_limit = int(step_limit)
        self.max_depth = int(max_depth)
        if self.step_limit < 1:
            raise AgentError(f"agent '{name}': step_limit {step_limit} must be positive")
        names = [op.name for op in self.operators]
        if names != list(controller.choices):
            raise AgentError(
                f"agent '{name}': operators {names} do not match the controller's "
                f"choices {controller.choices}; list one operator per choice, in order"
            )
        if not any(isinstance(op, EOP) for op in self.operators):
            raise AgentError(
                f"agent '{name}': no EOP operator among {names}; an episode could "
                "never end. Add brickwork.agent.EOP()"
            )
        for op in self.operators:
            if isinstance(op, Recurse):
                if op.agent is not None and op.agent is not self:
                    raise AgentError(
                        f"agent '{name}': Recurse operator '{op.name}' is already "
                        f"bound to agent '{op.agent.name}'; create one per agent"
                    )
                _check_sub_types(self, op.sub, op.name)
                op.agent = self
            op.check(self.types)
        controller.check(self.types)

    def __repr__(self) -> str:
        return f"Agent({self.name!r}, operators={[op.name for op in self.operators]})"

    # ----- as an operator ---------------------------------------------------------------
    def check(self, types: Mapping[str, NeuralType]) -> None:
        for k, t in self.types.items():
            if k not in types:
                raise AgentError(
                    f"agent '{self.name}' used as an operator needs field '{k}'; "
                    f"the caller has {sorted(types)}. Use Call with a SubInterface"
                )
            reason = fit_reason(types[k], t)
            if reason:
                raise AgentError(
                    f"agent '{self.name}' used as an operator: field '{k}' is "
                    f"{types[k]!r} in the caller, expected {t!r} ({reason})"
                )

    def apply(
        self, rep: Representation, budget: torch.Tensor, depth: int = 0
    ) -> tuple[Representation, torch.Tensor]:
        own = Representation(self.types, {k: rep[k] for k in self.types})
        out, steps, _ = self._episode(own, budget, depth, typed=True)
        return rep.replace(**out.values), steps

    def __call__(self, rep: Representation) -> Representation:
        episode = self.run(rep)
        episode.raise_if_unterminated()
        return episode.representation

    # ----- episodes -------------------------------------------------------------------
    def run(
        self,
        source: Interface | Representation,
        *,
        step_limit: int | torch.Tensor | None = None,
        typed: bool = True,
        on_limit: str = "flag",
    ) -> Episode:
        """Run a batched episode.

        Args:
            source: an :class:`Interface` (committed after every step; its ``typed``
                decides the projection) or a :class:`Representation`.
            step_limit: per-episode limit, an int or one per row (default: the agent's).
            typed: with a bare representation, project fields onto their types after
                every operator.
            on_limit: ``'flag'`` (see :attr:`Episode.terminated`) or ``'raise'``.

        Raises:
            AgentError: ``on_limit='raise'`` and an episode did not reach EOP.
        """
        if on_limit not in ("flag", "raise"):
            raise AgentError(f"agent '{self.name}': on_limit={on_limit!r}; use 'flag' or 'raise'")
        interface = source if isinstance(source, Interface) else None
        rep = interface.representation if interface is not None else source
        if not isinstance(rep, Representation):
            raise AgentError(
                f"agent '{self.name}': run() takes an Interface or a "
                f"Representation, got {type(source).__name__}"
            )
        missing = [k for k in self.types if k not in rep]
        if missing:
            raise AgentError(f"agent '{self.name}': the representation lacks fields {missing}")
        own = Representation(self.types, {k: rep[k] for k in self.types})
        if interface is not None:
            typed = interface.typed
        limit = step_limit if step_limit is not None else self.step_limit
        device = own.device
        budget = (
            limit.to(device=device, dtype=torch.long, copy=True)
            if isinstance(limit, torch.Tensor)
            else torch.full((own.batch_size,), int(limit), dtype=torch.long, device=device)
        )
        if budget.shape != (own.batch_size,):
            raise AgentError(
                f"agent '{self.name}': step_limit has shape {tuple(budget.shape)}, "
                f"expected one per row ({own.batch_size})"
            )
        final, steps, done = self._episode(own, budget, 0, typed=typed, interface=interface)
        if interface is not None:
            final = interface.commit(final)
        episode = Episode(self.name, final, steps, done, budget)
        if on_limit == "raise":
            episode.raise_if_unterminated()
        return episode

    def _episode(
        self,
        rep: Representation,
        budget: torch.Tensor,
        depth: int,
        *,
        typed: bool,
        interface: Interface | None = None,
    ) -> tuple[Representation, torch.Tensor, torch.Tensor]:
        if depth > self.max_depth:
            raise AgentError(
                f"agent '{self.name}': sub-agent calls nested {depth} deep, beyond "
                f"max_depth {self.max_depth}; raise max_depth or check the recursion"
            )
        n = rep.batch_size
        if typed:
            rep = rep.project()
        device = rep.device
        budget = budget.to(device)
        state = self.controller.initial_state(n, device=device)
        steps = torch.zeros(n, dtype=torch.long, device=device)
        done = torch.zeros(n, dtype=torch.bool, device=device)
        parked = torch.full((n,), -1, dtype=torch.long, device=device)
        while True:
            running = ~done & (parked < 0) & (steps < budget)
            if bool(running.any()):
                rows = running.nonzero().flatten()
                whole = rows.numel() == n
                sub = rep if whole else rep.take(rows)
                sub_state = (
                    state if whole else {k: v.index_select(0, rows) for k, v in state.items()}
                )
                selection, new_state = self.controller.decide(sub, sub_state)
                state = (
                    new_state
                    if whole
                    else {k: state[k].index_copy(0, rows, new_state[k]) for k in state}
                )
                choice = selection.argmax(-1)
                steps[rows] += 1
                changed, touched = sub, set()
                for k in choice.unique().tolist():
                    op = self.operators[k]
                    hit = choice == k
                    if isinstance(op, EOP):
                        done[rows[hit]] = True
                    elif op.deferred:
                        parked[rows[hit]] = k
                    elif bool(hit.all()):
                        after = op(changed)
                        touched.update(after.changed_fields(changed))
                        changed = after
                    else:
                        local = hit.nonzero().flatten()
                        before = changed.take(local)
                        after = op(before)
                        fields = after.changed_fields(before)
                        touched.update(fields)
                        changed = changed.put(local, after, fields)
                if touched:
                    if typed:
                        changed = changed.project(touched)
                    rep = changed if whole else rep.put(rows, changed, touched)
                    if interface is not None:
                        interface.commit(rep)
                continue
            waiting = (parked >= 0) & ~done & (steps < budget)
            if not bool(waiting.any()):
                break
            for k in parked[waiting].unique().tolist():
                rows = (waiting & (parked == k)).nonzero().flatten()
                part, used = self.operators[k].apply(
                    rep.take(rows), budget[rows] - steps[rows], depth + 1
                )
                if typed:
                    part = part.project()
                rep = rep.put(rows, part)
                steps[rows] += used
            parked[:] = -1
            if interface is not None:
                interface.commit(rep)
        return rep, steps, done


__all__ = ["Agent", "Call", "Recurse", "SubInterface"]
