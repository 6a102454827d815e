"""The image encoder: a small CNN from a rendered image to the feature grid.

Trained once, independently, on per-cell attribute maps read off the scenes
(presence, color, shape, size, material of the object covering each cell), then
frozen; its outputs are the intermediate dataset every model of the study reads
(NMN variants and FiLM alike).

Example:
    >>> import torch
    >>> enc = ImageEncoder(channels=16)
    >>> enc(torch.zeros(2, 3, 64, 96)).shape
    torch.Size([2, 16, 8, 12])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from brickwork.modules import Module, register_kind
from brickwork.studies.clevr.data import ATTRIBUTES, Scene, object_masks
from brickwork.training import FitConfig, Samples, fit
from brickwork.types import Features

GRID = (8, 12)
#: attribute heads of the cell classifier, in order
HEADS = ("color", "shape", "size", "material")


@register_kind(
    "nmn_image_encoder", example_config={"channels": 8}, sizes={"b": 2, "h": 64, "w": 96}
)
class ImageEncoder(Module):
    """Three stride-2 conv-GroupNorm-ReLU blocks and a 3x3 conv: ``[b 3 64 96] -> [b C 8 12]``."""

    manual_config = True

    def __init__(self, channels: int = 32, width: int = 32):
        super().__init__()
        self._bw_config = {"channels": channels, "width": width}
        self.inputs = {"image": Features("b 3 h w")}
        self.outputs = {"features": Features(f"b {channels} gh gw")}
        layers: list[nn.Module] = []
        cin = 3
        for _ in range(3):
            layers += [nn.Conv2d(cin, width, 3, 2, 1), nn.GroupNorm(4, width), nn.ReLU()]
            cin = width
        layers += [nn.Conv2d(width, channels, 3, 1, 1), nn.ReLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)


def cell_targets(
    scenes: Sequence[Scene], grid: tuple[int, int] = GRID, threshold: float = 0.3
) -> torch.Tensor:
    """Per-cell attribute labels ``long [n, 5, rows, cols]``: presence, then one index per
    attribute of :data:`HEADS` (-1 where no object covers the cell)."""
    out = np.full((len(scenes), 1 + len(HEADS), *grid), -1, dtype=np.int64)
    for i, s in enumerate(scenes):
        masks = object_masks(s, 96, 64, grid=grid)
        best = masks.argmax(0) if len(s.objects) else np.zeros(grid, dtype=np.int64)
        cover = masks.max(0) if len(s.objects) else np.zeros(grid)
        on = cover >= threshold
        out[i, 0] = on.astype(np.int64)
        for h, attr in enumerate(HEADS):
            vals = np.array([ATTRIBUTES[attr].index(o.attribute(attr)) for o in s.objects] or [0])
            out[i, 1 + h] = np.where(on, vals[best], -1)
    return torch.from_numpy(out)


def object_cell_masks(scenes: Sequence[Scene], grid: tuple[int, int] = GRID) -> list[np.ndarray]:
    """Per scene, ``float32 [n_objects, rows, cols]`` coverage of each object per cell."""
    return [object_masks(s, 96, 64, grid=grid) for s in scenes]


class _CellClassifier(nn.Module):
    def __init__(self, encoder: ImageEncoder, channels: int):
        super().__init__()
        self.encoder = encoder
        sizes = [2] + [len(ATTRIBUTES[a]) for a in HEADS]
        self.heads = nn.ModuleList(nn.Conv2d(channels, k, 1) for k in sizes)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        f = self.encoder(image)
        return [h(f) for h in self.heads]


def images_tensor(images: np.ndarray) -> torch.Tensor:
    """``uint8 [n h w 3]`` to ``float [n 3 h w]`` in [0, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0


def train_encoder(
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    channels: int = 32,
    epochs: int = 4,
    seed: int = 0,
    max_steps: int | None = None,
) -> tuple[ImageEncoder, dict[str, float]]:
    """Train the encoder on per-cell attribute maps; returns it (frozen, eval mode) and
    its cell accuracy per head on the last 10 % of the images."""
    torch.manual_seed(seed)
    enc = ImageEncoder(channels=channels)
    model = _CellClassifier(enc, channels)
    n_val = max(1, len(images) // 10)
    train = Samples({"image": images[n_val:], "y": targets[n_val:]})

    def loss_fn(m: nn.Module, b: Samples) -> torch.Tensor:
        outs = m(b["image"])
        return sum(
            nn.functional.cross_entropy(o, b["y"][:, i], ignore_index=-1)
            for i, o in enumerate(outs)
        )  # type: ignore[return-value]

    fit(
        model,
        loss_fn,
        train,
        config=FitConfig(epochs=epochs, batch_size=64, lr=3e-3, seed=seed, max_steps=max_steps),
    )
    model.eval()
    acc: dict[str, float] = {}
    with torch.no_grad():
        outs = model(images[:n_val])
        for i, name in enumerate(("presence",) + HEADS):
            y = targets[:n_val, i]
            ok = y >= 0
            acc[name] = float((outs[i].argmax(1)[ok] == y[ok]).float().mean())
    for p in enc.parameters():
        p.requires_grad_(False)
    return enc, acc


def encode(encoder: ImageEncoder, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Features of many images with a frozen encoder."""
    encoder.eval()
    with torch.no_grad():
        return torch.cat([encoder(images[i : i + batch]) for i in range(0, len(images), batch)])
