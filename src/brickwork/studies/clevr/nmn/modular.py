"""Modular training (thesis §4.2.3): the question encoder, each find through its SGM (a second round
for those left on the plateau), then the rest of the model on the frozen finds."""

from __future__ import annotations

import copy
import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from brickwork.layouts import module_argument
from brickwork.registry import Registry
from brickwork.studies.clevr.data import ATTRIBUTES
from brickwork.studies.clevr.nmn.data import FIND_VALUES, StudyData, data_device
from brickwork.studies.clevr.nmn.end_to_end import LR, _instantiate, train_loop
from brickwork.studies.clevr.nmn.layouts import NMN
from brickwork.studies.clevr.nmn.plan import study_plan
from brickwork.studies.clevr.nmn.recorded import RecordedFinds, record_finds
from brickwork.studies.clevr.nmn.registration import register_modules
from brickwork.studies.clevr.nmn.sgm import reinitialise, train_sgm_module, tune_sgm_module
from brickwork.training import FitConfig, Samples, fit


def train_question_encoder(
    model: NMN, data: StudyData, *, seed: int, epochs: int = 2
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Stage 1, direct supervision: the question encoder alone; returns cached prior
    logits for every question set (the intermediate dataset downstream modules read)."""
    qs = data.sets["train"]
    train = Samples({"tokens": qs.tokens, "answer": qs.answer})
    enc = model.question
    loss = lambda m, b: nn.functional.cross_entropy(m(b["tokens"]), b["answer"])  # noqa: E731
    cpu = time.process_time()
    res = fit(enc, loss, train, config=FitConfig(epochs=epochs, batch_size=128, lr=LR, seed=seed))
    cpu = time.process_time() - cpu
    enc.eval()
    with torch.no_grad():
        priors = {
            n: torch.cat([enc(s.tokens[i : i + 512]) for i in range(0, len(s), 512)])
            for n, s in data.sets.items()
        }
    for p in enc.parameters():
        p.requires_grad_(False)
    return priors, {"seconds": cpu, "wall_seconds": res.wall_time, "steps": res.steps}


def train_find_direct(
    model: NMN, module_name: str, data: StudyData, *, seed: int, epochs: int
) -> dict[str, Any]:
    """Second supervision setting: a find module trained directly on the executor's object
    masks (BCE with ``pos_weight``, since positives are rare); ``scene`` on the union of
    every object's mask (the colour masks cover every object)."""
    module = model.kinds.module(module_name)
    if module_name == "scene":
        y = data.find_targets["train"][:, : len(ATTRIBUTES["color"])].amax(1, keepdim=True)
    else:
        j = FIND_VALUES.index(module_argument(module_name))
        y = data.find_targets["train"][:, j : j + 1]
    pos = float(y.mean().clamp(min=1e-3))
    train = Samples({"features": data.features["train"], "y": y})
    pw = torch.tensor((1 - pos) / pos, device=y.device).clamp(max=30.0)

    def loss(m: nn.Module, b: Samples) -> torch.Tensor:
        out = m(b["features"])
        if model.interface == "typed":
            out = torch.logit(out.clamp(1e-5, 1 - 1e-5))
        return nn.functional.binary_cross_entropy_with_logits(out, b["y"], pos_weight=pw)

    cpu = time.process_time()
    res = fit(module, loss, train, config=FitConfig(epochs=epochs, batch_size=64, lr=LR, seed=seed))
    return {
        "module": module_name,
        "seconds": time.process_time() - cpu,
        "wall_seconds": res.wall_time,
        "loss": res.final["train_loss"],
    }


def find_modules(model: NMN, data: StudyData) -> list[str]:
    _instantiate(model, data)
    return ["scene"] + [n for n in model.kinds.names() if n.startswith("find[")]


def freeze(model: NMN, names: Sequence[str]) -> None:
    for n in names:
        for p in model.kinds.module(n).parameters():
            p.requires_grad_(False)


#: a find whose best SGM validation loss is above this fraction of its loss before
#: training (the prior's) stayed on the SGM plateau: :func:`train_modular` trains it
#: again in a second round, with the other finds as context. The threshold lies between
#: the finds that learned and those that did not in the measured runs
#: (docs/history/nmn-study-runs.md "The second SGM round")
PLATEAU = 0.85


def recorded_finds(
    model: NMN, finds: Sequence[str], data: StudyData, sets: Sequence[str], root: str | Path
) -> tuple[RecordedFinds, dict[str, Any]]:
    """Record the frozen find/scene modules once per split of ``sets`` (intermediate
    datasets under ``root``, reused on a key hit) and the reader downstream training uses;
    also returns ``{"digests": split -> key digest, "hits": ..., "seconds": ...}``."""
    t0 = time.perf_counter()
    names = [n for n in finds if n == "scene" or n.startswith("find[")]
    datasets, hits = {}, {}
    for split in dict.fromkeys(data.sets[s].split for s in sets):
        datasets[split], hits[split] = record_finds(model, names, data, split, root)
    reader = RecordedFinds(model, names, datasets)
    for s in sets:  # build the layouts now, as _instantiate does for the full model
        for q in data.sets[s].questions:
            reader.layout(q.program)
    return reader, {
        "digests": reader.digests,
        "hits": hits,
        "modules": names,
        "seconds": time.perf_counter() - t0,
    }


@dataclass
class _Finds:
    """How the finds of one modular run train: through their SGM, a search of
    ``hpo_trials`` trials with an Optuna journal at ``storage``, else one run each."""

    model: NMN
    data: StudyData
    priors: dict[str, torch.Tensor]
    seed: int
    storage: Path | None
    hpo_trials: int
    sgm_epochs: int
    sgm_steps: int

    def train(
        self, name: str, *, seed: int, context: Mapping[str, nn.Module] | None = None
    ) -> dict[str, Any]:
        if self.storage is not None:
            return tune_sgm_module(
                self.model,
                name,
                self.data,
                self.priors,
                seed=seed,
                trials=max(1, self.hpo_trials),
                storage=self.storage,
                min_steps=self.sgm_steps,
                context=context,
            )
        return train_sgm_module(
            self.model,
            name,
            self.data,
            self.priors,
            seed=seed,
            epochs=self.sgm_epochs,
            min_steps=self.sgm_steps,
            context=context,
        )

    def second_round(self, finds: Sequence[str], jobs: list[dict[str, Any]]) -> None:
        """Train again each find that stayed on its SGM plateau, on the questions that also
        filter on finds that learned (their masks ANDed into its own); keep the new
        weights only if they end further below their start than the first round's.
        Appends the round-2 jobs to ``jobs``."""
        stuck = [
            j["module"]
            for j in jobs
            if j["module"] in finds
            and j["module"] != "scene"
            and j.get("sgm_loss") is not None
            and j["sgm_loss"] > PLATEAU * j["start_loss"]
        ]
        context = {n: self.model.kinds.module(n) for n in finds if n not in stuck}
        if not stuck or "scene" not in context:
            return
        freeze(self.model, list(context))
        first = {j["module"]: j for j in jobs}
        for name in stuck:
            module = self.model.kinds.module(name)
            before = copy.deepcopy(module.state_dict())
            seed = self.seed
            if self.storage is None:  # a fresh start, as each trial of a search has
                seed += 7919
                reinitialise(module, seed)
            job = self.train(name, seed=seed, context=context)
            # the rows differ between the rounds: compare the loss relative to each start
            ratio = first[name]["sgm_loss"] / first[name]["start_loss"]
            kept = job.get("sgm_loss") is not None and job["sgm_loss"] / job["start_loss"] < ratio
            if kept:
                first[name]["kept"] = False
            else:
                module.load_state_dict(before)
            jobs.append({**job, "round": 2, "kept": kept})


def train_modular(
    interface: str,
    data: StudyData,
    *,
    seconds: float,
    seed: int,
    sgm_epochs: int,
    supervision: str = "answers",
    hpo_trials: int = 1,
    channels: int = 32,
    workdir: str | Path | None = None,
    record: bool = True,
    sgm_steps: int = 600,
    lr: float = LR,
) -> tuple[NMN, dict[str, Any]]:
    """Modular training following the plan (:func:`study_plan`, from ``make_plan``):
    question encoder direct (prior cached); find/scene modules through surrogates
    (answers; per-module HPO with ``hpo_trials`` Optuna trials when ``workdir`` is given)
    or direct masks (targets); the dependent modules from the cached prior with the
    finds frozen, reading the frozen finds' outputs from intermediate datasets
    (``workdir/intermediate``, a temporary folder without ``workdir``) unless
    ``record=False``. With ``workdir``, the trained modules are registered in
    ``workdir/registry``. ``lr``: the downstream stage's learning rate.

    A find that stays on its SGM plateau (best SGM loss above :data:`PLATEAU` × its
    loss before training) is trained again in a second round, once every other find
    is done, with the finds that learned as ``context`` (:func:`train_sgm_module`); its
    job is marked ``"round": 2``, and its weights are kept only if they end further
    below their start (``sgm_loss / start_loss``) than the first round's (``"kept"``).
    ``find[small]`` needs it: on single-filter questions
    a mask of every object answers its counts about as well (docs/history/nmn-study.md
    "Why some finds do not learn")."""
    torch.manual_seed(seed)
    model = NMN(interface, len(data.tokenizer), channels)
    _instantiate(model, data)
    model.to(data_device(data))
    plan = study_plan(
        [model.layouts(q.program) for q in data.sets["train"].questions], supervision=supervision
    )
    finds = [n for n, e in plan.items() if e["stage"] == 1 and n != "question_encoder"]
    priors, qjob = train_question_encoder(model, data, seed=seed)
    jobs: list[dict[str, Any]] = [{"module": "question_encoder", **qjob}]
    storage = (
        Path(workdir) / "hpo" / f"{interface}-{supervision}-s{seed}.journal"
        if workdir is not None
        else None
    )
    if storage is not None and storage.exists():
        storage.unlink()  # a new run: new weights, so old trials say nothing about them
    sgm = _Finds(model, data, priors, seed, storage, hpo_trials, sgm_epochs, sgm_steps)
    for name in finds:
        if plan[name]["mode"] == "direct":
            jobs.append(train_find_direct(model, name, data, seed=seed, epochs=sgm_epochs))
        else:
            jobs.append(sgm.train(name, seed=seed))
    sgm.second_round(finds, jobs)
    freeze(model, finds)
    reader, recording = None, None
    if record:
        with tempfile.TemporaryDirectory(prefix="nmn-rec-") as tmp:
            root = Path(workdir) / "intermediate" if workdir is not None else Path(tmp)
            reader, recording = recorded_finds(model, finds, data, ["train"], root)
    down = train_loop(
        model, data, "train", seconds, seed=seed, priors=priors, recorded=reader, lr=lr
    )
    info: dict[str, Any] = {
        "jobs": jobs,
        "downstream": down,
        "priors": priors,
        "plan": plan,
        "recorded": recording,
    }
    if workdir is not None:
        reg = Registry(Path(workdir) / "registry")
        info["registered"] = register_modules(
            model,
            reg,
            plan,
            jobs,
            seed=seed,
            data=data,
            supervision=supervision,
            metrics={"val_accuracy": down["curve"][-1][1] if down["curve"] else math.nan},
        )
    return model, info
