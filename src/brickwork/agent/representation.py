"""``Representation``: the agent's typed, batched view R(t) of its environment (§3.1)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import final

import torch

from brickwork.errors import AgentError
from brickwork.modules import name_mismatch
from brickwork.types import NeuralType


@final
class Representation:
    """A batched, typed state: named fields, each a :class:`NeuralType` and a tensor.

    Every tensor's first axis is the batch (one row per environment). Representations
    are values: :meth:`replace`, :meth:`project`, :meth:`take` and :meth:`put` return new
    ones and never modify tensors in place.

    Args:
        types: field name -> neural data type.
        values: field name -> tensor (same names as ``types``).

    Example:
        >>> import torch
        >>> from brickwork.types import OneHot, Pointer
        >>> r = Representation({"p": Pointer("b n")}, {"p": torch.tensor([[0.2, 0.7, 0.1]])})
        >>> r.project()["p"]
        tensor([[0., 1., 0.]])
        >>> r.batch_size
        1
    """

    def __init__(self, types: Mapping[str, NeuralType], values: Mapping[str, torch.Tensor]):
        if problem := name_mismatch(types, values, unknown="undeclared"):
            raise AgentError(
                f"representation: fields {sorted(types)} declared, values given for "
                f"{sorted(values)}; {problem}"
            )
        batch = None
        for name, t in types.items():
            x = values[name]
            if not isinstance(x, torch.Tensor):
                raise AgentError(
                    f"representation field '{name}': expected a tensor, got {type(x).__name__}"
                )
            if x.dim() != len(t.axes):
                raise AgentError(
                    f"representation field '{name}': {x.dim()} dims "
                    f"{tuple(x.shape)}, expected {len(t.axes)} for {t!r}"
                )
            if batch is None:
                batch = int(x.shape[0])
            elif int(x.shape[0]) != batch:
                raise AgentError(
                    f"representation field '{name}': batch size {x.shape[0]}, "
                    f"other fields have {batch}; every field is batched on axis 0"
                )
        self._types = dict(types)
        self._values = {k: values[k] for k in types}
        self._batch = int(batch or 0)

    # ----- access ---------------------------------------------------------------------
    @property
    def types(self) -> dict[str, NeuralType]:
        """Field name -> type (a copy)."""
        return dict(self._types)

    @property
    def values(self) -> dict[str, torch.Tensor]:
        """Field name -> tensor (a copy of the mapping)."""
        return dict(self._values)

    @property
    def batch_size(self) -> int:
        """Number of environments (rows)."""
        return self._batch

    @property
    def device(self) -> torch.device:
        """The device of the fields' tensors (the CPU for a representation without fields).

        Raises:
            AgentError: fields live on different devices.
        """
        devices = {v.device for v in self._values.values()}
        if len(devices) > 1:
            where = ", ".join(f"'{k}' on {v.device}" for k, v in self._values.items())
            raise AgentError(
                f"representation: fields live on different devices ({where}); "
                "move them to one device with Representation.to(device)"
            )
        return devices.pop() if devices else torch.device("cpu")

    def to(self, device: torch.device | str) -> Representation:
        """A copy with every field's tensor on ``device``.

        Example:
            >>> import torch
            >>> from brickwork.types import Pointer
            >>> r = Representation({"p": Pointer("b n")}, {"p": torch.tensor([[0.0, 1.0]])})
            >>> r.to("cpu").device
            device(type='cpu')
        """
        return Representation(self._types, {k: v.to(device) for k, v in self._values.items()})

    def __getitem__(self, name: str) -> torch.Tensor:
        try:
            return self._values[name]
        except KeyError:
            raise AgentError(
                f"representation has no field '{name}'; fields: {sorted(self._values)}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}: {t!r}" for k, t in self._types.items())
        return f"Representation(batch={self._batch}, {fields})"

    # ----- new representations --------------------------------------------------------
    def replace(self, **values: torch.Tensor) -> Representation:
        """A copy with some fields' tensors replaced."""
        unknown = [k for k in values if k not in self._types]
        if unknown:
            raise AgentError(
                f"representation: cannot write unknown fields {unknown}; fields: "
                f"{sorted(self._types)}"
            )
        new = dict(self._values)
        new.update(values)
        return Representation(self._types, new)

    def project(self, fields: Iterable[str] | None = None) -> Representation:
        """Fields through their types' hard constraints (the typed interface); all
        fields, or only ``fields``."""
        names = set(self._types) if fields is None else set(fields)
        return Representation(
            self._types,
            {k: self._types[k].project(v) if k in names else v for k, v in self._values.items()},
        )

    def changed_fields(self, other: Representation) -> list[str]:
        """Fields whose tensor is not the very same object in ``other``."""
        return [k for k, v in self._values.items() if other._values.get(k) is not v]

    def check(self) -> dict[str, str]:
        """Field -> reason for every field that does not conform to its type."""
        out = {}
        for k, t in self._types.items():
            reason = t.check(self._values[k])
            if reason:
                out[k] = reason
        return out

    def take(self, rows: torch.Tensor) -> Representation:
        """The sub-batch of the given rows (a 1-D index tensor)."""
        return Representation(
            self._types, {k: v.index_select(0, rows) for k, v in self._values.items()}
        )

    def put(
        self, rows: torch.Tensor, part: Representation, fields: Iterable[str] | None = None
    ) -> Representation:
        """A copy whose ``rows`` are replaced by ``part``'s rows (same fields; only
        ``fields`` when given)."""
        if set(part._types) != set(self._types):
            raise AgentError(
                f"representation.put: fields {sorted(part._types)} do not match "
                f"{sorted(self._types)}"
            )
        names = set(self._types) if fields is None else set(fields)
        new = {}
        for k, v in self._values.items():
            p = part._values[k]
            new[k] = v.index_copy(0, rows, p.to(v.dtype)) if (p is not v and k in names) else v
        return Representation(self._types, new)

    def where(self, rows: torch.Tensor, other: Representation) -> Representation:
        """Per row: ``other`` where the boolean ``rows`` is true, else this one."""
        new = {}
        for k, v in self._values.items():
            o = other._values[k]
            mask = rows.view(-1, *([1] * (v.dim() - 1)))
            new[k] = torch.where(mask, o, v)
        return Representation(self._types, new)
