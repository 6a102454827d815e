"""Registry names and registration of the modules a modular run trained."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from brickwork.registry import Registry
from brickwork.studies.clevr.nmn.data import StudyData
from brickwork.studies.clevr.nmn.layouts import NMN


def registry_name(module_name: str, suffix: str) -> str:
    """``find[red]`` + ``sgm-typed-s0`` → ``find.red-sgm-typed-s0`` (a registry name).

    Example:
        >>> registry_name("compare[equal_color]", "typed-s0"), registry_name("scene", "typed-s0")
        ('compare.equal_color-typed-s0', 'scene.typed-s0')
    """
    kind, _, arg = module_name.partition("[")
    arg = arg.rstrip("]")
    return f"{kind}.{arg}-{suffix}" if arg else f"{kind}.{suffix}"


def register_modules(
    model: NMN,
    registry: Registry,
    plan: dict[str, dict[str, Any]],
    jobs: Sequence[dict[str, Any]],
    *,
    seed: int,
    data: StudyData,
    supervision: str,
    metrics: dict[str, Any],
) -> list[str]:
    """Store every trained module of a modular run (weights, signature, metrics,
    lineage) in ``registry``; returns the names."""
    by_module = {j["module"]: j for j in jobs if j.get("kept", True)}  # the kept round
    names = []
    tag = f"{model.interface}-{supervision}-s{seed}"
    for module_name, entry in plan.items():
        module = (
            model.question if module_name == "question_encoder" else model.kinds.module(module_name)
        )
        job = by_module.get(module_name, {})
        hp: dict[str, Any] = {k: job[k] for k in ("rank", "dropout", "lr", "epochs") if k in job}
        m: dict[str, Any] = {
            k: job[k] for k in ("sgm_loss", "variance", "seconds", "loss") if k in job
        }
        if entry["stage"] >= 2:
            m.update(metrics)
        name = registry_name(module_name, f"{entry['mode']}-{tag}")
        lineage = {
            "study": "clevr-nmn",
            "interface": model.interface,
            "supervision": supervision,
            "seed": seed,
            "stage": entry["stage"],
            "module": module_name,
        }
        if job.get("context"):  # a second-round find: trained against these frozen modules
            lineage["round"] = job.get("round", 2)
            lineage["upstream"] = {n: model.kinds.module(n).fingerprint() for n in job["context"]}
        registry.put(
            name,
            module,
            mode=entry["mode"],
            hyperparameters=hp,
            metrics=m,
            lineage=lineage,
            data_digest=data.digest,
        )
        names.append(name)
    return names
