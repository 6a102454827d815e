"""``typed()``: give any existing ``nn.Module`` typed ports without subclassing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, final

import torch
from torch import nn

from brickwork.errors import PortError
from brickwork.modules.module import Module, check_forward_ports
from brickwork.types import NeuralType


@final
class Typed(Module):
    """A typed wrapper around an arbitrary ``nn.Module`` (build it with :func:`typed`)."""

    manual_config = True

    def __init__(
        self,
        inner: nn.Module,
        inputs: Mapping[str, NeuralType],
        outputs: Mapping[str, NeuralType],
        kind: str = "",
        config: dict[str, Any] | None = None,
    ):
        super().__init__()
        if not outputs:
            raise PortError(f"typed({type(inner).__name__}): declare at least one output port")
        check_forward_ports(f"typed({type(inner).__name__})", inner.forward, inputs)
        self.inner = inner
        self.inputs = dict(inputs)
        self.outputs = dict(outputs)
        self._kind = kind or f"typed:{type(inner).__name__}"
        self._bw_config = dict(config or {})

    @property
    def kind(self) -> str:
        return self._kind

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner(*args, **kwargs)


def typed(
    module: nn.Module,
    inputs: Mapping[str, NeuralType],
    outputs: Mapping[str, NeuralType],
    *,
    kind: str = "",
    config: dict[str, Any] | None = None,
) -> Typed:
    """Wrap ``module`` with declared ports; its ``forward`` must take the input ports.

    To save and load the result, register a factory under ``kind`` that rebuilds the
    same wrapper from ``config``.

    Example:
        >>> import torch
        >>> from brickwork.types import Features, Probs
        >>> class Head(torch.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.lin = torch.nn.Linear(4, 3)
        ...     def forward(self, x):
        ...         return torch.softmax(self.lin(x), -1)
        >>> head = typed(Head(), inputs={"x": Features("b c")}, outputs={"p": Probs("b k")})
        >>> head(torch.zeros(2, 4)).shape
        torch.Size([2, 3])
        >>> str(head.signature)
        "(x: Features['b c']) -> (p: Probs['b k'])"
    """
    if not isinstance(module, nn.Module):
        raise PortError(f"typed() wraps a torch.nn.Module, got {type(module).__name__}")
    return Typed(module, inputs, outputs, kind=kind, config=config)


__all__ = ["Typed", "typed"]
_ = torch  # torch is imported for doctest namespace parity
