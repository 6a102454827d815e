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
from brickwork.training.checkpoint import load_checkpoint, save_checkpoint
from brickwork.training.losses import type_loss, type_score
from brickwork.training.callbacks import (
    Callback,
    Checkpointer,
    EarlyStopping,
    LogMetrics,
    ProgressBar,
    TensorBoard,
)
from brickwork.training.fit import FitConfig, FitResult, FitState, fit

__all__ = [
    "Callback",
    "Checkpointer",
    "EarlyStopping",
    "FitConfig",
    "FitResult",
    "FitState",
    "LogMetrics",
    "ProgressBar",
    "TensorBoard",
    "fit",
    "load_checkpoint",
    "save_checkpoint",
    "type_loss",
    "type_score",
    "CacheKey",
    "CachedRows",
    "IntermediateDataset",
    "Samples",
    "derive_seed",
    "join_on_ids",
    "seed_everything",
    "tensors_digest",
]
