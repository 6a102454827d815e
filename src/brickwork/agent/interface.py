"""``Interface``: keeps the representation R(t) and the environment in sync (§3.1.1)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import final

from brickwork.agent.environment import Environment
from brickwork.agent.representation import Representation
from brickwork.errors import AgentError
from brickwork.types import NeuralType


@final
class Interface:
    """Both-ways sync between an :class:`Environment` and a typed :class:`Representation`.

    ``refresh()`` reads the environment into R(t); ``commit(rep)`` makes the agent's
    change the new R(t) and forwards it to the environment. A *typed* interface passes
    every field through its type's hard constraint (``project``) on the way, so small
    errors of learned operators cannot accumulate from step to step.

    Args:
        environment: the true state.
        types: representation field -> type; the environment observes these fields.
        typed: apply each field type's ``project`` on every commit.

    Example:
        >>> import torch
        >>> from brickwork.agent import TensorEnvironment
        >>> from brickwork.types import Pointer
        >>> env = TensorEnvironment({"p": torch.tensor([[1.0, 0.0]])})
        >>> ui = Interface(env, {"p": Pointer("b n")})
        >>> rep = ui.commit(ui.representation.replace(p=torch.tensor([[0.3, 0.6]])))
        >>> env.observe()["p"]
        tensor([[0., 1.]])
    """

    def __init__(
        self, environment: Environment, types: Mapping[str, NeuralType], *, typed: bool = True
    ):
        if not isinstance(environment, Environment):
            raise AgentError(
                f"Interface: expected an Environment, got {type(environment).__name__}"
            )
        self.environment = environment
        self.types = dict(types)
        self.typed = bool(typed)
        self._rep = self.refresh()

    @property
    def representation(self) -> Representation:
        """The current R(t)."""
        return self._rep

    def refresh(self) -> Representation:
        """Read the environment into a new R(t) (after the environment changed)."""
        observed = self.environment.observe()
        try:
            rep = Representation(self.types, {k: observed[k] for k in self.types})
        except KeyError as exc:
            raise AgentError(
                f"Interface: the environment does not observe field {exc}; it "
                f"observes {sorted(observed)}"
            ) from None
        self._rep = rep.project() if self.typed else rep
        return self._rep

    def commit(self, rep: Representation) -> Representation:
        """Make ``rep`` the new R(t) (projected when typed) and apply it to the environment."""
        self._rep = rep.project() if self.typed else rep
        self.environment.apply(self._rep.values)
        return self._rep
