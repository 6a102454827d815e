"""Training: samples, intermediate-dataset cache, fit loop, executor, HPO, cost accounting.

Example:
    >>> import torch
    >>> from brickwork.training import Samples
    >>> len(Samples({"x": torch.zeros(5, 2)}))
    5
"""

from brickwork._deprecated import deprecated_names
from brickwork.training.cache import CachedRows, CacheKey, IntermediateDataset, join_on_ids
from brickwork.training.callbacks import (
    Callback,
    Checkpointer,
    EarlyStopping,
    LogMetrics,
    ProgressBar,
    TensorBoard,
)
from brickwork.training.checkpoint import load_checkpoint, save_checkpoint
from brickwork.training.cost import CostReport, makespan
from brickwork.training.end_to_end import train_end_to_end
from brickwork.training.evaluate import EvaluationReport, check_layout_column, evaluate, predict
from brickwork.training.executor import LocalExecutor, RayExecutor, check_device, make_executor
from brickwork.training.fit import (
    FitConfig,
    FitResult,
    FitState,
    fit,
    read_metrics_jsonl,
    write_metrics_csv,
)
from brickwork.training.hpo import SearchResult, SearchSpace, hpo_table, plot_hpo, run_search
from brickwork.training.job import ModuleJob, job_key, run_job
from brickwork.training.jobcache import JobCache, source_digests
from brickwork.training.losses import resolve_callable, type_loss, type_score
from brickwork.training.samples import Samples, tensors_digest
from brickwork.training.seeding import derive_seed, seed_everything
from brickwork.training.surrogate import SurrogateHead
from brickwork.training.trainer import (
    PlanResult,
    check_run_folder,
    evaluate_run,
    load_run_modules,
    module_table,
    read_run,
    train_plan,
)

__all__ = [
    "check_device",
    "JobCache",
    "source_digests",
    "EvaluationReport",
    "check_layout_column",
    "check_run_folder",
    "evaluate",
    "evaluate_run",
    "job_key",
    "load_run_modules",
    "predict",
    "read_metrics_jsonl",
    "read_run",
    "resolve_callable",
    "write_metrics_csv",
    "CostReport",
    "LocalExecutor",
    "ModuleJob",
    "PlanResult",
    "RayExecutor",
    "SearchResult",
    "SearchSpace",
    "SurrogateHead",
    "hpo_table",
    "make_executor",
    "makespan",
    "module_table",
    "plot_hpo",
    "run_job",
    "run_search",
    "train_end_to_end",
    "train_plan",
    "Callback",
    "Checkpointer",
    "EarlyStopping",
    "FitConfig",
    "FitResult",
    "FitState",
    "LogMetrics",
    "ProgressBar",
    "TensorBoard",
    "fit",
    "load_checkpoint",
    "save_checkpoint",
    "type_loss",
    "type_score",
    "CacheKey",
    "CachedRows",
    "IntermediateDataset",
    "Samples",
    "derive_seed",
    "join_on_ids",
    "seed_everything",
    "tensors_digest",
]


__getattr__ = deprecated_names(
    __name__,
    {"run_study": ("run_search", lambda: run_search)},
    why="the studies' run_study is a whole experiment, this is a hyperparameter search",
)
