"""``Environment``: the true state of a batch of problems (§3.1.1)."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import final

import torch

from brickwork.errors import AgentError


class Environment(abc.ABC):
    """Abstract: the true problem state of a batch of environments.

    An environment is rarely the agent's own representation; an :class:`Interface`
    translates both ways. Subclasses say how to *observe* the state as tensors (one per
    representation field) and how to *apply* a representation the agent changed.
    """

    @property
    @abc.abstractmethod
    def batch_size(self) -> int:
        """Number of environments."""

    @abc.abstractmethod
    def observe(self) -> dict[str, torch.Tensor]:
        """The current state as tensors, one per representation field."""

    @abc.abstractmethod
    def apply(self, fields: Mapping[str, torch.Tensor]) -> None:
        """Bring the true state in line with the representation's fields."""


@final
class TensorEnvironment(Environment):
    """An environment whose state simply is a set of tensors (a scratchpad).

    Args:
        state: name -> tensor, batched on axis 0 (copied).
        device: where the state lives (default: where the given tensors are).

    Example:
        >>> import torch
        >>> env = TensorEnvironment({"x": torch.zeros(2, 3)})
        >>> env.apply({"x": torch.ones(2, 3)})
        >>> env.observe()["x"].sum().item()
        6.0
    """

    def __init__(
        self, state: Mapping[str, torch.Tensor], *, device: torch.device | str | None = None
    ):
        if not state:
            raise AgentError("TensorEnvironment: give at least one tensor")
        sizes = {int(v.shape[0]) for v in state.values()}
        if len(sizes) != 1:
            raise AgentError(
                f"TensorEnvironment: tensors disagree on the batch size {sorted(sizes)}"
            )
        self._state = {
            k: (v.clone() if device is None else v.to(device, copy=True)) for k, v in state.items()
        }
        self._batch = sizes.pop()

    @property
    def batch_size(self) -> int:
        return self._batch

    def observe(self) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in self._state.items()}

    def apply(self, fields: Mapping[str, torch.Tensor]) -> None:
        for k, v in fields.items():
            if k in self._state:
                old = self._state[k]
                self._state[k] = v.detach().to(old.device, copy=True)
