"""Hyperparameter search per module with Optuna (thesis §4.3.2, Fig. 4.8 and 4.11).

Storage is an Optuna journal file by default (appends under a file lock: parallel trials
from several processes never hit SQLite lock errors); an RDB URL (``sqlite:///…``,
``postgresql://…``) is used when given. Each trial's seed is derived from the study seed
and the trial's index; the sampler is re-seeded the same way before every trial, so a
resumed study proposes the same trials as an uninterrupted one. Trials report a score
after every epoch and are pruned by a median pruner.

Example:
    >>> import tempfile, os
    >>> space = SearchSpace({"x": {"type": "float", "low": -2.0, "high": 2.0}})
    >>> def objective(params, seed, report):
    ...     return -(params["x"] - 1.0) ** 2
    >>> res = run_search("toy", objective, space, trials=8, seed=0,
    ...                 storage=os.path.join(tempfile.mkdtemp(), "journal.log"))
    >>> len(res.trials), res.best_value > -1.0
    (8, True)
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, final

from brickwork._deprecated import deprecated_names
from brickwork.errors import TrainingError
from brickwork.training.seeding import derive_seed

log = logging.getLogger("brickwork.training.hpo")

Report = Callable[[int, float], None]
Objective = Callable[[dict[str, Any], int, Report], float]


class TrialPruned(Exception):
    """Raised by ``report`` when the pruner stops a trial (caught by :func:`run_search`)."""


@final
@dataclass(frozen=True)
class SearchSpace:
    """Declared search space: name -> ``{"type": "float"|"int"|"categorical", ...}``.

    ``float``/``int`` take ``low``, ``high`` and optional ``log``; ``categorical`` takes
    ``choices``.

    Example:
        >>> SearchSpace({"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}).names()
        ['lr']
    """

    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, spec in self.params.items():
            kind = spec.get("type")
            if kind in ("float", "int"):
                if "low" not in spec or "high" not in spec or not spec["low"] <= spec["high"]:
                    raise TrainingError(
                        f"search space {name!r}: {kind} needs low <= high, got {dict(spec)}"
                    )
            elif kind == "categorical":
                if not spec.get("choices"):
                    raise TrainingError(f"search space {name!r}: categorical needs 'choices'")
            else:
                raise TrainingError(
                    f"search space {name!r}: type must be float, int or categorical, got {kind!r}"
                )

    def names(self) -> list[str]:
        return sorted(self.params)

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Draw one point with an Optuna trial."""
        out: dict[str, Any] = {}
        for name in self.names():
            spec = self.params[name]
            if spec["type"] == "float":
                out[name] = trial.suggest_float(
                    name, spec["low"], spec["high"], log=bool(spec.get("log"))
                )
            elif spec["type"] == "int":
                out[name] = trial.suggest_int(
                    name, spec["low"], spec["high"], log=bool(spec.get("log"))
                )
            else:
                out[name] = trial.suggest_categorical(name, list(spec["choices"]))
        return out

    def to_json(self) -> dict[str, Any]:
        return {k: dict(v) for k, v in self.params.items()}


@final
@dataclass(frozen=True)
class SearchResult:
    """A finished search: best point and every trial (number, params, value, state, seed,
    time).

    Example:
        >>> SearchResult("m", {"x": 1}, 0.5, [], 1.0).to_json()["best_value"]
        0.5
    """

    name: str
    best_params: dict[str, Any]
    best_value: float
    trials: list[dict[str, Any]]
    wall_time: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def make_storage(storage: str | os.PathLike[str]) -> Any:
    """An Optuna storage: a journal file for a path, an RDB storage for a URL."""
    import optuna

    text = str(storage)
    if "://" in text:
        return optuna.storages.RDBStorage(
            text,
            engine_kwargs={"connect_args": {"timeout": 60}} if text.startswith("sqlite") else {},
        )
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    Path(text).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(
        JournalFileBackend(text, lock_obj=JournalFileOpenLock(text))
    )


def run_search(
    name: str,
    objective: Objective,
    space: SearchSpace,
    *,
    trials: int,
    seed: int,
    storage: str | os.PathLike[str],
    direction: str = "maximize",
    prune: bool = True,
) -> SearchResult:
    """Run (or resume) a hyperparameter search (an Optuna study) until it holds
    ``trials`` finished trials.

    Named ``run_search`` so it never reads like the studies' ``run_study`` (a whole
    experiment); ``run_study`` stays a deprecated alias.

    Args:
        name: study name (one per module).
        objective: ``objective(params, seed, report) -> score``; call ``report(epoch,
            score)`` after each epoch to allow pruning.
        space: the declared search space.
        trials: finished (complete or pruned) trials wanted.
        seed: the study seed; trial ``k`` gets ``derive_seed(seed, name, "trial", k)``.
        storage: journal file path or RDB URL.
        direction: ``"maximize"`` or ``"minimize"`` the score.
        prune: use a median pruner.
    """
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = make_storage(storage)
    t0 = time.perf_counter()
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
        if prune
        else optuna.pruners.NopPruner()
    )
    if direction not in ("maximize", "minimize"):
        raise TrainingError(
            f"search {name!r}: direction {direction!r}; use 'maximize' or 'minimize' (the score)"
        )
    study = optuna.create_study(
        study_name=name,
        storage=store,
        direction="maximize" if direction == "maximize" else "minimize",
        load_if_exists=True,
        pruner=pruner,
    )
    # trials left RUNNING by a killed process are failed and redone
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        store.set_trial_state_values(t._trial_id, TrialState.FAIL)
    while True:
        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        k = len(finished)
        if k >= trials:
            break
        trial_seed = derive_seed(seed, name, "trial", k)
        study.sampler = optuna.samplers.TPESampler(seed=trial_seed, n_startup_trials=3)
        trial = study.ask()
        trial.set_user_attr("seed", trial_seed)
        trial.set_user_attr("index", k)
        params = space.suggest(trial)
        started = time.perf_counter()

        def report(step: int, value: float, _trial: Any = trial) -> None:
            _trial.report(float(value), step)
            if _trial.should_prune():
                raise TrialPruned()

        try:
            value = float(objective(params, trial_seed, report))
        except TrialPruned:
            trial.set_user_attr("wall_time", time.perf_counter() - started)
            study.tell(trial, state=TrialState.PRUNED)
            continue
        except Exception:
            study.tell(trial, state=TrialState.FAIL)
            raise
        trial.set_user_attr("wall_time", time.perf_counter() - started)
        if math.isnan(value):
            study.tell(trial, state=TrialState.FAIL)
            continue
        study.tell(trial, value)
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            continue
        inter = t.intermediate_values
        last = inter[max(inter)] if inter else None
        rows.append(
            {
                "number": t.number,
                "index": t.user_attrs.get("index"),
                "params": dict(t.params),
                "state": t.state.name.lower(),
                "value": t.value if t.value is not None else last,
                "seed": t.user_attrs.get("seed"),
                "wall_time": t.user_attrs.get("wall_time", 0.0),
            }
        )
    complete = [r for r in rows if r["state"] == "complete"]
    if not complete:
        raise TrainingError(
            f"study {name!r}: no trial completed ({len(rows)} pruned); raise "
            "the number of trials or disable pruning"
        )
    # ties go to the earliest trial in both directions
    if direction == "maximize":
        best = max(complete, key=lambda r: (r["value"], -r["index"]))
    else:
        best = min(complete, key=lambda r: (r["value"], r["index"]))
    return SearchResult(
        name,
        dict(best["params"]),
        float(best["value"]),
        rows,
        sum(float(r["wall_time"] or 0.0) for r in rows) or time.perf_counter() - t0,
    )


def hpo_table(results: Mapping[str, SearchResult]) -> str:
    """A text table: per module, trials, best score, spread, best params."""
    lines = [f"{'module':<24} {'trials':>6} {'pruned':>6} {'best':>9} {'median':>9}  best params"]
    for name, res in results.items():
        vals = sorted(r["value"] for r in res.trials if r["state"] == "complete")
        med = vals[len(vals) // 2] if vals else float("nan")
        pruned = sum(r["state"] == "pruned" for r in res.trials)
        params = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in sorted(res.best_params.items())
        )
        lines.append(
            f"{name:<24} {len(res.trials):>6} {pruned:>6} {res.best_value:>9.4f} "
            f"{med:>9.4f}  {params}"
        )
    return "\n".join(lines)


def plot_hpo(results: Mapping[str, SearchResult], path: str | os.PathLike[str]) -> Path:
    """Plot every trial's score per module (like Fig. 4.8) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from brickwork.modules import atomic_write_figure

    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(results) + 2), 3.5))
    for i, res in enumerate(results.values()):
        for r in res.trials:
            if r["value"] is None:
                continue
            marker = "o" if r["state"] == "complete" else "x"
            ax.scatter(
                i + (hash(r["number"]) % 7 - 3) * 0.03,
                r["value"],
                marker=marker,
                color="tab:blue" if marker == "o" else "tab:gray",
                s=18,
            )
    ax.set_xticks(range(len(results)), list(results), rotation=30, ha="right")
    ax.set_ylabel("validation score")
    ax.set_title("score of every trial per module (x: pruned)")
    fig.tight_layout()
    return atomic_write_figure(fig, path)


__getattr__ = deprecated_names(
    __name__,
    {
        "run_study": ("run_search", lambda: run_search),
        "StudyResult": ("SearchResult", lambda: SearchResult),
    },
    why="the studies' run_study is a whole experiment, this is a hyperparameter search",
)
