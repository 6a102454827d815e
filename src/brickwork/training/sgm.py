"""Deprecated: the surrogate gradient tooling lives in :mod:`brickwork.training.surrogate`
(one home for heads and their tooling). This alias stays while studies and user code
import ``brickwork.training.sgm``; import from ``brickwork.training.surrogate`` instead.

Example:
    >>> from brickwork.training.sgm import SurrogateSpec
    >>> SurrogateSpec(4, 2, rank=2).build().__class__.__name__
    'SurrogateHead'
"""

from brickwork.training.surrogate import (
    EnsembleHead,
    RelativeImprovement,
    SurrogateSpec,
    ensemble_variance,
    mc_dropout_variance,
    pareto_front,
    pearson,
)

__all__ = [
    "EnsembleHead",
    "RelativeImprovement",
    "SurrogateSpec",
    "ensemble_variance",
    "mc_dropout_variance",
    "pareto_front",
    "pearson",
]
