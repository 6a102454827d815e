"""The list-sorting study (thesis ch. 3), reproduced and extended.

Selection-sort agents over lists of digits: the thesis architectures (whole-list LSTMs),
trained modularly (untyped and typed interfaces) and monolithically, next to addressed
agents (pointer-weighted reads and writes) and a recursive one, plus hybrids with one
hand-coded operator. See ``docs/sorting.md``.

Example:
    >>> import torch
    >>> from brickwork.studies.sorting import build_agent, handcoded_modules, representation
    >>> agent = build_agent("modular_addressed_recursive", handcoded_modules("addressed"))
    >>> episode = agent.run(representation([[3, 1, 2, 0]]))
    >>> episode.representation["values"].argmax(-1).tolist(), episode.all_terminated
    ([[0, 1, 2, 3]], True)
"""

from brickwork.studies.sorting.data import (
    FIELDS,
    SortingEnvironment,
    Transitions,
    build_transitions,
    representation,
    training_lists,
)
from brickwork.studies.sorting.evaluation import (
    evaluate_agent,
    max_verified,
    teacher_steps_batch,
    wilson,
)
from brickwork.studies.sorting.handcoded import (
    HandDigestor,
    HandPairSwap,
    HandShift,
    HandShiftHead,
    HandSwap,
    TeacherPolicy,
)
from brickwork.studies.sorting.modules import (
    AddressedDigestor,
    PairSwap,
    PointerLSTM,
    PolicyLSTM,
    PolicyMLP,
    ShiftHead,
    SwapBiLSTM,
    WholeListDigestor,
)
from brickwork.studies.sorting.monolithic import MonolithicConfig, train_monolithic
from brickwork.studies.sorting.study import StudyConfig, run_study
from brickwork.studies.sorting.teacher import (
    CODES,
    FLAT_OPS,
    NULL,
    RECURSIVE_OPS,
    Step,
    recursive_steps,
    recursive_trace,
    run_ops,
    teacher_steps,
    teacher_trace,
    validate_list,
    validate_lists,
)
from brickwork.studies.sorting.training import TrainConfig, train_unit
from brickwork.studies.sorting.variants import (
    VARIANTS,
    build_agent,
    handcoded_modules,
    is_typed,
    new_modules,
)

__all__ = [
    "CODES",
    "FIELDS",
    "FLAT_OPS",
    "NULL",
    "RECURSIVE_OPS",
    "VARIANTS",
    "AddressedDigestor",
    "HandDigestor",
    "HandPairSwap",
    "HandShift",
    "HandShiftHead",
    "HandSwap",
    "MonolithicConfig",
    "PairSwap",
    "PointerLSTM",
    "PolicyLSTM",
    "PolicyMLP",
    "ShiftHead",
    "SortingEnvironment",
    "Step",
    "StudyConfig",
    "SwapBiLSTM",
    "TeacherPolicy",
    "TrainConfig",
    "Transitions",
    "WholeListDigestor",
    "build_agent",
    "build_transitions",
    "evaluate_agent",
    "handcoded_modules",
    "is_typed",
    "max_verified",
    "new_modules",
    "recursive_steps",
    "recursive_trace",
    "representation",
    "run_ops",
    "run_study",
    "teacher_steps",
    "teacher_steps_batch",
    "teacher_trace",
    "train_monolithic",
    "train_unit",
    "training_lists",
    "validate_list",
    "validate_lists",
    "wilson",
]
