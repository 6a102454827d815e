"""Isolated training of one module: a JSON job in, a JSON result out (the executor's unit).

A :class:`ModuleJob` names the module (registered kind + config), the table it trains
on (a dataset file or an intermediate dataset), which columns feed which ports, the
target column, the mode (``direct``, ``cached`` or ``surrogate``), hyperparameters, an
optional search space and the seed. :func:`run_job` runs it in any process: optional
HPO (Optuna, journal storage in the job's folder), then the final fit with a checkpoint
every epoch, then saves the module. Everything it writes is safetensors or JSON, and a
finished job (``result.json``) is skipped when run again, so a killed run resumes — but
only when its key matches (:func:`job_key`: data, seed, hyperparameters, search space,
trials, upstream fingerprints, kind/config and code revision). A job folder whose
stored key differs is cleared and trained again, and that is logged. Paths stored in
the folder are relative to it, so a moved folder stays valid. Every job folder gets
``metrics.jsonl`` (one JSON line per epoch of the final fit).

Example:
    >>> import tempfile, torch
    >>> from brickwork.training import Samples
    >>> from brickwork.training.fixtures import ToyClassifier
    >>> work = tempfile.mkdtemp()
    >>> x = torch.randn(256, 4); y = (x[:, 0] > 0).long()
    >>> _ = Samples({"x": x, "y": y}).save(f"{work}/data.safetensors")
    >>> job = ModuleJob(name="cls", kind="toy_classifier", config={"dim": 4, "classes": 2},
    ...                 imports=("brickwork.training.fixtures",), mode="direct",
    ...                 data=f"{work}/data.safetensors", inputs={"x": "x"}, target="y",
    ...                 hparams={"epochs": 20, "lr": 0.05}, seed=0, workdir=f"{work}/cls")
    >>> result = run_job(job.to_json())
    >>> result["metrics"]["val_score"] > 0.9, result["resumed"]
    (True, False)
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
import json
import logging
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, final

import torch
from safetensors.torch import save as st_save

from brickwork._version import __version__
from brickwork.errors import TrainingError
from brickwork.modules import (
    Module,
    atomic_write_bytes,
    atomic_write_json,
    build_kind,
    kind_info,
    load_module,
    save_module,
)
from brickwork.training.cache import IntermediateDataset
from brickwork.training.callbacks import EarlyStopping, LogMetrics, ProgressBar, TensorBoard
from brickwork.training.fit import FitConfig, FitResult, fit
from brickwork.training.hpo import SearchSpace, run_search
from brickwork.training.losses import resolve_callable, type_loss, type_score
from brickwork.training.samples import Samples
from brickwork.training.seeding import derive_seed, seed_everything
from brickwork.training.surrogate import RoutedSurrogateHead

log = logging.getLogger("brickwork.training")

MODES = ("direct", "cached", "surrogate")
_FIT_KEYS = (
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "max_steps",
    "grad_clip",
    "optimizer",
    "momentum",
    "scheduler",
    "scheduler_kwargs",
    "max_time",
    "keep_best",
    "keep_best_mode",
)
#: job fields that say where or how visibly a job runs, not what it trains: left out of its key
_NOT_KEYED = ("workdir", "data", "storage", "progress", "tensorboard", "device", "imports")
DEFAULT_HPARAMS = {
    "epochs": 10,
    "batch_size": 64,
    "lr": 3e-3,
    "weight_decay": 0.0,
    "patience": 5,
    "pos_weight": None,
    "rank": 8,
    "dropout": 0.1,
    "starts": 1,
    "plateau": 0.85,
    "second_round": True,
    "summary": "auto",
    "top_k": 4,
    "sparsity": 0.0,
    "rounds": 3,
    "prior": None,
}
#: what the surrogate hyperparameters mean (jobs in ``surrogate`` mode):
#:
#: - ``rank``, ``dropout``: the SGM head's inner rank and input dropout;
#: - ``summary``, ``top_k``: what the head reads of the output (:func:`surrogate_features`);
#: - ``starts``: fresh starts (new initial weights each) with the final hyperparameters;
#:   the module keeps the one with the lowest SGM validation loss (whether a module
#:   leaves the SGM plateau depends much on where it starts);
#: - ``plateau``: a module whose best SGM validation loss stays above ``plateau`` × its
#:   loss before training (the routes' answer prior) stayed on the SGM plateau;
#: - ``second_round``: such a module trains again once its stage is done, with the
#:   stage's modules that learned as context (``train_plan``); ``rounds``: the most
#:   rounds in all (a round's learners are the next round's context);
#: - ``prior``: a data column of answer-prior logits (e.g. a question encoder's, cached)
#:   added to the head's output, as the thesis's NMN adds the prior to the evidence;
#:   without one the head starts from each route's class frequencies;
#: - ``sparsity``: weight of the mean absolute output added to the SGM loss (0: none).
#:   Answers alone do not tell a mask from its complement (``count`` of the cells that are
#:   *not* red tells the red count as well); a small weight prefers the mask that selects.
SURROGATE_HPARAMS = (
    "rank",
    "dropout",
    "starts",
    "plateau",
    "second_round",
    "rounds",
    "summary",
    "top_k",
    "sparsity",
    "prior",
)


@final
@dataclass(frozen=True)
class ModuleJob:
    """Everything needed to train one module in isolation, as JSON.

    Attributes:
        name: the module name in the plan (``find[red]``).
        kind: a registered module kind; ``config`` rebuilds it.
        config: the module's config.
        imports: Python modules to import first (they register the kind).
        mode: ``direct`` / ``cached`` (loss on the module's output) or ``surrogate``.
        data: a :class:`Samples` file or an :class:`IntermediateDataset` folder.
        inputs: input port -> column of the table.
        target: the target column.
        output: the output port trained (default: the only one).
        context: a column given to the surrogate head as context (e.g. image features).
        classes: number of target classes for a surrogate head (default: from the data).
        hparams: hyperparameters (see ``DEFAULT_HPARAMS``).
        search: optional search space (``SearchSpace`` JSON) for HPO.
        trials: HPO trials (0: no search).
        storage: Optuna storage (default: a journal file in ``workdir``).
        seed: the job's seed.
        workdir: folder for checkpoints, the journal, the saved module and result.json.
        val_fraction: held-out share of the table for validation and HPO.
        progress: show a tqdm bar of epochs.
        data_digest: digest of the training data (recorded in the result).
        tensorboard: write TensorBoard scalars of the final fit to ``workdir/tensorboard``
            (needs the optional ``tensorboard`` package).
        device: where the module trains (``"cpu"``, ``"cuda:1"``; default: CPU). It is
            initialised on the CPU from the seed and then moved, so every device starts
            from the same weights; the saved weights are always CPU tensors. Not part of
            the job's key.
        upstream: fingerprints of the modules that produced the table (part of the key).
        table_digest: the content key of the table (an intermediate dataset's key digest).
        split_column: a 0/1 column of the table (1: validation row) that replaces the
            random ``val_fraction`` split, so a run-level split holds whole samples out.
        loss: an importable ``"pkg.mod:fn"`` replacing the default loss;
            ``fn(pred, target) -> scalar tensor``.
        metric: an importable ``"pkg.mod:fn"`` replacing the default validation score;
            ``fn(pred, target) -> float``, higher is better (HPO and early stopping use it).
        routes: surrogate mode: the routes of the table's ``route`` column
            (:func:`~brickwork.training.surrogate_table.surrogate_table`): the ops kept
            between the module's output and its SGM head, with ``ctx.<step>.<port>``
            columns as their other inputs. Empty: one route, no ops.
        round: surrogate mode: 1, or 2 for the second round of a module that stayed on
            its SGM plateau (trained with context).
    """

    name: str
    kind: str
    config: Mapping[str, Any]
    mode: str
    data: str
    inputs: Mapping[str, str]
    target: str
    workdir: str
    imports: tuple[str, ...] = ()
    output: str | None = None
    context: str | None = None
    classes: int | None = None
    hparams: Mapping[str, Any] = field(default_factory=dict)
    search: Mapping[str, Any] | None = None
    trials: int = 0
    storage: str | None = None
    seed: int = 0
    val_fraction: float = 0.2
    progress: bool = False
    data_digest: str = ""
    tensorboard: bool = False
    device: str | None = None
    upstream: Mapping[str, str] = field(default_factory=dict)
    table_digest: str = ""
    split_column: str | None = None
    loss: str | None = None
    metric: str | None = None
    routes: tuple[Mapping[str, Any], ...] = ()
    round: int = 1

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise TrainingError(f"job {self.name!r}: mode {self.mode!r} is not one of {MODES}")

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(json.dumps(asdict(self)))
        return result

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModuleJob:
        d = dict(data)
        d["imports"] = tuple(d.get("imports", ()))
        d["routes"] = tuple(d.get("routes", ()))
        try:
            return cls(**d)
        except TypeError as exc:
            raise TrainingError(f"job description is malformed: {exc}") from None


def code_revision(kind: str) -> dict[str, str]:
    """The code a kind's weights come from: brickwork's version and a digest of the source
    file that defines the kind (a changed file means a changed key).

    Example:
        >>> rev = code_revision("Sum")
        >>> sorted(rev), len(rev["source_sha256"])
        (['brickwork', 'module', 'source_sha256'], 64)
    """
    info = kind_info(kind)
    digest = ""
    try:
        path = inspect.getsourcefile(info.factory)
        if path:
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except (OSError, TypeError):  # built-in or generated factory: no source file
        digest = ""
    return {"brickwork": __version__, "module": info.module_path, "source_sha256": digest}


def job_key(job: ModuleJob) -> dict[str, Any]:
    """What a job's result depends on: every field but where/how it runs (``workdir``,
    ``data`` path, ``device``, progress, ...) plus the kind's code revision, with the
    hyperparameters completed by the defaults. Two jobs with equal keys train equal
    weights (on one device).

    Example:
        >>> a = ModuleJob(name="s", kind="Sum", config={"axes": "b 2"}, mode="direct",
        ...               data="a.safetensors", inputs={}, target="y", workdir="w1")
        >>> job_key(a) == job_key(dataclasses.replace(a, workdir="w2", data="b.safetensors"))
        True
        >>> job_key(a) == job_key(dataclasses.replace(a, seed=1))
        False
    """
    key = {k: v for k, v in job.to_json().items() if k not in _NOT_KEYED}
    key["hparams"] = {k: v for k, v in {**DEFAULT_HPARAMS, **dict(job.hparams)}.items()}
    if not (job.trials and job.search):
        key["search"], key["trials"] = None, 0
    key["code"] = code_revision(job.kind)
    result: dict[str, Any] = json.loads(json.dumps(key, sort_keys=True, default=str))
    return result


def key_digest(key: Mapping[str, Any]) -> str:
    """SHA-256 of a key's canonical JSON."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


_ABSENT = object()


def _short(value: Any) -> str:
    if value is _ABSENT:
        return "(not set)"
    text = json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, str) and len(value) >= 32:
        return value[:8] + "…"
    return text if len(text) <= 60 else text[:57] + "..."


def key_changes(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``"path: old -> new"`` for every leaf that differs between two keys.

    Example:
        >>> key_changes({"seed": 0, "hparams": {"lr": 0.1}}, {"seed": 1, "hparams": {}})
        ['hparams.lr: 0.1 -> (not set)', 'seed: 0 -> 1']
    """
    out: list[str] = []
    for k in sorted(set(old) | set(new), key=str):
        path = f"{prefix}{k}"
        a, b = old.get(k, _ABSENT), new.get(k, _ABSENT)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out.extend(key_changes(a, b, path + "."))
        elif a != b:
            out.append(
                f"{path.replace('_', ' ') if not prefix else path}: {_short(a)} -> {_short(b)}"
            )
    return out


def resolve_function(spec: str, what: str) -> Callable[..., Any]:
    """Import ``"pkg.mod:fn"`` (or ``"pkg.mod.fn"``) and return the callable.

    Example:
        >>> resolve_function("math:sqrt", "loss")(4.0)
        2.0
    """
    return resolve_callable(spec, where=what)


def load_table(path: str) -> Samples:
    """A job's table: a Samples file or an intermediate-dataset folder."""
    p = Path(path)
    if p.is_dir():
        return IntermediateDataset(p).load()
    return Samples.load(p)


class _Trainable(torch.nn.Module):
    """The module plus, in surrogate mode, its head and the ops of its routes (one set
    of parameters to fit; the ops have none)."""

    module: Module
    head: torch.nn.Module | None

    def __init__(
        self,
        module: Module,
        head: torch.nn.Module | None,
        ops: Sequence[Sequence[Module]] = (),
    ):
        super().__init__()
        self.module = module
        self.head = head
        self.ops = torch.nn.ModuleList(torch.nn.ModuleList(r) for r in ops)
        #: the same ops per route, typed (``self.ops`` registers them for ``.to``)
        self.route_ops: list[list[Module]] = [list(r) for r in ops]


def _answer_prior(job: ModuleJob, table: Samples, routes: int, classes: int) -> torch.Tensor:
    """Per route, the log class frequencies of the target (add-one smoothed): what the
    SGM predicts before it reads the module's output."""
    target = table[job.target].reshape(-1).long()
    route = table["route"].reshape(-1).long() if "route" in set(table) else torch.zeros_like(target)
    counts = torch.ones(routes, classes)
    counts.index_put_(
        (route.cpu(), target.cpu().clamp(0, classes - 1)), torch.ones(len(target)), accumulate=True
    )
    return (counts / counts.sum(1, keepdim=True)).log()


def _build(
    job: ModuleJob, hp: Mapping[str, Any], table: Samples, seed: int, train: Samples | None = None
) -> _Trainable:
    seed_everything(seed)
    module = build_kind(job.kind, dict(job.config))
    device = torch.device(job.device) if job.device else None
    head = None
    ops: list[list[Module]] = []
    if job.mode == "surrogate":
        out_port = job.output or next(iter(module.outputs))
        with torch.no_grad():
            probe = module.call_ports(**{p: table[c][:2] for p, c in job.inputs.items()})[out_port]
        target = table[job.target]
        if target.is_floating_point():
            out_features = int(target[0].numel())
        else:
            out_features = job.classes or int(target.max()) + 1
        ctx = int(table[job.context].shape[1]) if job.context else 0
        routes = max(1, len(job.routes))
        summary, top_k = str(hp.get("summary", "auto")), int(hp.get("top_k", 4))
        from brickwork.training.surrogate import surrogate_features

        width = int(surrogate_features(probe.float(), summary, top_k)[0].numel())
        head = RoutedSurrogateHead(
            width,
            out_features,
            routes,
            rank=int(hp["rank"]),
            dropout=float(hp["dropout"]),
            summary=summary,
            top_k=top_k,
            context_channels=ctx,
        )
        if not target.is_floating_point() and not hp.get("prior"):
            with torch.no_grad():
                head.c.copy_(
                    _answer_prior(job, train if train is not None else table, routes, out_features)
                )
        ops = [
            [build_kind(s["kind"], dict(s["config"])) for s in r.get("steps", ())]
            for r in job.routes
        ]
    model = _Trainable(module, head, ops)
    return model.to(device) if device is not None else model


def _objective(job: ModuleJob, hp: Mapping[str, Any], penalties: bool = True) -> tuple[Any, Any]:
    custom_loss = resolve_function(job.loss, "loss") if job.loss else None
    custom_metric = resolve_function(job.metric, "metric") if job.metric else None
    sparsity = float(hp.get("sparsity", 0.0) or 0.0) if job.mode == "surrogate" else 0.0
    device = torch.device(job.device) if job.device else None

    def col(batch: Samples, name: str) -> torch.Tensor:
        t = batch[name]
        return t.to(device) if device is not None and t.device != device else t

    def along_routes(model: _Trainable, out: torch.Tensor, batch: Samples) -> torch.Tensor:
        """The output passed through the ops of each row's route, context from the table."""
        if not any(len(r) for r in model.route_ops):
            return out
        route = col(batch, "route").reshape(-1)
        merged = out.clone()
        for r, ops in enumerate(model.route_ops):
            if not len(ops):
                continue
            rows = torch.nonzero(route == r).flatten()
            if len(rows) == 0:
                continue
            v = out[rows]
            for i, (op, step) in enumerate(zip(ops, job.routes[r]["steps"])):
                args = {p: col(batch, f"ctx.{i}.{p}")[rows] for p in step["others"]}
                v = op.call_ports(**{step["port"]: v, **args})[next(iter(op.outputs))]
            merged[rows] = v
        return merged

    def forward(model: _Trainable, batch: Samples) -> tuple[torch.Tensor, Any, torch.Tensor]:
        """(prediction, its declared type or None for a surrogate head, the module's output)"""
        module = model.module
        port = job.output or next(iter(module.outputs))
        out = module.call_ports(**{p: col(batch, c) for p, c in job.inputs.items()})[port]
        if model.head is not None:
            ctx = col(batch, job.context) if job.context else None
            route = (
                col(batch, "route")
                if "route" in set(batch)
                else torch.zeros(len(out), dtype=torch.int64, device=out.device)
            )
            pred = model.head(along_routes(model, out, batch), route, ctx)
            if hp.get("prior"):  # an answer prior (logits) from the data, added (§4.3)
                pred = pred + col(batch, "prior")
            return pred, None, out
        return out, module.outputs[port], out

    def loss_fn(model: _Trainable, batch: Samples) -> torch.Tensor:
        pred, t, out = forward(model, batch)
        target = col(batch, job.target)
        if custom_loss is not None:
            return custom_loss(pred, target)  # type: ignore[no-any-return]
        if t is None:
            if target.is_floating_point():
                loss = torch.nn.functional.mse_loss(pred, target.reshape(pred.shape))
            else:
                loss = torch.nn.functional.cross_entropy(pred, target)
            return loss + sparsity * out.abs().mean() if penalties and sparsity else loss
        return type_loss(t, pred, target, hp.get("pos_weight"))

    def evaluate(model: _Trainable, data: Samples) -> dict[str, float]:
        pred, t, _ = forward(model, data)
        target = col(data, job.target)
        if custom_metric is not None:
            return {"val_score": float(custom_metric(pred, target))}
        if t is None:
            if target.is_floating_point():
                score = -float(torch.nn.functional.mse_loss(pred, target.reshape(pred.shape)))
            else:
                score = float((pred.argmax(-1) == target).float().mean())
        else:
            score = type_score(t, pred, target)
        return {"val_score": score}

    return loss_fn, evaluate


class _Rows(NamedTuple):
    """A job's data: its training rows, its validation rows and the whole table."""

    train: Samples
    val: Samples
    table: Samples


def _split(job: ModuleJob, table: Samples) -> _Rows:
    """The job's training and validation rows: by its split column (0: training) when it
    names one and both sides have rows, else a random split seeded by the job."""
    if job.split_column:
        if job.split_column not in set(table):
            raise TrainingError(
                f"job {job.name!r}: split column {job.split_column!r} is not in "
                f"the table {job.data} (columns: {sorted(table)})"
            )
        flags = table[job.split_column].reshape(len(table))
        train = table.select(torch.nonzero(flags == 0).flatten())
        val = table.select(torch.nonzero(flags != 0).flatten())
        if len(train) and len(val):
            return _Rows(train, val, table)
    train, val = table.split(1.0 - job.val_fraction, seed=derive_seed(job.seed, job.name, "split"))
    return _Rows(train, val, table)


def _fit_once(
    job: ModuleJob,
    hp: Mapping[str, Any],
    rows: _Rows,
    seed: int,
    *,
    report: Any = None,
    ckpt: Path | None = None,
    logs: Path | None = None,
) -> tuple[_Trainable, FitResult]:
    """One fit of ``job`` with hyperparameters ``hp``. ``logs``: the job folder that
    gets the progress bar (when the job asks), TensorBoard (likewise) and
    ``metrics.jsonl``; ``None`` fits silently (HPO trials, later starts)."""
    train, val, table = rows
    model = _build(job, hp, table, seed, train)
    loss_fn, evaluate = _objective(job, hp)
    known = {f.name for f in dataclasses.fields(FitConfig)}
    fit_hp = {k: hp[k] for k in _FIT_KEYS if k in known and k in hp and hp[k] is not None}
    if job.mode == "surrogate":  # model selection on the SGM's validation loss
        fit_hp.setdefault("keep_best", "val_loss")
        stopping = EarlyStopping("val_loss", patience=int(hp["patience"]), mode="min")
    else:
        stopping = EarlyStopping("val_score", patience=int(hp["patience"]), mode="max")
    cfg = FitConfig(**fit_hp, seed=seed)
    callbacks: list[Any] = [stopping, LogMetrics(job.name)]
    if logs is not None and job.progress:
        callbacks.append(ProgressBar(desc=job.name))
    if logs is not None and job.tensorboard:
        callbacks.append(TensorBoard(logs / "tensorboard"))
    on_epoch = (lambda epoch, rec: report(epoch, rec["val_score"])) if report else None
    result = fit(
        model,
        loss_fn,
        train,
        val=val,
        evaluate=evaluate,
        config=cfg,
        callbacks=callbacks,
        checkpoint_dir=ckpt,
        resume=ckpt is not None,
        on_epoch=on_epoch,
        device=job.device,
        metrics_path=logs / "metrics.jsonl" if logs is not None else None,
    )
    return model, result


def sgm_loss(job: ModuleJob, hp: Mapping[str, Any], model: torch.nn.Module, data: Samples) -> float:
    """The SGM's loss on ``data`` (eval mode, no gradient)."""
    loss_fn, _ = _objective(job, hp, penalties=False)
    was = model.training
    model.eval()
    with torch.no_grad():
        total, n = 0.0, 0
        for start in range(0, len(data), 1024):
            part = data.select(torch.arange(start, min(start + 1024, len(data))))
            total += float(loss_fn(model, part)) * len(part)
            n += len(part)
    model.train(was)
    return total / max(n, 1)


def _surrogate_starts(
    job: ModuleJob, hp: Mapping[str, Any], rows: _Rows, seed: int, work: Path
) -> tuple[_Trainable, FitResult, dict[str, Any]]:
    """``hp["starts"]`` fits from fresh initial weights; the one with the lowest SGM
    validation loss wins. Returns it with the plateau measure: ``start_loss`` (the SGM
    before training: the routes' answer prior, since the head starts adding nothing),
    ``sgm_loss`` (its best epoch), their ``ratio`` and ``plateau`` (ratio above
    ``hp["plateau"]``)."""
    starts = int(hp.get("starts", 1))
    if starts < 1:
        raise TrainingError(f"job {job.name!r}: starts must be >= 1, got {starts}")
    best: tuple[float, _Trainable, FitResult, float] | None = None
    tried: list[dict[str, float]] = []
    for i in range(starts):
        s = seed if i == 0 else derive_seed(seed, "start", i)
        start_loss = sgm_loss(job, hp, _build(job, hp, rows.table, s, rows.train), rows.val)
        model, res = _fit_once(
            job,
            hp,
            rows,
            s,
            ckpt=work / "checkpoint" / f"start-{i}",
            logs=work if i == 0 else None,
        )
        loss = sgm_loss(job, hp, model, rows.val)  # the best epoch's weights (keep_best)
        tried.append({"seed": s, "start_loss": start_loss, "sgm_loss": loss})
        if best is None or loss < best[0]:
            best = (loss, model, res, start_loss)
    assert best is not None
    loss, model, res, start_loss = best
    ratio = loss / start_loss if start_loss > 0 else 1.0
    return (
        model,
        res,
        {
            "start_loss": start_loss,
            "sgm_loss": loss,
            "ratio": ratio,
            "plateau": ratio > float(hp.get("plateau", 0.85)),
            "starts": tried,
            "rows": len(rows.train) + len(rows.val),
            "routes": max(1, len(job.routes)),
        },
    )


_JOB_FILES = (
    "result.json",
    "hpo.journal",
    "module",
    "checkpoint",
    "surrogate_head.safetensors",
    "metrics.jsonl",
    "tensorboard",
)


def _clear(work: Path) -> None:
    for name in _JOB_FILES:
        p = work / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def _stored_key(work: Path) -> dict[str, Any] | None:
    try:
        stored = json.loads((work / "job.json").read_text())
        return dict(stored["key"]) if isinstance(stored, dict) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _check_folder(job: ModuleJob, work: Path, key: Mapping[str, Any]) -> dict[str, Any] | None:
    """The stored result when the folder holds this very job finished; else clear what
    another job (other key) left there and return None."""
    stored = _stored_key(work)
    if stored is not None and stored != key:
        changes = key_changes(stored, key)
        log.warning(
            "job %s: %s holds a job trained with other settings (%s); training again from scratch",
            job.name,
            work,
            "; ".join(changes[:6]) or "key changed",
        )
        _clear(work)
        return None
    done = work / "result.json"
    if (
        stored is None
        and any((work / n).exists() for n in _JOB_FILES if n != "result.json")
        and not done.exists()
    ):
        log.warning(
            "job %s: %s holds an unfinished job without its key (job.json); it cannot "
            "be verified, starting it afresh",
            job.name,
            work,
        )
        _clear(work)
        return None
    if not done.exists():
        return None
    if stored is None:
        log.warning(
            "job %s: %s holds a result without its key (job.json); it cannot be "
            "verified, training again",
            job.name,
            work,
        )
        _clear(work)
        return None
    try:
        result = json.loads(done.read_text())
        module = load_module(work / "module")
    except Exception:  # damaged result: redo the job
        log.warning("job %s: stored result unusable, training again", job.name)
        _clear(work)
        return None
    if result.get("fingerprint") != module.fingerprint():
        log.warning(
            "job %s: the weights in %s are not the ones its result.json describes; training again",
            job.name,
            work / "module",
        )
        _clear(work)
        return None
    return {**result, "module_dir": "module", "skipped": True}


def run_job(job_json: Mapping[str, Any]) -> dict[str, Any]:
    """Run one :class:`ModuleJob` (given as JSON) and return its result as JSON.

    Safe to call again after a crash: a finished job returns its stored result, an
    unfinished HPO study continues from its journal, the final fit from its checkpoint —
    when the folder's stored key (``job.json``) equals this job's :func:`job_key`.
    Otherwise the folder is cleared and the job trains from scratch (logged).
    ``result["module_dir"]`` is relative to the job folder (``"module"``).
    """
    torch.set_num_threads(1)
    job = ModuleJob.from_json(job_json)
    for name in job.imports:
        importlib.import_module(name)
    work = Path(job.workdir)
    key = job_key(job)
    if work.is_dir():
        stored = _check_folder(job, work, key)
        if stored is not None:
            return stored
    elif work.exists():
        raise TrainingError(
            f"job {job.name!r}: {work} is a file, expected a job folder; "
            "remove it or choose another run folder"
        )
    work.mkdir(parents=True, exist_ok=True)
    atomic_write_json(work / "job.json", {"key": key, "key_digest": key_digest(key)})
    done = work / "result.json"
    t0 = time.perf_counter()
    rows = _split(job, load_table(job.data))
    hp: dict[str, Any] = {**DEFAULT_HPARAMS, **dict(job.hparams)}
    study_json = None
    hpo_time = 0.0
    if job.trials and job.search:
        space = SearchSpace(job.search)

        def objective(params: dict[str, Any], seed: int, report: Any) -> float:
            _, res = _fit_once(job, {**hp, **params}, rows, seed, report=report)
            if job.mode == "surrogate":  # the SGM's validation loss, negated (higher is better)
                return -float(min(r["val_loss"] for r in res.history))
            return float(max(r["val_score"] for r in res.history))

        study = run_search(
            f"{job.name}",
            objective,
            space,
            trials=job.trials,
            seed=derive_seed(job.seed, job.name, "hpo"),
            storage=job.storage or str(work / "hpo.journal"),
        )
        hp.update(study.best_params)
        study_json = study.to_json()
        hpo_time = study.wall_time
    final_seed = derive_seed(job.seed, job.name, "final")
    sgm: dict[str, Any] | None = None
    if job.mode == "surrogate":
        model, res, sgm = _surrogate_starts(job, hp, rows, final_seed, work)
    else:
        model, res = _fit_once(job, hp, rows, final_seed, ckpt=work / "checkpoint", logs=work)
    model = model.to("cpu")
    module = model.module
    save_module(module, work / "module")
    if model.head is not None:
        state = {k: v.detach().contiguous() for k, v in model.head.state_dict().items()}
        atomic_write_bytes(work / "surrogate_head.safetensors", st_save(state))
    result = {
        "name": job.name,
        "kind": job.kind,
        "mode": job.mode,
        "module_dir": "module",
        "fingerprint": module.fingerprint(),
        "hyperparameters": {k: v for k, v in hp.items() if v is not None},
        "metrics": {
            **{k: v for k, v in res.final.items() if isinstance(v, (int, float))},
            "val_score": max(r["val_score"] for r in res.history),
        },
        "epochs": res.epochs,
        "steps": res.steps,
        "fit_time": res.wall_time,
        "hpo_time": hpo_time,
        "train_time": res.wall_time + hpo_time,
        "wall_time": time.perf_counter() - t0,
        "resumed": res.resumed_from > 0,
        "hpo": study_json,
        "seed": job.seed,
        "data_digest": job.data_digest,
        "upstream": dict(job.upstream),
        "device": job.device or "cpu",
        "brickwork_version": __version__,
        "key_digest": key_digest(key),
        "skipped": False,
        "sgm": sgm,
        "round": job.round,
    }
    atomic_write_json(done, result)
    return result
