"""The training plan of the NMN study (thesis §4.1, Table 4.1) from its training layouts.

Per module: *input* is ``decoupled`` when every input is an external (image features)
and ``dependent`` otherwise; *supervision* is ``direct`` when the module produces the
layout's output (or has intermediate targets) and ``indirect`` otherwise. The mode
follows: question encoder ``direct``; decoupled + indirect → ``surrogate`` (a surrogate
gradient module); dependent → ``cached`` (trained from cached intermediate datasets,
after the stage that provides its inputs). With executor targets, find modules become
``direct``. (The engine's generic ``brickwork.plan`` supersedes this when it lands.)

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

_PARAMETER_FREE = ("And", "Or")


def study_plan(layouts: Sequence[Layout], supervision: str = "answers") -> dict[str, dict[str, Any]]:
    """Module name → ``{input, supervision, mode, stage}`` for a family of layouts."""
    if supervision not in ("answers", "targets"):
        raise PlanError(f"study_plan: supervision must be 'answers' or 'targets', got "
                        f"{supervision!r}")
    if not layouts:
        raise PlanError("study_plan: no training layouts; pass the layouts of the training questions")
    plan: dict[str, dict[str, Any]] = {
        "question_encoder": {"input": "decoupled", "supervision": "direct", "mode": "direct",
                             "stage": 1}}
    for lay in layouts:
        last = lay.outputs[next(iter(lay.outputs))].node
        for node in lay.nodes:
            if node.kind in _PARAMETER_FREE:
                continue
            decoupled = all(src.node is None for src in node.inputs.values())
            direct = node.id == last or (supervision == "targets" and node.kind == "find")
            entry = plan.setdefault(node.module, {"input": "decoupled", "supervision": "indirect"})
            if not decoupled:
                entry["input"] = "dependent"
            if direct:
                entry["supervision"] = "direct"
    for name, e in plan.items():
        if name == "question_encoder":
            continue
        if e["input"] == "decoupled":
            e["mode"] = "direct" if e["supervision"] == "direct" else "surrogate"
            e["stage"] = 1
        else:
            e["mode"], e["stage"] = "cached", 2
    return plan
