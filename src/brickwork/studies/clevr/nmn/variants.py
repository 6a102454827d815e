"""The study's variants, declared, and how one is trained and measured on the test split."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from torch import nn

from brickwork.errors import TrainingError
from brickwork.studies.clevr.nmn.data import StudyConfig, StudyData
from brickwork.studies.clevr.nmn.end_to_end import train_e2e, train_film
from brickwork.studies.clevr.nmn.evaluate import error_by_depth
from brickwork.studies.clevr.nmn.modular import train_modular
from brickwork.studies.clevr.nmn.report import summarize_depths

Training = Literal["e2e", "modular", "film"]


@dataclass(frozen=True)
class Variant:
    """One way of training a model in the study.

    Args:
        name: the variant's name in job names and the summary.
        training: ``"e2e"`` (the whole NMN end to end), ``"modular"`` (finds through
            their SGMs, then the rest) or ``"film"`` (the FiLM baseline).
        interface: the attention interface of the NMN kinds (``"typed"`` soft masks or
            ``"classic"`` heatmaps); ``None`` for FiLM.
        supervision: what the modular finds learn from: ``"answers"`` (through the SGM)
            or ``"targets"`` (the generator's ground truth, an upper bound).

    Example:
        >>> Variant.named("modular_typed_targets").supervision
        'targets'
    """

    name: str
    training: Training
    interface: str | None = None
    supervision: str = "answers"

    @staticmethod
    def named(name: str) -> Variant:
        """The declared variant called ``name``.

        Raises:
            TrainingError: no variant has that name.
        """
        for v in (*VARIANTS_DECLARED, TARGETS):
            if v.name == name:
                return v
        raise TrainingError(
            f"NMN study: unknown variant {name!r}; expected one of "
            f"{[v.name for v in (*VARIANTS_DECLARED, TARGETS)]}"
        )


#: the variants every seed of the study trains, in report order
VARIANTS_DECLARED = (
    Variant("e2e_classic", "e2e", "classic"),
    Variant("e2e_typed", "e2e", "typed"),
    Variant("modular_classic", "modular", "classic"),
    Variant("modular_typed", "modular", "typed"),
    Variant("film", "film"),
)
#: the upper bound: typed finds learnt from the generator's targets (one seed)
TARGETS = Variant("modular_typed_targets", "modular", "typed", supervision="targets")
#: names of :data:`VARIANTS_DECLARED` (job names and summary keys)
VARIANTS = tuple(v.name for v in VARIANTS_DECLARED)


def _run_variant(
    name: str, data: StudyData, cfg: StudyConfig, seed: int, workdir: Path | None = None
) -> dict[str, Any]:
    variant = Variant.named(name)
    t0 = time.perf_counter()
    priors = None
    extra: dict[str, Any] = {}
    model: nn.Module
    if variant.training == "e2e":
        assert variant.interface is not None
        model, info = train_e2e(
            variant.interface,
            data,
            seconds=cfg.seconds_e2e,
            seed=seed,
            channels=cfg.channels,
            lr=cfg.lr,
        )
        curve, stage1 = info["curve"], []
    elif variant.training == "modular":
        assert variant.interface is not None
        model, info = train_modular(
            variant.interface,
            data,
            seconds=cfg.seconds_downstream,
            seed=seed,
            sgm_epochs=cfg.sgm_epochs,
            channels=cfg.channels,
            supervision=variant.supervision,
            hpo_trials=cfg.sgm_hpo_trials,
            workdir=workdir,
            sgm_steps=cfg.sgm_steps,
            lr=cfg.lr,
        )
        extra["registered"] = info.get("registered", [])
        extra["recorded"] = info.get("recorded")
        extra["plan"] = info["plan"]
        priors = info.pop("priors")
        curve, stage1 = info["downstream"]["curve"], info["jobs"]
        extra["jobs"] = stage1
        extra["_priors"] = priors
    else:
        model, info = train_film(
            data, seconds=cfg.seconds_film, seed=seed, channels=cfg.channels, lr=cfg.lr
        )
        curve, stage1 = info["curve"], []
    test = error_by_depth(model, data, "test", priors["test"] if priors else None)
    seen, unseen = summarize_depths(test, cfg.train_max_depth)
    pred_ok = [1.0 - e for d, e in test.items() if d <= cfg.train_max_depth]
    res = {
        "variant": name,
        "seed": seed,
        "error_by_depth": {str(d): e for d, e in test.items()},
        "seen_error": seen,
        "unseen_error": unseen,
        "accuracy": statistics.mean(pred_ok),
        "curve": curve,
        "samples_per_second": info.get(
            "samples_per_second", info.get("downstream", {}).get("samples_per_second")
        ),
        "stage1_seconds": [j.get("seconds", 0.0) for j in stage1],
        "wall_seconds": time.perf_counter() - t0,
        **extra,
    }
    if variant.training == "e2e" and seed == cfg.seed:
        res["train_images_error_by_depth"] = {
            str(d): e for d, e in error_by_depth(model, data, "train_deep").items()
        }
    res["_model"] = model
    return res
