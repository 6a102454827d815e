"""Training plans (thesis §4.1): from a layout family to stages and modes per module.

Example:
    >>> from brickwork.training.fixtures import nmn_kinds, nmn_family
    >>> plan = make_plan(nmn_family(nmn_kinds()), DataSpec({"features", "question"}, {"answer"}))
    >>> plan.by_kind()["find"]["indirect"], plan.by_kind()["describe"]["dependent"]
    (True, True)
"""

from brickwork.plan.data_spec import DataSpec
from brickwork.plan.planner import (
    CODEPENDENT_POLICIES,
    CodependentPolicy,
    is_trainable,
    make_plan,
    merge_is_codependent,
)
from brickwork.plan.spec_file import PlanFile, load_plan_file
from brickwork.plan.training_plan import MODES, IntermediatePlan, ModulePlan, TrainingPlan

__all__ = [
    "CODEPENDENT_POLICIES",
    "CodependentPolicy",
    "MODES",
    "DataSpec",
    "IntermediatePlan",
    "ModulePlan",
    "PlanFile",
    "TrainingPlan",
    "is_trainable",
    "load_plan_file",
    "make_plan",
    "merge_is_codependent",
]
