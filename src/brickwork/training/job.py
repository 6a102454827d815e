"""Isolated training of one module: a JSON job in, a JSON result out (the executor's unit).

A :class:`ModuleJob` names the module (registered kind + config), the table it trains
on (a dataset file or an intermediate dataset), which columns feed which ports, the
target column, the mode (``direct``, ``cached`` or ``surrogate``), hyperparameters, an
optional search space and the seed. :func:`run_job` runs it in any process: optional
HPO (Optuna, journal storage in the job's folder), then the final fit with a checkpoint
every epoch, then saves the module. Everything it writes is safetensors or JSON, and a
finished job (``result.json``) is skipped when run again, so a killed run resumes.

Example:
    >>> import tempfile, torch
    >>> from brickwork.training import Samples
    >>> from brickwork.training.examples import ToyClassifier
    >>> work = tempfile.mkdtemp()
    >>> x = torch.randn(256, 4); y = (x[:, 0] > 0).long()
    >>> _ = Samples({"x": x, "y": y}).save(f"{work}/data.safetensors")
    >>> job = ModuleJob(name="cls", kind="toy_classifier", config={"dim": 4, "classes": 2},
    ...                 imports=("brickwork.training.examples",), mode="direct",
    ...                 data=f"{work}/data.safetensors", inputs={"x": "x"}, target="y",
    ...                 hparams={"epochs": 20, "lr": 0.05}, seed=0, workdir=f"{work}/cls")
    >>> result = run_job(job.to_json())
    >>> result["metrics"]["val_score"] > 0.9, result["resumed"]
    (True, False)
"""

from __future__ import annotations

import importlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, final

import torch
from safetensors.torch import save as st_save

from brickwork._version import __version__
from brickwork.errors import TrainingError
from brickwork.modules import atomic_write_bytes, atomic_write_json, build, load_module, save_module
from brickwork.training.cache import IntermediateDataset
from brickwork.training.callbacks import EarlyStopping, LogMetrics, ProgressBar
from brickwork.training.fit import FitConfig, FitResult, fit
from brickwork.training.hpo import SearchSpace, run_study
from brickwork.training.losses import type_loss, type_score
from brickwork.training.samples import Samples
from brickwork.training.seeding import derive_seed, seed_everything
from brickwork.training.surrogate import SurrogateHead

log = logging.getLogger("brickwork.training")

MODES = ("direct", "cached", "surrogate")
_FIT_KEYS = ("epochs", "batch_size", "lr", "weight_decay", "max_steps", "grad_clip")
DEFAULT_HPARAMS = {"epochs": 10, "batch_size": 64, "lr": 3e-3, "weight_decay": 0.0,
                   "patience": 5, "pos_weight": None, "rank": 8, "dropout": 0.1}


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

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise TrainingError(f"job {self.name!r}: mode {self.mode!r} is not one of {MODES}")

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModuleJob:
        d = dict(data)
        d["imports"] = tuple(d.get("imports", ()))
        try:
            return cls(**d)
        except TypeError as exc:
            raise TrainingError(f"job description is malformed: {exc}") from None


def load_table(path: str) -> Samples:
    """A job's table: a Samples file or an intermediate-dataset folder."""
    p = Path(path)
    if p.is_dir():
        return IntermediateDataset(p).load()
    return Samples.load(p)


class _Trainable(torch.nn.Module):
    """The module plus, in surrogate mode, its head (one set of parameters to fit)."""

    def __init__(self, module: torch.nn.Module, head: torch.nn.Module | None):
        super().__init__()
        self.module = module
        self.head = head


def _build(job: ModuleJob, hp: Mapping[str, Any], table: Samples, seed: int) -> _Trainable:
    seed_everything(seed)
    module = build(job.kind, dict(job.config))
    head = None
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
        head = SurrogateHead(int(probe[0].numel()), out_features, rank=int(hp["rank"]),
                             dropout=float(hp["dropout"]), context_channels=ctx)
    return _Trainable(module, head)


def _objective(job: ModuleJob, hp: Mapping[str, Any]) -> tuple[Any, Any]:
    def forward(model: _Trainable, batch: Samples) -> tuple[torch.Tensor, Any]:
        module = model.module
        port = job.output or next(iter(module.outputs))
        out = module.call_ports(**{p: batch[c] for p, c in job.inputs.items()})[port]
        if model.head is not None:
            ctx = batch[job.context] if job.context else None
            return model.head(out, ctx), None
        return out, module.outputs[port]

    def loss_fn(model: _Trainable, batch: Samples) -> torch.Tensor:
        pred, t = forward(model, batch)
        target = batch[job.target]
        if t is None:
            if target.is_floating_point():
                return torch.nn.functional.mse_loss(pred, target.reshape(pred.shape))
            return torch.nn.functional.cross_entropy(pred, target)
        return type_loss(t, pred, target, hp.get("pos_weight"))

    def evaluate(model: _Trainable, data: Samples) -> dict[str, float]:
        pred, t = forward(model, data)
        target = data[job.target]
        if t is None:
            if target.is_floating_point():
                score = -float(torch.nn.functional.mse_loss(pred, target.reshape(pred.shape)))
            else:
                score = float((pred.argmax(-1) == target).float().mean())
        else:
            score = type_score(t, pred, target)
        return {"val_score": score}

    return loss_fn, evaluate


def _fit_once(job: ModuleJob, hp: Mapping[str, Any], train: Samples, val: Samples, table: Samples,
              seed: int, *, report: Any = None, ckpt: Path | None = None,
              progress: bool = False) -> tuple[_Trainable, FitResult]:
    model = _build(job, hp, table, seed)
    loss_fn, evaluate = _objective(job, hp)
    cfg = FitConfig(**{k: hp[k] for k in _FIT_KEYS if k in hp and hp[k] is not None}, seed=seed)
    callbacks: list[Any] = [EarlyStopping("val_score", patience=int(hp["patience"]), mode="max"),
                            LogMetrics(job.name)]
    if progress:
        callbacks.append(ProgressBar(desc=job.name))
    on_step = (lambda epoch, rec: report(epoch, rec["val_score"])) if report else None
    result = fit(model, loss_fn, train, val=val, evaluate=evaluate, config=cfg,
                 callbacks=callbacks, checkpoint_dir=ckpt, resume=ckpt is not None,
                 on_step=on_step)
    return model, result


def run_job(job_json: Mapping[str, Any]) -> dict[str, Any]:
    """Run one :class:`ModuleJob` (given as JSON) and return its result as JSON.

    Safe to call again after a crash: a finished job returns its stored result, an
    unfinished HPO study continues from its journal, the final fit from its checkpoint.
    """
    torch.set_num_threads(1)
    job = ModuleJob.from_json(job_json)
    for name in job.imports:
        importlib.import_module(name)
    work = Path(job.workdir)
    done = work / "result.json"
    if done.exists():
        try:
            result = json.loads(done.read_text())
            load_module(work / "module")
            return {**result, "skipped": True}
        except Exception:  # damaged result: redo the job
            log.warning("job %s: stored result unusable, training again", job.name)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    table = load_table(job.data)
    train, val = table.split(1.0 - job.val_fraction, seed=derive_seed(job.seed, job.name, "split"))
    hp: dict[str, Any] = {**DEFAULT_HPARAMS, **dict(job.hparams)}
    study_json = None
    hpo_time = 0.0
    if job.trials and job.search:
        space = SearchSpace(job.search)

        def objective(params: dict[str, Any], seed: int, report: Any) -> float:
            _, res = _fit_once(job, {**hp, **params}, train, val, table, seed, report=report)
            return max(r["val_score"] for r in res.history)

        study = run_study(f"{job.name}", objective, space, trials=job.trials,
                          seed=derive_seed(job.seed, job.name, "hpo"),
                          storage=job.storage or str(work / "hpo.journal"))
        hp.update(study.best_params)
        study_json = study.to_json()
        hpo_time = study.wall_time
    final_seed = derive_seed(job.seed, job.name, "final")
    model, res = _fit_once(job, hp, train, val, table, final_seed, ckpt=work / "checkpoint",
                           progress=job.progress)
    module = model.module
    save_module(module, work / "module")  # type: ignore[arg-type]
    if model.head is not None:
        state = {k: v.detach().contiguous() for k, v in model.head.state_dict().items()}
        atomic_write_bytes(work / "surrogate_head.safetensors", st_save(state))
    result = {
        "name": job.name, "kind": job.kind, "mode": job.mode, "module_dir": str(work / "module"),
        "fingerprint": module.fingerprint(),  # type: ignore[operator]
        "hyperparameters": {k: v for k, v in hp.items() if v is not None},
        "metrics": {**{k: v for k, v in res.final.items() if isinstance(v, (int, float))},
                    "val_score": max(r["val_score"] for r in res.history)},
        "epochs": res.epochs, "steps": res.steps, "fit_time": res.wall_time,
        "hpo_time": hpo_time, "train_time": res.wall_time + hpo_time,
        "wall_time": time.perf_counter() - t0, "resumed": res.resumed_from > 0,
        "hpo": study_json, "seed": job.seed, "data_digest": job.data_digest,
        "brickwork_version": __version__, "skipped": False,
    }
    atomic_write_json(done, result)
    return result
