"""Digit tasks on scikit-learn's bundled 8×8 digits (1,797 images, no download).

Images are split once into train/val/test pools *by image* (seeded), so no test image is
ever seen in training; every list of a split is drawn from that split's pool only.

Example:
    >>> pools = digit_pools(seed=0)
    >>> sorted(pools), pools["train"][0].shape[1:]
    (['test', 'train', 'val'], torch.Size([1, 8, 8]))
    >>> s = count_samples(pools["train"], digit=3, n=4, lengths=(2, 5), seed=0)
    >>> s["x"].shape[0], s["x_mask"].shape[1], s["y"].shape
    (4, 5, torch.Size([4, 1]))
"""

from __future__ import annotations

from typing import Any

import torch

from brickwork.training import Samples

Pool = tuple[torch.Tensor, torch.Tensor]


def digit_pools(seed: int = 0, fractions: tuple[float, float] = (0.6, 0.2)) -> dict[str, Pool]:
    """Images ``[n, 1, 8, 8]`` in [0, 1] and labels, split by image into train/val/test."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target, dtype=torch.int64)
    g = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(len(y), generator=g)
    a = int(len(y) * fractions[0])
    b = a + int(len(y) * fractions[1])
    parts = {"train": order[:a], "val": order[a:b], "test": order[b:]}
    return {k: (x[i], y[i]) for k, i in parts.items()}


def recognise_samples(
    pool: Pool,
    digit: int,
    *,
    seed: int,
    fraction: float = 1.0,
    negatives: float | None = 2.0,
) -> Samples:
    """Single images, target 1 when the image shows ``digit``: every positive and
    ``negatives`` times as many negatives (None: every image of the pool), a fraction of
    them with ``fraction``."""
    x, y = pool
    g = torch.Generator().manual_seed(int(seed))
    pos = (y == digit).nonzero().squeeze(1)
    neg = (y != digit).nonzero().squeeze(1)
    neg = neg[torch.randperm(len(neg), generator=g)]
    if negatives is not None:
        neg = neg[: int(negatives * len(pos))]
    idx = torch.cat([pos, neg])
    idx = idx[torch.randperm(len(idx), generator=g)]
    idx = idx[: max(4, int(round(len(idx) * fraction)))]
    return Samples({"x": x[idx], "y": (y[idx] == digit).float().unsqueeze(1)})


def classify_samples(pool: Pool, *, seed: int, fraction: float = 1.0) -> Samples:
    """Single images, target the digit (0–9)."""
    x, y = pool
    g = torch.Generator().manual_seed(int(seed))
    idx = torch.randperm(len(y), generator=g)[: max(10, int(round(len(y) * fraction)))]
    return Samples({"x": x[idx], "y": y[idx]})


def _lists(
    pool: Pool, n: int, lengths: tuple[int, int], seed: int, digit: int | None, p_digit: float = 0.3
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x, y = pool
    g = torch.Generator().manual_seed(int(seed))
    lo, hi = lengths
    lens = torch.randint(lo, hi + 1, (n,), generator=g)
    width = int(hi)
    idx = torch.randint(len(y), (n, width), generator=g)
    if digit is not None:  # enrich lists with the digit so counts vary
        pos = (y == digit).nonzero().squeeze(1)
        choose = torch.rand(n, width, generator=g) < p_digit
        idx = torch.where(choose, pos[torch.randint(len(pos), (n, width), generator=g)], idx)
    mask = torch.arange(width)[None, :] < lens[:, None]
    values = x[idx] * mask[:, :, None, None, None]
    return values, mask, y[idx]


def count_samples(
    pool: Pool, digit: int, *, n: int, lengths: tuple[int, int], seed: int
) -> Samples:
    """Lists of images (lengths in ``lengths``), target how many show ``digit``."""
    values, mask, labels = _lists(pool, n, lengths, seed, digit)
    count = ((labels == digit) & mask).sum(1, keepdim=True).float()
    return Samples({"x": values, "x_mask": mask.float(), "y": count})


def sum_samples(pool: Pool, *, n: int, lengths: tuple[int, int], seed: int) -> Samples:
    """Lists of images (lengths in ``lengths``), target the sum of their digits."""
    values, mask, labels = _lists(pool, n, lengths, seed, None)
    total = (labels * mask).sum(1, keepdim=True).float()
    return Samples({"x": values, "x_mask": mask.float(), "y": total})


def list_samples(kind: str, pool: Pool, digit: int | None, **kw: Any) -> Samples:
    if kind == "count":
        assert digit is not None
        return count_samples(pool, digit, **kw)
    return sum_samples(pool, **kw)
