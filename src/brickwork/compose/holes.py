"""Holes: new trainable modules whose architecture follows their port types.

* image → vector (``Bool``, ``Probs``, ``Count``, ``Features`` …): a small CNN;
* vector → vector: an MLP;
* list of images or vectors → vector: a per-element encoder followed by an LSTM
  (HOUDINI's list → vector RNN; also the generic CNN+LSTM baseline);
* fold step ``(state, item) → state`` over vectors: an MLP on the concatenation.

The output's value-domain type picks the head: ``Bool``/``SoftMask`` a sigmoid,
``Probs`` a softmax, ``Count`` a softplus, ``Bounded`` a scaled sigmoid, anything else
the identity — so a hole's outputs are always inside its declared domain.

Example:
    >>> import torch
    >>> from brickwork.types import Bool, Features
    >>> h = make_hole(Features("b 1 8 8"), Bool("b 1"))
    >>> h.arch, h(x=torch.zeros(5, 1, 8, 8)).shape
    ('cnn', torch.Size([5, 1]))
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch
from torch import nn

from brickwork.compose.types import (
    CType,
    ListOf,
    ctype_from_json,
    is_image,
    is_vector,
    type_to_json,
)
from brickwork.errors import PortError
from brickwork.modules import Module, register_kind
from brickwork.types import Bool, NeuralType

ARCHS = ("cnn", "mlp", "rnn", "step")


def _size(t: NeuralType) -> int:
    return int(math.prod(int(a) for a in t.axes[1:]))


class _Head(nn.Module):
    """Maps raw outputs into the declared type's domain."""

    def __init__(self, t: NeuralType):
        super().__init__()
        self.kind = t.kind
        self.shape = [int(a) for a in t.axes[1:]]
        p = t.params()
        self.low, self.high = float(p.get("low", 0.0)), float(p.get("high", 1.0))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = z.reshape(z.shape[0], *self.shape)
        if self.kind in ("Bool", "SoftMask"):
            return torch.sigmoid(z)
        if self.kind in ("Probs", "OneHot", "Pointer"):
            return torch.softmax(z, dim=-1)
        if self.kind in ("Count", "Heatmap"):
            return nn.functional.softplus(z)
        if self.kind == "Bounded":
            return self.low + (self.high - self.low) * torch.sigmoid(z)
        return z


def _encoder(t: NeuralType, hidden: int) -> tuple[nn.Module, int]:
    """A per-item encoder: a CNN for images, a linear layer for vectors."""
    if is_image(t):
        c, h, w = (int(a) for a in t.axes[1:])
        enc = nn.Sequential(
            nn.Conv2d(c, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        return enc, 32 * (h // 4) * (w // 4)
    return nn.Sequential(nn.Flatten(), nn.Linear(_size(t), hidden), nn.ReLU()), hidden


def hole_arch(inputs: dict[str, CType], output: CType) -> str | None:
    """The architecture a hole with these ports gets, or None when there is none.

    Example:
        >>> from brickwork.types import Count, Features
        >>> hole_arch({"x": ListOf(Features("b 1 8 8"))}, Count("b 1"))
        'rnn'
    """
    if isinstance(output, ListOf) or not (is_vector(output)):
        return None
    if len(inputs) == 2:
        s, i = inputs.get("state"), inputs.get("item")
        if s is not None and i is not None and s == output and is_vector(i):
            return "step"
        return None
    if len(inputs) != 1:
        return None
    t = next(iter(inputs.values()))
    if isinstance(t, ListOf):
        return "rnn" if (is_image(t.item) or is_vector(t.item)) else None
    if is_image(t):
        return "cnn"
    if is_vector(t):
        return "mlp"
    return None


@register_kind(
    "compose.hole",
    example_config={
        "arch": "mlp",
        "inputs": {"x": {"kind": "Features", "axes": "b 4"}},
        "output": {"kind": "Bool", "axes": "b 1"},
        "hidden": 8,
    },
    sizes={"b": 3},
    description="a new module of brickwork.compose (CNN, MLP, RNN "
    "or fold step, chosen from its port types)",
)
class Hole(Module):
    """A new trainable module; build it with :func:`make_hole`.

    Args:
        arch: ``cnn``, ``mlp``, ``rnn`` or ``step``.
        inputs: port name → JSON type (``rnn``: one list type; ``step``: ``state`` and
            ``item``).
        output: the output's JSON type (a vector type: ``Bool[b 1]``, ``Probs[b 10]`` …).
        hidden: hidden width.
        members: 1, or K for an ensemble: K networks of these ports whose raw outputs
            (logits for ``Bool`` and ``Probs``) are averaged before the head; build one
            from independently trained holes with :func:`ensemble_of`.
    """

    def __init__(
        self,
        arch: str,
        inputs: dict[str, Any],
        output: dict[str, Any],
        hidden: int = 64,
        members: int = 1,
    ):
        super().__init__()
        if arch not in ARCHS:
            raise PortError(f"compose.hole: unknown arch {arch!r}; choose one of {ARCHS}")
        if isinstance(members, bool) or not isinstance(members, int) or members < 1:
            raise PortError(
                f"compose.hole: members got {members!r}, expected an integer >= 1 (1: one "
                "network; K: the mean of K networks' raw outputs)"
            )
        ins = {k: ctype_from_json(v) for k, v in inputs.items()}
        out = ctype_from_json(output)
        found = hole_arch(ins, out)
        if found != arch:
            raise PortError(
                f"compose.hole: ports {ins} -> {out!r} take arch {found!r}, not {arch!r}"
            )
        self.arch, self.hidden, self.members_count = arch, int(hidden), members
        self.in_types, self.out_type = ins, out
        assert not isinstance(out, ListOf)  # hole_arch gives no arch for a list output
        if members > 1:  # an ensemble: K networks of these ports, their raw outputs averaged
            nets = [Hole(arch, inputs, output, hidden) for _ in range(members)]
            self.members = nn.ModuleList(nets)
            self.inputs, self.outputs = dict(nets[0].inputs), {"y": out}
            self.head = _Head(out)
            return
        if arch == "rnn":
            (lt,) = ins.values()
            assert isinstance(lt, ListOf)  # hole_arch: an rnn reads a list
            item = lt.item
            self.inputs = {"items": item.with_axes(lt.padded_axes), "mask": Bool("b n")}
            self.enc, width = _encoder(item, hidden)
            self.rnn = nn.LSTM(width, hidden, batch_first=True)
            self.out = nn.Linear(hidden, _size(out))
        elif arch == "step":
            state, item = ins["state"], ins["item"]
            assert not isinstance(state, ListOf) and not isinstance(item, ListOf)  # hole_arch
            self.inputs = {"state": state, "item": item}
            width = _size(state) + _size(item)
            self.net = nn.Sequential(
                nn.Linear(width, hidden),
                nn.ReLU(),
                nn.Linear(hidden, hidden),
                nn.ReLU(),
            )
            self.out = nn.Linear(hidden, _size(out))
        else:
            (t,) = ins.values()
            assert not isinstance(t, ListOf)  # hole_arch: a cnn or mlp reads one tensor
            self.inputs = {"x": t}
            self.enc, width = _encoder(t, hidden)
            self.net = nn.Sequential(nn.Linear(width, hidden), nn.ReLU())
            self.out = nn.Linear(hidden, _size(out))
        self.outputs = {"y": out}
        self.head = _Head(out)

    def forward(self, **ports: torch.Tensor) -> torch.Tensor:
        return self.head(self.raw(**ports))

    def raw(self, **ports: torch.Tensor) -> torch.Tensor:
        """The output before the head (logits for Bool and Probs); an ensemble's is the
        mean of its members'."""
        if self.members_count > 1:
            # an ensemble's members are single holes (built in __init__)
            return torch.stack([cast(Hole, m).raw(**ports) for m in self.members]).mean(0)
        if self.arch == "rnn":
            items, mask = ports["items"], ports["mask"].bool()
            b, n = mask.shape
            flat = items.reshape(b * n, *items.shape[2:])
            z = self.enc(flat).reshape(b, n, -1)
            seq, _ = self.rnn(z)
            last = (mask.sum(1) - 1).clamp(min=0)
            h = seq[torch.arange(b, device=seq.device), last]
            return self.out(h)
        if self.arch == "step":
            s, i = ports["state"], ports["item"]
            z = torch.cat([s.reshape(s.shape[0], -1), i.reshape(i.shape[0], -1)], 1)
            return self.out(self.net(z))
        return self.out(self.net(self.enc(ports["x"])))


def make_hole(inputs: CType | dict[str, CType], output: CType, *, hidden: int = 64) -> Hole:
    """A new module for a hole of type ``inputs → output`` (architecture from the types).

    ``inputs`` is one type (one port ``x``) or ``{"state": S, "item": I}`` for a fold step.

    Raises:
        PortError: no architecture fits these types (the message names them).
    """
    ins = inputs if isinstance(inputs, dict) else {"x": inputs}
    arch = hole_arch(ins, output)
    if arch is None:
        shown = ", ".join(f"{k}: {v!r}" for k, v in ins.items())
        raise PortError(
            f"no hole architecture for ({shown}) -> {output!r}; holes produce one "
            "vector type (e.g. Bool[b 1], Probs[b 10], Count[b 1]) from an image, a "
            "vector, a list of them, or a (state, item) pair"
        )
    return Hole(
        arch,
        {k: type_to_json(v) for k, v in ins.items()},
        type_to_json(output),
        hidden=hidden,
    )


def ensemble_of(holes: list[Hole]) -> Hole:
    """One module, the ensemble of ``holes`` (same ports and architecture): their raw
    outputs are averaged before the head, so an ensemble of ``Bool`` recognisers
    averages their logits. The members keep their weights; saved and loaded like any
    hole (safetensors + JSON).

    Raises:
        PortError: no holes, or holes of different ports, architectures or widths.

    Example:
        >>> import torch
        >>> from brickwork.types import Bool, Features
        >>> a, b = make_hole(Features("b 4"), Bool("b 1")), make_hole(Features("b 4"), Bool("b 1"))
        >>> e = ensemble_of([a, b])
        >>> x = torch.randn(3, 4)
        >>> want = torch.sigmoid((a.raw(x=x) + b.raw(x=x)) / 2)
        >>> e.config["members"], torch.allclose(e(x=x), want)
        (2, True)
    """
    if not holes:
        raise PortError("ensemble_of: got no holes, expected at least one")
    first = holes[0].config
    for h in holes[1:]:
        if h.config != first:
            raise PortError(
                f"ensemble_of: members must share ports, architecture and width; got "
                f"{h.config} and {first}"
            )
    if first.get("members", 1) != 1:
        raise PortError("ensemble_of: members must be single networks (members=1)")
    if len(holes) == 1:
        return holes[0]
    cfg = {k: v for k, v in first.items() if k != "members"}
    out = Hole(**cfg, members=len(holes))
    for mine, theirs in zip(out.members, holes):
        mine.load_state_dict(theirs.state_dict())
    return out
