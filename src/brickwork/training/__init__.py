"""Training: samples, intermediate-dataset cache, fit loop, executor, HPO, cost accounting.

Example:
    >>> import torch
    >>> from brickwork.training import Samples
    >>> len(Samples({"x": torch.zeros(5, 2)}))
    5
"""

from brickwork.training.seeding import derive_seed, seed_everything
from brickwork.training.samples import Samples, tensors_digest
from brickwork.training.cache import CacheKey, CachedRows, IntermediateDataset, join_on_ids

__all__ = [
    "CacheKey",
    "CachedRows",
    "IntermediateDataset",
    "Samples",
    "derive_seed",
    "join_on_ids",
    "seed_everything",
    "tensors_digest",
]
