"""Executors run independent jobs (one stage of a plan) in parallel.

``LocalExecutor`` (default) is a process pool — one torch thread per worker, workers
forked from a server that has torch preloaded. ``RayExecutor`` runs the same jobs as Ray
tasks on a local Ray instance or an existing cluster (``address``). Jobs and results
are JSON; functions are passed by reference (importable, top level).

Example:
    >>> with LocalExecutor(workers=2) as ex:
    ...     ex.map(_echo, [{"x": 1}, {"x": 2}])
    [{'x': 1}, {'x': 2}]
"""

from __future__ import annotations

import abc
import logging
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, final

from brickwork.errors import TrainingError

log = logging.getLogger("brickwork.training")

JobFn = Callable[[Mapping[str, Any]], dict[str, Any]]
#: called in the parent as each job finishes: ``on_result(job_index, result)``
OnResult = Callable[[int, dict[str, Any]], None]


def _echo(job: Mapping[str, Any]) -> dict[str, Any]:
    return dict(job)


def _warm(job: Mapping[str, Any]) -> dict[str, Any]:
    """Pay one-time costs in a worker (imports, the optimizer's lazy set-up)."""
    import importlib

    import torch

    for name in job.get("imports", ()):
        importlib.import_module(name)
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 2)).sum().backward()
    opt.step()
    return dict(job)


def _worker_init(owner: int | None = None) -> None:
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if owner is not None and os.name == "posix":  # os.kill(pid, 0) probes on POSIX only
        threading.Thread(target=_exit_with, args=(owner,), daemon=True,
                         name="brickwork-owner-watch").start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _exit_with(owner: int, every: float = 1.0) -> None:
    """End this worker soon after the process that owns the pool is gone.

    A worker is a child of the fork server, not of its owner, so a killed owner (Ctrl-C
    twice, ``kill``, an out-of-memory kill) would otherwise leave it training on,
    holding a core that the next (resumed) run measures its budgets on."""
    while _alive(owner):
        time.sleep(every)
    os._exit(1)


class Executor(abc.ABC):
    """Abstract: run ``fn(job)`` for every job; results in job order."""

    name: str = ""

    @abc.abstractmethod
    def map(self, fn: JobFn, jobs: Sequence[Mapping[str, Any]], *,
            progress: bool = False, desc: str = "jobs",
            on_result: OnResult | None = None) -> list[dict[str, Any]]:
        """Run the jobs; raise :class:`TrainingError` naming the first job that failed.

        ``on_result(i, result)`` runs in this process as soon as job ``i`` ends (e.g. to
        save it, so that an interrupted run can resume)."""

    @property
    @abc.abstractmethod
    def workers(self) -> int:
        """How many jobs run at once."""

    def close(self) -> None:
        """Release the workers."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _bar(total: int, progress: bool, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not progress, leave=False)


@final
class LocalExecutor(Executor):
    """A pool of worker processes on this machine.

    Args:
        workers: processes (default: CPU count).
        start_method: ``forkserver`` (default; torch preloaded in the server), ``spawn``
            or ``fork``.
    """

    name = "local"

    def __init__(self, workers: int | None = None, start_method: str = "forkserver"):
        self._workers = max(1, int(workers or os.cpu_count() or 1))
        ctx = mp.get_context(start_method)
        if start_method == "forkserver":
            ctx.set_forkserver_preload(["torch", "brickwork.training", "brickwork.training.job"])
        self._pool = ProcessPoolExecutor(self._workers, mp_context=ctx, initializer=_worker_init,
                                         initargs=(os.getpid(),))

    @property
    def workers(self) -> int:
        return self._workers

    def warm_up(self, imports: Sequence[str] = ()) -> None:
        """Start every worker and pay its one-time costs now (imports, optimizer set-up),
        so timings measure training only."""
        self.map(_warm, [{"i": i, "imports": list(imports)} for i in range(self._workers * 2)])

    def map(self, fn: JobFn, jobs: Sequence[Mapping[str, Any]], *,
            progress: bool = False, desc: str = "jobs",
            on_result: OnResult | None = None) -> list[dict[str, Any]]:
        futures = {self._pool.submit(fn, dict(job)): i for i, job in enumerate(jobs)}
        results: list[dict[str, Any] | None] = [None] * len(jobs)
        with _bar(len(jobs), progress, desc) as bar:
            for fut in as_completed(futures):
                i = futures[fut]
                try:
                    results[i] = fut.result()
                except Exception as exc:
                    for f in futures:
                        f.cancel()
                    name = jobs[i].get("name", i)
                    raise TrainingError(f"job {name!r} failed in a worker: {type(exc).__name__}: "
                                        f"{exc}") from exc
                if on_result is not None:
                    on_result(i, results[i])  # type: ignore[arg-type]
                bar.update(1)
        return results  # type: ignore[return-value]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@final
class RayExecutor(Executor):
    """Jobs as Ray tasks (one CPU each) on a local instance or a cluster.

    Args:
        address: a Ray cluster address (``ray://host:10001`` or ``auto``); ``None`` starts a
            local instance.
        num_cpus: CPUs of a local instance (default: all).
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None):
        try:
            import ray
        except ImportError:
            raise TrainingError("--executor ray needs the optional 'ray' package; install it with "
                                "`pip install brickwork[ray]` or use --executor local") from None
        self._ray = ray
        self._own = not ray.is_initialized()
        if self._own:
            env = {"OMP_NUM_THREADS": "1"}
            if os.environ.get("PYTHONPATH"):
                env["PYTHONPATH"] = os.environ["PYTHONPATH"]
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "configure_logging": False}
            if address is None:
                kwargs["num_cpus"] = num_cpus
            try:
                ray.init(address=address, **kwargs)
            except Exception as exc:
                raise TrainingError(f"cannot start or reach Ray (address={address!r}): {exc}. "
                                    "Check --ray-address, or drop it to start a local instance") from None
        self._workers = int(ray.cluster_resources().get("CPU", 1))

    @property
    def workers(self) -> int:
        return self._workers

    def map(self, fn: JobFn, jobs: Sequence[Mapping[str, Any]], *,
            progress: bool = False, desc: str = "jobs",
            on_result: OnResult | None = None) -> list[dict[str, Any]]:
        ray = self._ray
        remote = ray.remote(num_cpus=1, max_retries=0)(_ray_call)
        refs = [remote.remote(fn.__module__, fn.__qualname__, dict(job)) for job in jobs]
        index = {ref: i for i, ref in enumerate(refs)}
        results: list[dict[str, Any] | None] = [None] * len(jobs)
        pending = list(refs)
        with _bar(len(jobs), progress, desc) as bar:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                i = index[ready[0]]
                try:
                    results[i] = ray.get(ready[0])
                except Exception as exc:
                    for ref in pending:
                        ray.cancel(ref)
                    raise TrainingError(f"job {jobs[i].get('name', i)!r} failed on Ray: {exc}") from exc
                if on_result is not None:
                    on_result(i, results[i])  # type: ignore[arg-type]
                bar.update(1)
        return results  # type: ignore[return-value]

    def close(self) -> None:
        if self._own:
            self._ray.shutdown()


def _ray_call(module: str, qualname: str, job: dict[str, Any]) -> dict[str, Any]:
    """Runs inside a Ray worker: import the job function by name and call it."""
    import importlib

    import torch

    torch.set_num_threads(1)
    fn = importlib.import_module(module)
    for part in qualname.split("."):
        fn = getattr(fn, part)
    return fn(job)  # type: ignore[operator]


def make_executor(kind: str = "local", *, workers: int | None = None,
                  address: str | None = None) -> Executor:
    """``"local"`` or ``"ray"`` (``address`` only for Ray)."""
    if kind == "local":
        if address:
            raise TrainingError("--ray-address only applies to --executor ray")
        return LocalExecutor(workers)
    if kind == "ray":
        return RayExecutor(address, num_cpus=workers)
    raise TrainingError(f"unknown executor {kind!r}; use 'local' or 'ray'")
