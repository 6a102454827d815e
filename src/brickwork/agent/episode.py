"""``Episode``: what a batched run of an agent returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import final

import torch

from brickwork.agent.representation import Representation
from brickwork.errors import AgentError


@final
@dataclass(frozen=True)
class Episode:
    """The outcome of running an agent on a batch of environments.

    Attributes:
        agent: the agent's name.
        representation: the final R(t) of every row.
        steps: steps taken per row (nested sub-episodes included).
        terminated: per row, whether the controller selected EOP within the limit.
        step_limit: the per-row step limit the episode ran under.

    Example:
        >>> import torch
        >>> from brickwork.agent import Representation
        >>> from brickwork.types import SoftMask
        >>> rep = Representation({"m": SoftMask("b n")}, {"m": torch.zeros(2, 1)})
        >>> ep = Episode("demo", rep, torch.tensor([3, 5]), torch.tensor([True, False]),
        ...              torch.tensor([5, 5]))
        >>> ep.hit_step_limit.tolist()
        [False, True]
    """

    agent: str
    representation: Representation
    steps: torch.Tensor
    terminated: torch.Tensor
    step_limit: torch.Tensor

    @property
    def hit_step_limit(self) -> torch.Tensor:
        """Per row: True when the episode stopped at the step limit without EOP."""
        return ~self.terminated

    @property
    def all_terminated(self) -> bool:
        """True when every row reached EOP."""
        return bool(self.terminated.all())

    def raise_if_unterminated(self) -> None:
        """Raise :class:`AgentError` naming the rows that did not reach EOP."""
        if self.all_terminated:
            return
        rows = self.hit_step_limit.nonzero().flatten().tolist()
        shown = ", ".join(str(r) for r in rows[:10]) + (" …" if len(rows) > 10 else "")
        limits = sorted({int(self.step_limit[r]) for r in rows})
        raise AgentError(
            f"agent '{self.agent}': {len(rows)} of {len(self.terminated)} episodes did not "
            f"select EOP within the step limit {limits[0] if len(limits) == 1 else limits} "
            f"(rows {shown}). Raise step_limit, or check the controller: it never chose EOP"
        )
