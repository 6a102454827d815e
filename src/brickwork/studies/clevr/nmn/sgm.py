"""Training one find module through a surrogate gradient model (SGM): its rows, inputs and loss, and
the search over starts.

The SGM stands in for the rest of the model (thesis §4.2.3): it maps the find's mask
and the image features to the answer distribution, so the find trains towards the
nearest target (the answer) without the downstream modules.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from brickwork.layouts import module_argument
from brickwork.modules import Module
from brickwork.studies.clevr.nmn.data import QuestionSet, StudyData, data_device
from brickwork.studies.clevr.nmn.layouts import NMN, merge_prior
from brickwork.studies.clevr.nmn.vocab import K
from brickwork.training import (
    Callback,
    FitConfig,
    FitState,
    Samples,
    SearchSpace,
    SurrogateHead,
    fit,
    run_search,
)
from brickwork.training.sgm import RelativeImprovement, SurrogateSpec, mc_dropout_variance

_CHAIN = frozenset(
    {
        "scene",
        "unique",
        "count",
        "exist",
        "query_color",
        "query_shape",
        "query_size",
        "query_material",
    }
)


def _chain_filters(q: Any) -> list[str] | None:
    """The find names of a single-chain question's filters (``scene → filter … →
    (unique) → count/exist/query``), in program order; None for other questions."""
    filt = [n for n in q.program if n.function.startswith("filter_")]
    others = {n.function for n in q.program if not n.function.startswith("filter_")}
    if not others <= _CHAIN:
        return None
    return [f"find[{n.value_inputs[0]}]" for n in filt]


def _find_rows(
    data: StudyData, value: str | None, name: str, context: Collection[str] = ()
) -> torch.Tensor:
    """Rows of a question set that train the SGM of ``find[value]`` (``scene`` for None).

    The surrogate sees one module's output and the cached prior only, so it is trained on
    the questions whose answer that output decides: a single chain ``scene → filter[value]
    → (unique) → count/exist/query`` (no filter at all for ``scene``) — the thesis's
    "depending on the question type". With ``context`` (names of trained, frozen
    modules), also the single chains with more filters whose other finds are all in
    ``context``: their masks AND into the module's (:func:`train_sgm_module`). Falls back
    to every question using the module when fewer than 32 such questions exist.
    """
    qs = data.sets[name]
    own = None if value is None else f"find[{value}]"
    direct, using = [], []
    for i, q in enumerate(qs.questions):
        filt = [n for n in q.program if n.function.startswith("filter_")]
        uses = value is None or any(n.value_inputs == (value,) for n in filt)
        if not uses:
            continue
        using.append(i)
        chain = _chain_filters(q)
        if chain is None:
            continue
        if chain == ([] if own is None else [own]):
            direct.append(i)
        elif (
            own is not None
            and own in chain
            and "scene" in context
            and all(f == own or f in context for f in chain)
        ):
            direct.append(i)
    return torch.tensor(direct if len(direct) >= 32 else using, dtype=torch.long)


def _context_masks(
    context: Mapping[str, nn.Module],
    data: StudyData,
    name: str,
    rows: torch.Tensor,
    own: str,
    and_: nn.Module,
) -> torch.Tensor:
    """``[len(rows), 1, h, w]``: for each row, the AND (``and_``, the layouts' ``And``) of
    the scene mask and the masks of the chain's other filters that ``context`` holds —
    what the chain ANDs into ``own``'s mask (the scene alone for a row that is not a
    single chain, which :func:`_find_rows` gives only as its fallback)."""
    qs, feats = data.sets[name], data.set_features(name)
    images = qs.image[rows]
    cache: dict[str, torch.Tensor] = {}
    out = []
    with torch.no_grad():
        for k, i in enumerate(rows.tolist()):
            names = ["scene"] + [
                f for f in (_chain_filters(qs.questions[i]) or []) if f != own and f in context
            ]
            mask = None
            for n in names:
                if n not in cache:
                    cache[n] = torch.cat(
                        [context[n](feats[j : j + 512]) for j in range(0, len(feats), 512)]
                    )
                m = cache[n][images[k] : images[k] + 1]
                mask = m if mask is None else and_(mask, m)
            assert mask is not None  # names starts with the scene
            out.append(mask)
    return torch.cat(out)


SGM_TOP_K = 12


#: the stage-1 learning rate where a module is trained through its SGM without a search
#: (the SGM correlation study's points, ``train_modular`` without a work folder): inside
#: :data:`SGM_SPACE`'s range, where most trials leave the SGM plateau
#: (docs/history/nmn-study-runs.md "The SGM correlation")
SGM_LR = 5e-3


def _attends(qs: QuestionSet, rows: torch.Tensor) -> torch.Tensor:
    """1 for the rows whose answer reads the attended object's attributes (``query_*``
    and anything else), 0 for ``count``/``exist``: the surrogate sees the attended
    features only where the question needs them, the mask's statistics always (§4.2.3,
    "fed with the attended features or the mask depending on the question type")."""
    last = [qs.questions[i].program[-1].function for i in rows.tolist()]
    return torch.tensor(
        [0.0 if f in ("count", "exist") else 1.0 for f in last], device=qs.answer.device
    )


def sgm_inputs(
    mask: torch.Tensor,
    features: torch.Tensor,
    top_k: int = SGM_TOP_K,
    attend: torch.Tensor | None = None,
) -> torch.Tensor:
    """What a find's surrogate head sees: a permutation-invariant summary of the mask
    (its mass and its ``top_k`` largest cells, as the count/exist heads read it) and the
    mask-attended features, ``[b, 1 + top_k + c]``; ``attend`` (``[b]``, 0 or 1) zeroes
    the attended features of the rows whose question does not read them.

    A linear head over the *flattened* mask has to learn the answer separately for every
    cell position; with answers only, the finds it trained collapsed to all-zero masks
    (docs/history/nmn-study.md, "Why modular trailed").

    Example:
        >>> import torch
        >>> sgm_inputs(torch.rand(2, 1, 8, 12), torch.rand(2, 5, 8, 12)).shape
        torch.Size([2, 18])
    """
    from brickwork.studies.clevr.nmn.answers import Measure

    # mask-weighted *sum* of features (not the normalised mean): a scale-free input would
    # let the mask shrink towards zero, where the sigmoid's gradient dies
    pooled = (mask.flatten(2) * features.flatten(2)).mean(-1)
    if attend is not None:
        pooled = pooled * attend.to(pooled.dtype).unsqueeze(1)
    return torch.cat([Measure.summary(mask, top_k), pooled], 1)


class _SelectBest(Callback):
    """Keeps the weights of the epoch with the lowest validation loss and stops after
    ``patience`` epochs without a relative improvement (:class:`RelativeImprovement`)."""

    def __init__(self, model: nn.Module, patience: int):
        self.model, self.tracker = model, RelativeImprovement(patience=patience, min_rel=0.005)
        self.best: dict[str, torch.Tensor] | None = None

    def on_epoch_end(self, state: FitState) -> None:
        self.tracker.update(state.history[-1]["val_loss"])
        if self.tracker.best_index == len(self.tracker.history) - 1:
            self.best = copy.deepcopy(self.model.state_dict())
        if self.tracker.stop:
            state.stop = True

    def restore(self) -> None:
        if self.best is not None:
            self.model.load_state_dict(self.best)


class _SGMTrainee(nn.Module):
    """A find (or scene) module plus its surrogate head (input: :func:`sgm_inputs`);
    ``and_`` is the layouts' ``And``, which ANDs a context mask into the module's."""

    def __init__(self, module: nn.Module, spec: SurrogateSpec, interface: str, and_: nn.Module):
        super().__init__()
        self.module, self.head, self.interface, self.and_ = module, spec.build(), interface, and_
        # the head starts by adding nothing to the prior: a random head turns the (large)
        # initial mask statistics into large random logits, and the quickest way to
        # shrink that loss is to shrink the mask to zero, where the sigmoid's gradient dies
        for m in self.head.modules():
            if isinstance(m, SurrogateHead):
                nn.init.zeros_(m.b.weight)

    def mask(self, features: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The module's mask, ANDed with ``context`` where given."""
        m = self.module(features)
        return m if context is None else self.and_(m, context)

    def forward(
        self,
        features: torch.Tensor,
        prior: torch.Tensor,
        attend: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        z = self.head(sgm_inputs(self.mask(features, context), features, attend=attend))
        return merge_prior(self.interface, z, prior)


def train_sgm_module(
    model: NMN,
    module_name: str,
    data: StudyData,
    priors: dict[str, torch.Tensor],
    *,
    seed: int,
    epochs: int,
    rank: int = 8,
    dropout: float = 0.2,
    lr: float = SGM_LR,
    min_steps: int = 600,
    patience: int = 1000,
    context: Mapping[str, nn.Module] | None = None,
) -> dict[str, Any]:
    """Train one find/scene module through its surrogate gradient module (§4.2.3) on the
    training questions that use it, answers only, with the cached prior; up to
    ``min_steps`` optimizer steps, stopped after ``patience`` epochs without a relative
    improvement of the SGM validation loss, and the best epoch's weights kept (model
    selection by relative improvement). ``lr`` defaults to :data:`SGM_LR`, inside the
    searched range.

    ``context``: trained, frozen modules by name (``scene`` among them). The SGM then
    also trains on the single-chain questions that filter on other finds of ``context``
    too, the module's mask ANDed with theirs as the layout does (:func:`_find_rows`):
    constraints a single-filter question leaves open (:func:`train_modular`'s second
    round). The result's ``start_loss`` is the SGM validation loss before training (the
    prior's, since the head starts at zero): a module whose ``sgm_loss`` stays near it
    did not leave the plateau."""
    value = module_argument(module_name)
    module = model.kinds.module(module_name)
    channels = data.features["train"].shape[1]
    spec = SurrogateSpec(1 + SGM_TOP_K + channels, K, rank=rank, dropout=dropout)
    torch.manual_seed(seed)
    and_ = model.kinds.module("And")
    trainee = _SGMTrainee(module, spec, model.interface, and_).to(data_device(data))
    names = set(context or {})
    tr, va = _find_rows(data, value, "train", names), _find_rows(data, value, "val", names)
    if len(tr) == 0 or len(va) == 0:
        return {"module": module_name, "skipped": True, "seconds": 0.0}

    def samples(name: str, rows: torch.Tensor) -> Samples:
        qs = data.sets[name]
        cols = {
            "features": data.set_features(name)[qs.image[rows]],
            "prior": priors[name][rows],
            "answer": qs.answer[rows],
            "attend": _attends(qs, rows),
        }
        if context:
            cols["context"] = _context_masks(context, data, name, rows, module_name, and_)
        return Samples(cols)

    train, val = samples("train", tr), samples("val", va)
    epochs = max(epochs, math.ceil(min_steps * 64 / len(tr)))  # max_steps caps it

    def loss(m: nn.Module, b: Samples) -> torch.Tensor:
        ctx = b["context"] if context else None
        return nn.functional.nll_loss(m(b["features"], b["prior"], b["attend"], ctx), b["answer"])

    with torch.no_grad():
        trainee.eval()
        start = float(loss(trainee, val))
        trainee.train()
    selector = _SelectBest(trainee, patience=patience)
    cpu = time.process_time()
    res = fit(
        trainee,
        loss,
        train,
        val=val,
        config=FitConfig(epochs=epochs, batch_size=64, lr=lr, seed=seed, max_steps=min_steps),
        callbacks=[selector],
    )
    cpu = time.process_time() - cpu
    selector.restore()
    tracker = selector.tracker
    with torch.no_grad():
        f, a = val["features"][:256], val["attend"][:256]
        ctx = val["context"][:256] if context else None
        var = mc_dropout_variance(
            trainee.head, sgm_inputs(trainee.mask(f, ctx), f, attend=a), samples=8
        )
    out: dict[str, Any] = {
        "module": module_name,
        "sgm_loss": tracker.best,
        "start_loss": start,
        "variance": var,
        "best_epoch": tracker.best_index + 1,
        "steps": res.steps,
        "seconds": cpu,
        "wall_seconds": res.wall_time,
        "epochs": res.epochs,
        "rank": rank,
        "dropout": dropout,
        "lr": lr,
        "relative_improvement": tracker.history,
        "rows": len(tr),
    }
    if context:
        out["context"] = sorted(context)
    return out


#: the stage-1 search space of every find module; the learning rate's range is where
#: most trials left the SGM plateau (docs/history/nmn-study-runs.md "Trials per module")
SGM_SPACE = SearchSpace(
    {
        "rank": {"type": "categorical", "choices": [4, 8, 16]},
        "dropout": {"type": "float", "low": 0.0, "high": 0.3},
        "lr": {"type": "float", "low": 4e-3, "high": 7e-3, "log": True},
    }
)


def reinitialise(module: Module, seed: int) -> None:
    """Give ``module`` the initial weights a new module of its kind and configuration
    gets under ``seed`` (in place, so the layouts that hold it see them).

    Example:
        >>> from brickwork.studies.clevr.nmn.modules import Find
        >>> f = Find(channels=8)
        >>> reinitialise(f, 3); a = f.w1.detach().clone()
        >>> reinitialise(f, 3); bool((f.w1 == a).all())
        True
    """
    torch.manual_seed(seed)
    fresh = type(module)(**module.config)
    module.load_state_dict(fresh.state_dict())


def tune_sgm_module(
    model: NMN,
    module_name: str,
    data: StudyData,
    priors: dict[str, torch.Tensor],
    *,
    seed: int,
    trials: int,
    storage: str | Path,
    min_steps: int = 600,
    context: Mapping[str, nn.Module] | None = None,
) -> dict[str, Any]:
    """Per-module HPO (Optuna, through :func:`brickwork.training.run_search`): each trial
    trains the module through its SGM from fresh initial weights drawn from the trial's
    seed; the module keeps the weights of the trial with the lowest SGM validation loss.
    With one trial the search space's defaults are not used: Optuna samples the single
    point.

    Fresh weights per trial, not one start shared by every trial: whether a find leaves
    the SGM plateau depends much on where it starts (docs/history/nmn-study-runs.md
    "Trials per module").

    ``context``: as in :func:`train_sgm_module` (the search is then named
    ``sgm-<module>-context`` in ``storage``)."""
    module = model.kinds.module(module_name)
    best: dict[str, Any] = {}

    def objective(params: dict[str, Any], trial_seed: int, report: Callable[..., Any]) -> float:
        reinitialise(module, trial_seed)
        job = train_sgm_module(
            model,
            module_name,
            data,
            priors,
            seed=trial_seed,
            epochs=1,
            min_steps=min_steps,
            context=context,
            **params,
        )
        if job.get("skipped"):
            best.setdefault("job", job)
            return 0.0
        if not best.get("job") or job["sgm_loss"] < best["job"]["sgm_loss"]:
            best.update(job=job, state=copy.deepcopy(module.state_dict()))
        return float(job["sgm_loss"])

    title = f"sgm-{module_name}" + ("-context" if context else "")
    cpu = time.process_time()
    study = run_search(
        title,
        objective,
        SGM_SPACE,
        trials=trials,
        seed=seed,
        storage=storage,
        direction="minimize",
        prune=False,
    )
    if "state" in best:
        module.load_state_dict(best["state"])
        job = dict(best["job"])
    elif "job" in best:
        job = dict(best["job"])
    else:  # the study was complete already (resumed): retrain its best trial once
        row = min(
            (r for r in study.trials if r["state"] == "complete"),
            key=lambda r: (r["value"], r["index"]),
        )
        reinitialise(module, row["seed"])
        job = train_sgm_module(
            model,
            module_name,
            data,
            priors,
            seed=row["seed"],
            epochs=1,
            min_steps=min_steps,
            context=context,
            **study.best_params,
        )
    job["hpo"] = {
        "trials": len(study.trials),
        "best_params": study.best_params,
        "best_value": study.best_value,
        "scores": [t.get("value") for t in study.trials],
        "seconds": time.process_time() - cpu,
        "wall_seconds": study.wall_time,
    }
    job["seconds"] = job["hpo"]["seconds"]
    return job
