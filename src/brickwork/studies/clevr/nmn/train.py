"""Training modes of the NMN study: end-to-end, modular (surrogate / direct finds),
FiLM, and evaluation by program depth.

Every layout model runs through the autobatched runner. Loops are time-budgeted and
record a validation-accuracy curve against training seconds (for the cost report).

Example:
    >>> curve = [(1.0, 0.4), (2.0, 0.6), (3.0, 0.7)]
    >>> time_to_reach(curve, 0.6), time_to_reach(curve, 0.9)
    (2.0, inf)
"""

from __future__ import annotations

import copy
import logging
import math
import tempfile
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from brickwork.studies.clevr.data import ATTRIBUTES
from brickwork.studies.clevr.nmn.data import FIND_VALUES, QuestionSet, StudyData, data_device
from brickwork.studies.clevr.nmn.film import FiLM
from brickwork.studies.clevr.nmn.layouts import NMN, merge_prior
from brickwork.studies.clevr.nmn.plan import study_plan
from brickwork.studies.clevr.nmn.recorded import RecordedFinds, record_finds
from brickwork.studies.clevr.nmn.vocab import K
from brickwork.modules import Module
from brickwork.registry import Registry
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

log = logging.getLogger(__name__)
LR = 3e-3
BATCH = 64


def time_to_reach(curve: Sequence[tuple[float, float]], target: float) -> float:
    """First training time at which the accuracy curve reaches ``target``."""
    for t, acc in curve:
        if acc >= target - 1e-9:
            return t
    return math.inf


def _batches(n: int, size: int, gen: torch.Generator):
    while True:
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n - size + 1, size):
            yield perm[i:i + size]


def predict(model: nn.Module, data: StudyData, name: str, *, priors: torch.Tensor | None = None,
            batch: int = 256) -> torch.Tensor:
    """Predicted answer index for every question of a set."""
    qs = data.sets[name]
    feats = data.set_features(name)
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(qs), batch):
            sl = slice(i, i + batch)
            out.append(_forward(model, qs, feats, sl, priors).argmax(-1))
    model.train()
    return torch.cat(out)


def _forward(model: nn.Module, qs: QuestionSet, feats: torch.Tensor, idx: Any,
             priors: torch.Tensor | None) -> torch.Tensor:
    f = feats[qs.image[idx]]
    if isinstance(model, FiLM):
        return torch.log_softmax(model(f, qs.tokens[idx]), -1)
    ids = range(len(qs))[idx] if isinstance(idx, slice) else idx.tolist()
    lays = [model.layouts(qs.questions[i].program) for i in ids]
    if priors is not None:
        return model(lays, f, prior=priors[idx])
    return model(lays, f, tokens=qs.tokens[idx])


def accuracy(model: nn.Module, data: StudyData, name: str, priors: torch.Tensor | None = None) -> float:
    return float((predict(model, data, name, priors=priors) == data.sets[name].answer).float().mean())


def error_by_depth(model: nn.Module, data: StudyData, name: str,
                   priors: torch.Tensor | None = None) -> dict[int, float]:
    """Error (fraction wrong) per program depth on a question set."""
    qs = data.sets[name]
    wrong = (predict(model, data, name, priors=priors) != qs.answer).float()
    return {int(d): float(wrong[qs.depth == d].mean()) for d in qs.depth.unique()}


def train_loop(model: nn.Module, data: StudyData, train_set: str, seconds: float, *, seed: int,
               params: Sequence[nn.Parameter] | None = None,
               priors: dict[str, torch.Tensor] | None = None, eval_every: float = 10.0,
               lr: float = LR, time_offset: float = 0.0,
               recorded: RecordedFinds | None = None) -> dict[str, Any]:
    """Train for ``seconds`` on a question set; returns the val-accuracy curve and counts.

    With ``recorded`` (and cached ``priors``), training batches read the frozen find/scene
    outputs from their intermediate dataset instead of running those modules; the
    validation curve still runs the whole model."""
    torch.manual_seed(seed)
    qs, feats = data.sets[train_set], data.set_features(train_set)
    params = list(params) if params is not None else [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    tr_prior = priors.get(train_set) if priors else None
    val_prior = priors.get("val") if priors else None
    curve: list[tuple[float, float]] = []
    trained, t_train, next_eval, steps = 0, 0.0, eval_every, 0
    for idx in _batches(len(qs), BATCH, gen):
        t0 = time.perf_counter()
        if recorded is not None and tr_prior is not None:
            logp = recorded.forward(qs.split, [qs.questions[i].program for i in idx.tolist()],
                                    qs.image[idx], feats[qs.image[idx]], tr_prior[idx])
        else:
            logp = _forward(model, qs, feats, idx, tr_prior)
        loss = nn.functional.nll_loss(logp, qs.answer[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        t_train += time.perf_counter() - t0
        trained += len(idx)
        steps += 1
        if t_train >= next_eval or t_train >= seconds:
            curve.append((time_offset + t_train, accuracy(model, data, "val", val_prior)))
            next_eval += eval_every
            log.info("%s: %.0fs val acc %.3f", type(model).__name__, t_train, curve[-1][1])
        if t_train >= seconds:
            break
    return {"curve": curve, "seconds": t_train, "samples": trained, "steps": steps,
            "samples_per_second": trained / max(t_train, 1e-9)}


def train_e2e(interface: str, data: StudyData, *, seconds: float, seed: int,
              train_set: str = "train", channels: int = 32, lr: float = LR
              ) -> tuple[NMN, dict[str, Any]]:
    """End-to-end: every module and the question encoder jointly, through the runner
    (on the device of ``data``: see :func:`~brickwork.studies.clevr.nmn.data.data_on`)."""
    torch.manual_seed(seed)
    model = NMN(interface, len(data.tokenizer), channels)
    _instantiate(model, data)
    model.to(data_device(data))  # built on the CPU: the same initial weights everywhere
    return model, train_loop(model, data, train_set, seconds, seed=seed, lr=lr)


def train_film(data: StudyData, *, seconds: float, seed: int, channels: int = 32,
               lr: float = LR) -> tuple[FiLM, dict[str, Any]]:
    torch.manual_seed(seed)
    model = FiLM(len(data.tokenizer), channels).to(data_device(data))
    return model, train_loop(model, data, "train", seconds, seed=seed, lr=lr)


def _instantiate(model: NMN, data: StudyData) -> None:
    """Build every module the training programs name (so optimizers see them all)."""
    for name in ("train", "val"):
        for q in data.sets[name].questions:
            model.layouts(q.program)


# ----------------------------------------------------------------------------------
# modular training


def train_question_encoder(model: NMN, data: StudyData, *, seed: int, epochs: int = 2
                           ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Stage 1, direct supervision: the question encoder alone; returns cached prior
    logits for every question set (the intermediate dataset downstream modules read)."""
    qs = data.sets["train"]
    train = Samples({"tokens": qs.tokens, "answer": qs.answer})
    enc = model.question
    loss = lambda m, b: nn.functional.cross_entropy(m(b["tokens"]), b["answer"])  # noqa: E731
    res = fit(enc, loss, train, config=FitConfig(epochs=epochs, batch_size=128, lr=LR, seed=seed))
    enc.eval()
    with torch.no_grad():
        priors = {n: torch.cat([enc(s.tokens[i:i + 512]) for i in range(0, len(s), 512)])
                  for n, s in data.sets.items()}
    for p in enc.parameters():
        p.requires_grad_(False)
    return priors, {"seconds": res.wall_time, "steps": res.steps}


_CHAIN = frozenset({"scene", "unique", "count", "exist", "query_color", "query_shape",
                    "query_size", "query_material"})


def _chain_filters(q: Any) -> list[str] | None:
    """The find names of a single-chain question's filters (``scene → filter … →
    (unique) → count/exist/query``), in program order; None for other questions."""
    filt = [n for n in q.program if n.function.startswith("filter_")]
    others = {n.function for n in q.program if not n.function.startswith("filter_")}
    if not others <= _CHAIN:
        return None
    return [f"find[{n.value_inputs[0]}]" for n in filt]


def _find_rows(data: StudyData, value: str | None, name: str,
               context: Collection[str] = ()) -> torch.Tensor:
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
        elif own is not None and own in chain and "scene" in context \
                and all(f == own or f in context for f in chain):
            direct.append(i)
    return torch.tensor(direct if len(direct) >= 32 else using, dtype=torch.long)


def _context_masks(context: Mapping[str, nn.Module], data: StudyData, name: str,
                   rows: torch.Tensor, own: str, and_: nn.Module) -> torch.Tensor:
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
            names = ["scene"] + [f for f in (_chain_filters(qs.questions[i]) or [])
                                 if f != own and f in context]
            mask = None
            for n in names:
                if n not in cache:
                    cache[n] = torch.cat([context[n](feats[j:j + 512])
                                          for j in range(0, len(feats), 512)])
                m = cache[n][images[k]:images[k] + 1]
                mask = m if mask is None else and_(mask, m)
            out.append(mask)
    return torch.cat(out)


SGM_TOP_K = 12

#: the stage-1 learning rate where a module is trained through its SGM without a search
#: (the SGM correlation study's points, ``train_modular`` without a work folder): inside
#: :data:`SGM_SPACE`'s 4e-3–7e-3, where most trials leave the SGM plateau. The points
#: used :data:`LR` (3e-3) until the fifth full run, and many of their finds stayed on
#: the plateau (docs/nmn-study.md "The SGM correlation")
SGM_LR = 5e-3


def _attends(qs: QuestionSet, rows: torch.Tensor) -> torch.Tensor:
    """1 for the rows whose answer reads the attended object's attributes (``query_*``
    and anything else), 0 for ``count``/``exist``: the surrogate sees the attended
    features only where the question needs them, the mask's statistics always (§4.2.3,
    "fed with the attended features or the mask depending on the question type")."""
    last = [qs.questions[i].program[-1].function for i in rows.tolist()]
    return torch.tensor([0.0 if f in ("count", "exist") else 1.0 for f in last],
                        device=qs.answer.device)


def sgm_inputs(mask: torch.Tensor, features: torch.Tensor, top_k: int = SGM_TOP_K,
               attend: torch.Tensor | None = None) -> torch.Tensor:
    """What a find's surrogate head sees: a permutation-invariant summary of the mask
    (its mass and its ``top_k`` largest cells, as the count/exist heads read it) and the
    mask-attended features, ``[b, 1 + top_k + c]``; ``attend`` (``[b]``, 0 or 1) zeroes
    the attended features of the rows whose question does not read them.

    A linear head over the *flattened* mask has to learn the answer separately for every
    cell position; with answers only, the finds it trained collapsed to all-zero masks
    (docs/nmn-study.md, "Why modular trailed").

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

    def forward(self, features: torch.Tensor, prior: torch.Tensor,
                attend: torch.Tensor | None = None,
                context: torch.Tensor | None = None) -> torch.Tensor:
        z = self.head(sgm_inputs(self.mask(features, context), features, attend=attend))
        return merge_prior(self.interface, z, prior)


def train_sgm_module(model: NMN, module_name: str, data: StudyData, priors: dict[str, torch.Tensor],
                     *, seed: int, epochs: int, rank: int = 8, dropout: float = 0.2,
                     lr: float = SGM_LR, min_steps: int = 600, patience: int = 1000,
                     context: Mapping[str, nn.Module] | None = None) -> dict[str, Any]:
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
    value = None if module_name == "scene" else module_name[5:-1]
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
        cols = {"features": data.set_features(name)[qs.image[rows]],
                "prior": priors[name][rows], "answer": qs.answer[rows],
                "attend": _attends(qs, rows)}
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
    res = fit(trainee, loss, train, val=val, config=FitConfig(
        epochs=epochs, batch_size=64, lr=lr, seed=seed, max_steps=min_steps),
        callbacks=[selector])
    selector.restore()
    tracker = selector.tracker
    with torch.no_grad():
        f, a = val["features"][:256], val["attend"][:256]
        ctx = val["context"][:256] if context else None
        var = mc_dropout_variance(trainee.head, sgm_inputs(trainee.mask(f, ctx), f, attend=a),
                                  samples=8)
    out = {"module": module_name, "sgm_loss": tracker.best, "start_loss": start,
           "variance": var, "best_epoch": tracker.best_index + 1, "steps": res.steps,
           "seconds": res.wall_time, "epochs": res.epochs, "rank": rank, "dropout": dropout,
           "lr": lr, "relative_improvement": tracker.history, "rows": len(tr)}
    if context:
        out["context"] = sorted(context)
    return out


def train_find_direct(model: NMN, module_name: str, data: StudyData, *, seed: int, epochs: int
                      ) -> dict[str, Any]:
    """Second supervision setting: a find module trained directly on the executor's object
    masks (BCE with ``pos_weight``, since positives are rare); ``scene`` on the union of
    every object's mask (the colour masks cover every object)."""
    module = model.kinds.module(module_name)
    if module_name == "scene":
        y = data.find_targets["train"][:, :len(ATTRIBUTES["color"])].amax(1, keepdim=True)
    else:
        j = FIND_VALUES.index(module_name[5:-1])
        y = data.find_targets["train"][:, j:j + 1]
    pos = float(y.mean().clamp(min=1e-3))
    train = Samples({"features": data.features["train"], "y": y})
    pw = torch.tensor((1 - pos) / pos, device=y.device).clamp(max=30.0)

    def loss(m: nn.Module, b: Samples) -> torch.Tensor:
        out = m(b["features"])
        if model.interface == "typed":
            out = torch.logit(out.clamp(1e-5, 1 - 1e-5))
        return nn.functional.binary_cross_entropy_with_logits(out, b["y"], pos_weight=pw)

    res = fit(module, loss, train, config=FitConfig(epochs=epochs, batch_size=64, lr=LR, seed=seed))
    return {"module": module_name, "seconds": res.wall_time, "loss": res.final["train_loss"]}


def find_modules(model: NMN, data: StudyData) -> list[str]:
    _instantiate(model, data)
    return ["scene"] + [n for n in model.kinds.names() if n.startswith("find[")]


def freeze(model: NMN, names: Sequence[str]) -> None:
    for n in names:
        for p in model.kinds.module(n).parameters():
            p.requires_grad_(False)


#: a find whose best SGM validation loss is above this fraction of its loss before
#: training (the prior's) stayed on the SGM plateau: :func:`train_modular` trains it
#: again in a second round, with the other finds as context. In the modular typed
#: search of seed 1, finds that learned ended at 0.22–0.75 of their start,
#: ``find[small]`` at 0.88, ``find[cube]`` at 0.81 (trained again
#: beside ``small``, it learned but ``small`` lost its context and the unseen error
#: rose; docs/nmn-study.md "The second SGM round")
PLATEAU = 0.85

#: the stage-1 search space of every find module. The learning rate spans 4e-3–7e-3:
#: of the second full run's 270 trials (``find[small]`` aside), 83 % left the SGM plateau
#: at 4–7e-3, against 39 % below 2e-3, 55 % at 2–4e-3 and 56 % above 7e-3; the first
#: three full runs searched 1e-3–1e-2 (docs/nmn-study.md "Trials per module")

SGM_SPACE = SearchSpace({"rank": {"type": "categorical", "choices": [4, 8, 16]},
                         "dropout": {"type": "float", "low": 0.0, "high": 0.3},
                         "lr": {"type": "float", "low": 4e-3, "high": 7e-3, "log": True}})


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


def tune_sgm_module(model: NMN, module_name: str, data: StudyData, priors: dict[str, torch.Tensor],
                    *, seed: int, trials: int, storage: str | Path, min_steps: int = 600,
                    context: Mapping[str, nn.Module] | None = None) -> dict[str, Any]:
    """Per-module HPO (Optuna, through :func:`brickwork.training.run_search`): each trial
    trains the module through its SGM from fresh initial weights drawn from the trial's
    seed; the module keeps the weights of the trial with the lowest SGM validation loss.
    With one trial the search space's defaults are not used: Optuna samples the single
    point.

    Fresh weights per trial, not one start shared by every trial: whether a find leaves
    the SGM plateau depends much on where it starts. With a shared start, ``find[red]``
    and ``find[cylinder]`` of modular typed seed 0 stayed on it in all 3 trials, and
    again in all 5; drawing new weights per seed, a throwaway script taught ``red`` in
    5 of 6 seeds and ``cylinder`` in 3 of 3 (docs/nmn-study.md, "Trials per module").

    ``context``: as in :func:`train_sgm_module` (the search is then named
    ``sgm-<module>-context`` in ``storage``)."""
    module = model.kinds.module(module_name)
    best: dict[str, Any] = {}

    def objective(params: dict[str, Any], trial_seed: int, report: Callable[..., Any]) -> float:
        reinitialise(module, trial_seed)
        job = train_sgm_module(model, module_name, data, priors, seed=trial_seed, epochs=1,
                               min_steps=min_steps, context=context, **params)
        if job.get("skipped"):
            best.setdefault("job", job)
            return 0.0
        if not best.get("job") or job["sgm_loss"] < best["job"]["sgm_loss"]:
            best.update(job=job, state=copy.deepcopy(module.state_dict()))
        return float(job["sgm_loss"])

    title = f"sgm-{module_name}" + ("-context" if context else "")
    study = run_search(title, objective, SGM_SPACE, trials=trials, seed=seed,
                      storage=storage, direction="minimize", prune=False)
    if "state" in best:
        module.load_state_dict(best["state"])
        job = dict(best["job"])
    elif "job" in best:
        job = dict(best["job"])
    else:  # the study was complete already (resumed): retrain its best trial once
        row = min((r for r in study.trials if r["state"] == "complete"),
                  key=lambda r: (r["value"], r["index"]))
        reinitialise(module, row["seed"])
        job = train_sgm_module(model, module_name, data, priors, seed=row["seed"], epochs=1,
                               min_steps=min_steps, context=context, **study.best_params)
    job["hpo"] = {"trials": len(study.trials), "best_params": study.best_params,
                  "best_value": study.best_value,
                  "scores": [t.get("value") for t in study.trials],
                  "seconds": study.wall_time}
    job["seconds"] = study.wall_time
    return job


def registry_name(module_name: str, suffix: str) -> str:
    """``find[red]`` + ``sgm-typed-s0`` → ``find.red-sgm-typed-s0`` (a registry name).

    Example:
        >>> registry_name("compare[equal_color]", "typed-s0"), registry_name("scene", "typed-s0")
        ('compare.equal_color-typed-s0', 'scene.typed-s0')
    """
    kind, _, arg = module_name.partition("[")
    arg = arg.rstrip("]")
    return f"{kind}.{arg}-{suffix}" if arg else f"{kind}.{suffix}"


def register_modules(model: NMN, registry: Registry, plan: dict[str, dict[str, Any]],
                     jobs: Sequence[dict[str, Any]], *, seed: int, data: StudyData,
                     supervision: str, metrics: dict[str, Any]) -> list[str]:
    """Store every trained module of a modular run (weights, signature, metrics,
    lineage) in ``registry``; returns the names."""
    by_module = {j["module"]: j for j in jobs if j.get("kept", True)}  # the kept round
    names = []
    tag = f"{model.interface}-{supervision}-s{seed}"
    for module_name, entry in plan.items():
        module = model.question if module_name == "question_encoder" \
            else model.kinds.module(module_name)
        job = by_module.get(module_name, {})
        hp = {k: job[k] for k in ("rank", "dropout", "lr", "epochs") if k in job}
        m = {k: job[k] for k in ("sgm_loss", "variance", "seconds", "loss") if k in job}
        if entry["stage"] >= 2:
            m.update(metrics)
        name = registry_name(module_name, f"{entry['mode']}-{tag}")
        lineage = {"study": "clevr-nmn", "interface": model.interface,
                   "supervision": supervision, "seed": seed, "stage": entry["stage"],
                   "module": module_name}
        if job.get("context"):  # a second-round find: trained against these frozen modules
            lineage["round"] = job.get("round", 2)
            lineage["upstream"] = {n: model.kinds.module(n).fingerprint() for n in job["context"]}
        registry.put(name, module, mode=entry["mode"], hyperparameters=hp, metrics=m,
                     lineage=lineage, data_digest=data.digest)
        names.append(name)
    return names


def recorded_finds(model: NMN, finds: Sequence[str], data: StudyData, sets: Sequence[str],
                   root: str | Path) -> tuple[RecordedFinds, dict[str, Any]]:
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
    return reader, {"digests": reader.digests, "hits": hits, "modules": names,
                    "seconds": time.perf_counter() - t0}


def train_modular(interface: str, data: StudyData, *, seconds: float, seed: int, sgm_epochs: int,
                  supervision: str = "answers", hpo_trials: int = 1, channels: int = 32,
                  workdir: str | Path | None = None, record: bool = True, sgm_steps: int = 600,
                  lr: float = LR) -> tuple[NMN, dict[str, Any]]:
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
    a mask of every object answers its counts about as well (docs/nmn-study.md "Why
    some finds do not learn")."""
    torch.manual_seed(seed)
    model = NMN(interface, len(data.tokenizer), channels)
    _instantiate(model, data)
    model.to(data_device(data))
    plan = study_plan([model.layouts(q.program) for q in data.sets["train"].questions],
                      supervision=supervision)
    finds = [n for n, e in plan.items() if e["stage"] == 1 and n != "question_encoder"]
    priors, qjob = train_question_encoder(model, data, seed=seed)
    jobs: list[dict[str, Any]] = [{"module": "question_encoder", **qjob}]
    storage = (Path(workdir) / "hpo" / f"{interface}-{supervision}-s{seed}.journal"
               if workdir is not None else None)
    if storage is not None and storage.exists():
        storage.unlink()  # a new run: new weights, so old trials say nothing about them
    for name in finds:
        if plan[name]["mode"] == "direct":
            jobs.append(train_find_direct(model, name, data, seed=seed, epochs=sgm_epochs))
        elif storage is not None:
            jobs.append(tune_sgm_module(model, name, data, priors, seed=seed,
                                        trials=max(1, hpo_trials), storage=storage,
                                        min_steps=sgm_steps))
        else:
            jobs.append(train_sgm_module(model, name, data, priors, seed=seed, epochs=sgm_epochs,
                                         min_steps=sgm_steps))
    # second round: a find that stayed on its SGM plateau trains again, on the questions
    # that also filter on finds that learned (their masks ANDed into its own)
    stuck = [j["module"] for j in jobs if j["module"] in finds and j["module"] != "scene"
             and j.get("sgm_loss") is not None and j["sgm_loss"] > PLATEAU * j["start_loss"]]
    context = {n: model.kinds.module(n) for n in finds if n not in stuck}
    if stuck and "scene" in context:
        freeze(model, list(context))
        first = {j["module"]: j for j in jobs}
        for name in stuck:
            module = model.kinds.module(name)
            before = copy.deepcopy(module.state_dict())
            if storage is not None:
                job = tune_sgm_module(model, name, data, priors, seed=seed,
                                      trials=max(1, hpo_trials), storage=storage,
                                      min_steps=sgm_steps, context=context)
            else:  # a fresh start, as each trial of a search has
                reinitialise(module, seed + 7919)
                job = train_sgm_module(model, name, data, priors, seed=seed + 7919,
                                       epochs=sgm_epochs, min_steps=sgm_steps, context=context)
            # the rows differ between the rounds: compare the loss relative to each start
            ratio = first[name]["sgm_loss"] / first[name]["start_loss"]
            kept = job.get("sgm_loss") is not None and job["sgm_loss"] / job["start_loss"] < ratio
            if kept:
                first[name]["kept"] = False
            else:
                module.load_state_dict(before)
            jobs.append({**job, "round": 2, "kept": kept})
    freeze(model, finds)
    reader, recording = None, None
    if record:
        with tempfile.TemporaryDirectory(prefix="nmn-rec-") as tmp:
            root = Path(workdir) / "intermediate" if workdir is not None else Path(tmp)
            reader, recording = recorded_finds(model, finds, data, ["train"], root)
    down = train_loop(model, data, "train", seconds, seed=seed, priors=priors, recorded=reader,
                      lr=lr)
    info: dict[str, Any] = {"jobs": jobs, "downstream": down, "priors": priors, "plan": plan,
                            "recorded": recording}
    if workdir is not None:
        reg = Registry(Path(workdir) / "registry")
        info["registered"] = register_modules(
            model, reg, plan, jobs, seed=seed, data=data, supervision=supervision,
            metrics={"val_accuracy": down["curve"][-1][1] if down["curve"] else math.nan})
    return model, info


def makespan(durations: Sequence[float], workers: int) -> float:
    """Longest-processing-time schedule length of independent jobs on ``workers``.

    Example:
        >>> makespan([3, 2, 2, 1], 2)
        4.0
    """
    loads = [0.0] * max(workers, 1)
    for d in sorted(durations, reverse=True):
        i = loads.index(min(loads))
        loads[i] += d
    return max(loads)
