"""The composition study: HOUDINI's task sequences on scikit-learn's 8×8 digits.

Example:
    >>> from brickwork.studies.compose import StudyConfig
    >>> StudyConfig.quick().seeds
    (0,)
"""

from brickwork.studies.compose.data import (
    classify_samples,
    count_samples,
    digit_pools,
    recognise_samples,
    sum_samples,
)
from brickwork.studies.compose.study import (
    SEQUENCES,
    StudyConfig,
    program_correct,
    run_sequence,
    run_study,
    summarise,
)

__all__ = [
    "SEQUENCES",
    "StudyConfig",
    "classify_samples",
    "count_samples",
    "digit_pools",
    "program_correct",
    "recognise_samples",
    "run_sequence",
    "run_study",
    "sum_samples",
    "summarise",
]
