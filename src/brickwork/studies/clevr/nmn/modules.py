"""Attention module kinds of the NMN study: scene, find, relate, same, unique.

Each kind is built for one of two interface sets (thesis Table 4.3): ``typed`` gives
soft masks in (0, 1) (sigmoid), ``classic`` gives heatmaps (ReLU, unbounded). Every
kind keeps its weights per instance (``find[red]``, ``find[cube]`` ...) and defines
``forward_instances`` so that the autobatched runner runs all instances of a kind in
one batched matmul.

Example:
    >>> import torch
    >>> find = Find(channels=8, interface="typed")
    >>> m = find(torch.randn(2, 8, 4, 6))
    >>> m.shape, bool(((m > 0) & (m < 1)).all())
    (torch.Size([2, 1, 4, 6]), True)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from brickwork.errors import LoadError
from brickwork.modules import Module, attend, register_kind, stack_param
from brickwork.types import Features, Heatmap, NeuralType, SoftMask

INTERFACES = ("typed", "classic")
_SIZES = {"b": 2, "c": 8, "h": 4, "w": 6}


def mask_type(interface: str) -> NeuralType:
    """The attention type of an interface set: SoftMask (typed) or Heatmap (classic)."""
    if interface == "typed":
        return SoftMask("b 1 h w")
    if interface == "classic":
        return Heatmap("b 1 h w")
    raise LoadError(f"unknown NMN interface {interface!r}; expected one of {INTERFACES}")


def activate(interface: str, x: torch.Tensor) -> torch.Tensor:
    """Sigmoid for typed soft masks, ReLU for classic heatmaps."""
    return torch.sigmoid(x) if interface == "typed" else torch.relu(x)


def coords(h: int, w: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Cell-centre coordinates in [-1, 1]: ``[2, h, w]`` (x, then y)."""
    ys = torch.linspace(-1, 1, h, device=device).view(h, 1).expand(h, w)
    xs = torch.linspace(-1, 1, w, device=device).view(1, w).expand(h, w)
    return torch.stack([xs, ys])


class _CellMLP(Module):
    """Abstract: a per-cell two-layer MLP ``cin -> hidden -> 1`` with per-instance weights."""

    manual_config = True

    def _init_mlp(self, cin: int, hidden: int) -> None:
        self.w1 = nn.Parameter(torch.randn(hidden, cin) / cin**0.5)
        self.b1 = nn.Parameter(torch.zeros(hidden))
        self.w2 = nn.Parameter(torch.randn(1, hidden) / hidden**0.5)
        self.b2 = nn.Parameter(torch.zeros(1))

    @staticmethod
    def _mlp(
        x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor
    ) -> torch.Tensor:
        n, c, h, w = x.shape
        hid = torch.relu(torch.matmul(w1, x.reshape(n, c, h * w)) + b1.unsqueeze(-1))
        return (torch.matmul(w2, hid) + b2.unsqueeze(-1)).reshape(n, 1, h, w)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        return self._mlp(x, self.w1, self.b1.unsqueeze(0), self.w2, self.b2.unsqueeze(0))

    @classmethod
    def heads(
        cls, modules: Sequence[Module], instance: torch.Tensor, x: torch.Tensor
    ) -> torch.Tensor:
        p = [stack_param(modules, k, instance) for k in ("w1", "b1", "w2", "b2")]
        return cls._mlp(x, *p)

    def _setup(
        self, channels: int, interface: str, hidden: int, extra: int, with_mask: bool, kind: str
    ) -> None:
        self._bw_config = {"channels": channels, "interface": interface, "hidden": hidden}
        self.interface = interface
        t = mask_type(interface)
        feats = Features(f"b {channels} h w")
        self.inputs = {"features": feats, "mask": t} if with_mask else {"features": feats}
        self.outputs = {"mask": t}
        self._init_mlp(channels + extra, hidden)


class _MaskCellMLP(_CellMLP):
    """Abstract: a per-cell MLP over ``_inputs(mask, features)`` (relate, same)."""

    @staticmethod
    def _inputs(mask: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, mask: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return activate(self.interface, self.head(self._inputs(mask, features)))

    @classmethod
    def forward_instances(cls, modules, instance, mask, features):
        return activate(
            modules[0].interface, cls.heads(modules, instance, cls._inputs(mask, features))
        )


@register_kind("nmn_scene", example_config={"channels": 8}, sizes=_SIZES)
class Scene(_CellMLP):
    """``scene``: features to an attention on every object."""

    def __init__(self, channels: int = 32, interface: str = "typed", hidden: int = 16):
        super().__init__()
        self._setup(channels, interface, hidden, 0, False, "scene")

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return activate(self.interface, self.head(features))


@register_kind("nmn_find", example_config={"channels": 8}, sizes=_SIZES)
class Find(_CellMLP):
    """``find[value]``: features to an attention on objects with one attribute value.

    A CLEVR ``filter_color[red]`` runs as ``And(mask, find[red](features))``, so find
    modules read the image only (decoupled input, thesis §4.1).
    """

    def __init__(self, channels: int = 32, interface: str = "typed", hidden: int = 16):
        super().__init__()
        self._setup(channels, interface, hidden, 0, False, "find")

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return activate(self.interface, self.head(features))

    @classmethod
    def forward_instances(cls, modules, instance, features):
        return activate(modules[0].interface, cls.heads(modules, instance, features))


@register_kind("nmn_relate", example_config={"channels": 8}, sizes=_SIZES)
class Relate(_MaskCellMLP):
    """``relate[left]``: the objects in a spatial relation to the attended one.

    Each cell sees its features, the incoming attention and its offset from the
    attention's centroid, so the rule is the same for any scene layout.
    """

    def __init__(self, channels: int = 32, interface: str = "typed", hidden: int = 32):
        super().__init__()
        self._setup(channels, interface, hidden, 3, True, "relate")

    @staticmethod
    def _inputs(mask: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        n, _, h, w = features.shape
        xy = coords(h, w, features.device).to(features)
        centre = attend(mask, xy.unsqueeze(0).expand(n, 2, h, w))
        offset = xy.unsqueeze(0) - centre.view(n, 2, 1, 1)
        return torch.cat([features, mask, offset], 1)


@register_kind("nmn_same", example_config={"channels": 8}, sizes=_SIZES)
class Same(_MaskCellMLP):
    """``same[color]``: the other objects sharing an attribute with the attended one."""

    def __init__(self, channels: int = 32, interface: str = "typed", hidden: int = 32):
        super().__init__()
        self._setup(channels, interface, hidden, channels + 1, True, "same")

    @staticmethod
    def _inputs(mask: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        ref = attend(mask, features)[:, :, None, None]
        return torch.cat([features, features * ref, mask], 1)


@register_kind("nmn_unique", example_config={}, sizes=_SIZES)
class Unique(Module):
    """``unique``: a learned pointwise sharpening of an attention (mask to mask)."""

    manual_config = True

    def __init__(self, interface: str = "typed"):
        super().__init__()
        self._bw_config = {"interface": interface}
        self.interface = interface
        t = mask_type(interface)
        self.inputs = {"mask": t}
        self.outputs = {"mask": t}
        typed = interface == "typed"
        self.scale = nn.Parameter(torch.tensor([8.0 if typed else 1.0]))
        self.bias = nn.Parameter(torch.tensor([-4.0 if typed else 0.0]))

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        return activate(self.interface, self.scale * mask + self.bias)
