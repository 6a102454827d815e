"""The training plan of the NMN study (thesis §4.1, Table 4.1), computed by the engine's
:func:`brickwork.plan.make_plan` from the training layouts.

``make_plan`` classifies every module (decoupled/dependent input, direct/indirect
supervision, codependent merges) and orders the stages; ``cycles="joint"`` is needed
because ``relate`` feeds ``relate`` (and ``same``/``unique`` chain) in CLEVR programs.
The study then reads the plan as follows:

- the question encoder is outside the layouts: *direct* (the answer is its target);
- a module with decoupled input and indirect supervision (``scene``, ``find[*]``):
  ``make_plan`` says *surrogate* (one SGM per module towards the answer, §4.2.3: its
  default ``codependent="surrogate"`` policy for the finds that ``And``/``Or`` merge),
  stage 1; the study takes that as it comes;
- with executor targets (``supervision="targets"``) the finds (and ``scene``, on the
  union of the object masks) are supervised directly
  (``DataSpec.module_targets``) and ``make_plan`` says *direct*;
- every other module keeps ``make_plan``'s mode (*joint* group or *cached*) and stage;
  the study trains them after stage 1 from the cached prior with the finds frozen.

Example:
    >>> from brickwork.studies.clevr.data import Program
    >>> from brickwork.studies.clevr.nmn.layouts import nmn_kinds, program_layout
    >>> p = Program.from_json([{"function": "scene", "inputs": []},
    ...     {"function": "filter_color", "inputs": [0], "value_inputs": ["red"]},
    ...     {"function": "exist", "inputs": [1]}])
    >>> plan = study_plan([program_layout(p, nmn_kinds("typed", 8))], supervision="answers")
    >>> plan["find[red]"]["mode"], plan["measure[exist]"]["mode"], plan["question_encoder"]["stage"]
    ('surrogate', 'cached', 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from brickwork.errors import PlanError
from brickwork.layouts import Layout
from brickwork.plan import DataSpec, TrainingPlan, make_plan


def engine_plan(layouts: Sequence[Layout], supervision: str = "answers") -> TrainingPlan:
    """``make_plan`` over the distinct training layouts (``cycles="joint"``)."""
    if supervision not in ("answers", "targets"):
        raise PlanError(
            f"study_plan: supervision must be 'answers' or 'targets', got {supervision!r}"
        )
    if not layouts:
        raise PlanError(
            "study_plan: no training layouts; pass the layouts of the training questions"
        )
    family = list({id(lay): lay for lay in layouts}.values())
    targets: dict[str, str] = {}
    if supervision == "targets":
        targets = {
            n.module: "find_target"
            for lay in family
            for n in lay.nodes
            if n.kind in ("find", "scene")
        }
    return make_plan(
        family, DataSpec({"features"}, {"answer"}, module_targets=targets), cycles="joint"
    )


def study_plan(
    layouts: Sequence[Layout], supervision: str = "answers"
) -> dict[str, dict[str, Any]]:
    """Module name → ``{input, supervision, codependent, engine_mode, mode, stage}``."""
    plan = engine_plan(layouts, supervision)
    out: dict[str, dict[str, Any]] = {
        "question_encoder": {
            "input": "decoupled",
            "supervision": "direct",
            "codependent": False,
            "engine_mode": "direct",
            "mode": "direct",
            "stage": 1,
        }
    }
    for name, mp in plan.modules.items():
        e = {
            "input": "decoupled" if mp.decoupled else "dependent",
            "supervision": "direct" if mp.direct else "indirect",
            "codependent": mp.codependent,
            "engine_mode": mp.mode,
            "mode": mp.mode,
            "stage": mp.stage,
        }
        if mp.decoupled and mp.kind in ("find", "scene"):
            if mp.mode not in ("direct", "surrogate") or mp.stage != 1:
                raise PlanError(
                    f"study_plan: make_plan trains {name} as {mp.mode!r} in stage "
                    f"{mp.stage}; the study trains finds and scene in stage 1, "
                    "'surrogate' (answers) or 'direct' (targets); keep make_plan's "
                    "default codependent='surrogate'"
                )
        else:
            e["stage"] = max(2, mp.stage)
        out[name] = e
    return out
