"""The FiLM baseline (Perez et al. 2018) on the study's cached image features.

A GRU encodes the question; each residual block's conv output is scaled and shifted
per channel by (gamma, beta) predicted from the question; a classifier reads the last
block. Same features, same training questions as the NMN variants.

Example:
    >>> import torch
    >>> film = FiLM(vocab=10, channels=8)
    >>> film(torch.zeros(2, 8, 8, 12), torch.ones(2, 5, dtype=torch.long)).shape
    torch.Size([2, 28])
"""

from __future__ import annotations

import torch
from torch import nn

from brickwork.modules import Module, register_kind
from brickwork.studies.clevr.nmn.modules import coords
from brickwork.studies.clevr.nmn.vocab import K
from brickwork.types import Features, Logits


@register_kind(
    "nmn_film", example_config={"vocab": 10, "channels": 8}, sizes={"b": 2, "h": 8, "w": 12, "t": 5}
)
class FiLM(Module):
    """GRU question encoder + FiLM-ed residual blocks + classifier."""

    manual_config = True

    def __init__(
        self,
        vocab: int = 100,
        channels: int = 32,
        hidden: int = 128,
        blocks: int = 4,
        width: int = 64,
        embed: int = 32,
    ):
        super().__init__()
        self._bw_config = {
            "vocab": vocab,
            "channels": channels,
            "hidden": hidden,
            "blocks": blocks,
            "width": width,
            "embed": embed,
        }
        self.inputs = {
            "features": Features(f"b {channels} h w"),
            "tokens": Features("b t", dtype=torch.long),
        }
        self.outputs = {"answer": Logits(f"b {K}")}
        self.embed = nn.Embedding(vocab, embed, padding_idx=0)
        self.gru = nn.GRU(embed, hidden, batch_first=True)
        self.film = nn.Linear(hidden, blocks * 2 * width)
        self.stem = nn.Conv2d(channels + 2, width, 1)
        self.conv1 = nn.ModuleList(nn.Conv2d(width + 2, width, 1) for _ in range(blocks))
        self.conv2 = nn.ModuleList(nn.Conv2d(width, width, 3, 1, 1) for _ in range(blocks))
        self.norm = nn.ModuleList(nn.GroupNorm(1, width, affine=False) for _ in range(blocks))
        self.head = nn.Sequential(nn.Conv2d(width + 2, 128, 1), nn.ReLU())
        self.out = nn.Sequential(nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, K))
        self.blocks, self.width = blocks, width

    def forward(self, features: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        tokens = tokens.long().clamp(0, self.embed.num_embeddings - 1)
        h, _ = self.gru(self.embed(tokens))
        last = h[torch.arange(h.shape[0], device=h.device), (tokens > 0).sum(1).clamp(min=1) - 1]
        gb = self.film(last).view(-1, self.blocks, 2, self.width)
        n, _, hh, ww = features.shape
        xy = coords(hh, ww, features.device).to(features).unsqueeze(0).expand(n, 2, hh, ww)
        x = torch.relu(self.stem(torch.cat([features, xy], 1)))
        for i in range(self.blocks):
            r = torch.relu(self.conv1[i](torch.cat([x, xy], 1)))
            y = self.norm[i](self.conv2[i](r))
            y = torch.relu((1 + gb[:, i, 0, :, None, None]) * y + gb[:, i, 1, :, None, None])
            x = r + y
        pooled = self.head(torch.cat([x, xy], 1)).amax((2, 3))
        return self.out(pooled)
