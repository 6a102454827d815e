"""Executors run independent jobs (one stage of a plan) in parallel.

``LocalExecutor`` (default) is a process pool — one torch thread per worker, workers
forked from a server that has torch preloaded. ``RayExecutor`` runs the same jobs as Ray
tasks on a local Ray instance or an existing cluster (``address``). Jobs and results
are JSON; functions are passed by reference (importable, top level).

Devices: ``LocalExecutor(devices=["cuda:0", "cuda:1"])`` runs one worker per listed
device and writes the device of the worker slot a job runs in into the job (its
``"device"`` key); ``RayExecutor`` asks Ray for a GPU (``num_gpus``) for every job whose
``"device"`` is CUDA.

A script that starts a process pool must guard its top level with
``if __name__ == "__main__":`` (workers import the main module again); a
:class:`LocalExecutor` made at the top level of an unguarded script says so in one line.

Example:
    >>> with LocalExecutor(workers=2) as ex:
    ...     ex.map(_echo, [{"x": 1}, {"x": 2}])
    [{'x': 1}, {'x': 2}]
    >>> with LocalExecutor(devices=["cpu", "cpu"]) as ex:
    ...     [r["device"] for r in ex.map(_echo, [{"x": 1}, {"x": 2}])]
    ['cpu', 'cpu']
"""

from __future__ import annotations

import abc
import ast
import logging
import multiprocessing as mp
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, final

from brickwork.errors import TrainingError

log = logging.getLogger("brickwork.training")

#: runs one job; it receives a ``dict`` copy of the job (with ``device`` set when the
#: executor assigns devices)
JobFn = Callable[[dict[str, Any]], dict[str, Any]]
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


def _worker_init(owner: int | None = None, log_level: int | None = None) -> None:
    import torch

    torch.set_num_threads(1)
    if log_level is not None:
        _follow_log_level(log_level)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if owner is not None and os.name == "posix":  # os.kill(pid, 0) probes on POSIX only
        threading.Thread(
            target=_exit_with, args=(owner,), daemon=True, name="brickwork-owner-watch"
        ).start()


def _parent_log_level() -> int:
    """The level a worker's ``brickwork`` loggers should use: the parent's when it
    configured logging (``-v`` shows every job's epochs), else WARNING, so parallel jobs
    do not interleave per-epoch lines with the parent's progress bars."""
    logger = logging.getLogger("brickwork")
    if logger.hasHandlers() or logger.level != logging.NOTSET:
        return logger.getEffectiveLevel()
    return logging.WARNING


def _follow_log_level(level: int) -> None:
    logger = logging.getLogger("brickwork")
    logger.setLevel(level)
    if level <= logging.INFO and not logger.hasHandlers():
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)


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
    def map(
        self,
        fn: JobFn,
        jobs: Sequence[Mapping[str, Any]],
        *,
        progress: bool = False,
        desc: str = "jobs",
        on_result: OnResult | None = None,
    ) -> list[dict[str, Any]]:
        """Run the jobs; raise :class:`TrainingError` naming the first job that failed.

        ``on_result(i, result)`` runs in this process as soon as job ``i`` ends (e.g. to
        save it, so that an interrupted run can resume)."""

    @property
    @abc.abstractmethod
    def workers(self) -> int:
        """How many jobs run at once."""

    def close(self) -> None:  # noqa: B027 (optional: executors without workers keep it)
        """Release the workers."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


MAIN_GUARD_HINT = (
    "wrap the call in `if __name__ == '__main__':` (worker processes import the "
    "main module again, and an unguarded top level starts the run again in each)"
)
_DEVICE = re.compile(r"^(cpu|cuda|cuda:\d+|mps|meta)$")


def _unguarded_main_call() -> str | None:
    """``"file:line"`` when this call comes from the top level of the ``__main__`` script
    outside an ``if __name__ == "__main__":`` block; else None."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or not path:
        return None
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_globals is vars(main) and frame.f_code.co_name == "<module>":
            break
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return None
    line = frame.f_lineno
    try:
        tree = ast.parse(Path(path).read_text(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return None
    for stmt in tree.body:
        end = getattr(stmt, "end_lineno", stmt.lineno)
        if stmt.lineno <= line <= (end or stmt.lineno):
            if isinstance(stmt, ast.If) and _is_main_test(stmt.test):
                return None
            return f"{path}:{line}"
    return None


def _is_main_test(test: ast.expr) -> bool:
    if (
        not isinstance(test, ast.Compare)
        or len(test.ops) != 1
        or not isinstance(test.ops[0], ast.Eq)
    ):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    consts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return bool(names and consts)


def check_main_guard(start_method: str) -> None:
    """Refuse to start a process pool from an unguarded script's top level.

    With ``spawn`` and ``forkserver`` each worker imports the main module again; without
    ``if __name__ == "__main__":`` that import starts the run again and the pool breaks
    (``BrokenProcessPool``). Raises :class:`TrainingError` saying where and how to fix.
    """
    if start_method == "fork":
        return
    where = _unguarded_main_call()
    if where is not None:
        raise TrainingError(
            f"{where}: a process pool is started at the top level of the main "
            f"script; {MAIN_GUARD_HINT}"
        )


def check_devices(devices: Sequence[str]) -> list[str]:
    """Validate device names (``cpu``, ``cuda``, ``cuda:N``, ``mps``, ``meta``)."""
    out = []
    for d in devices:
        if not isinstance(d, str) or not _DEVICE.match(d):
            raise TrainingError(f"device {d!r} is not one of cpu, cuda, cuda:N, mps, meta")
        out.append(d)
    if not out:
        raise TrainingError("devices: give at least one device, e.g. ['cuda:0', 'cuda:1']")
    return out


def _bar(total: int, progress: bool, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not progress, leave=False)


@final
class LocalExecutor(Executor):
    """A pool of worker processes on this machine.

    Args:
        workers: processes (default: one per device when ``devices`` is given, else the
            CPU count).
        start_method: ``forkserver`` (default; torch preloaded in the server), ``spawn``
            or ``fork``.
        devices: devices of the worker slots (``["cuda:0", "cuda:1"]``); the slots cycle
            through them when ``workers`` is larger. A job runs in a free slot and gets
            that slot's device as its ``"device"`` key.

    Raises:
        TrainingError: ``workers`` < 1, a bad device name, or the pool is started from
            the top level of a script without an ``if __name__ == "__main__":`` guard.
    """

    name = "local"

    def __init__(
        self,
        workers: int | None = None,
        start_method: str = "forkserver",
        devices: Sequence[str] | None = None,
    ):
        if workers is not None and (isinstance(workers, bool) or int(workers) < 1):
            raise TrainingError(f"workers must be >= 1, got {workers}")
        self._devices = check_devices(devices) if devices is not None else None
        default = len(self._devices) if self._devices else (os.cpu_count() or 1)
        self._workers = max(1, int(workers or default))
        check_main_guard(start_method)
        ctx = mp.get_context(start_method)
        if start_method == "forkserver":
            ctx.set_forkserver_preload(["torch", "brickwork.training", "brickwork.training.job"])
        self._pool = ProcessPoolExecutor(
            self._workers,
            mp_context=ctx,
            initializer=_worker_init,
            initargs=(os.getpid(), _parent_log_level()),
        )

    @property
    def workers(self) -> int:
        return self._workers

    @property
    def devices(self) -> list[str] | None:
        """The device of each worker slot, or None (jobs keep their own)."""
        if self._devices is None:
            return None
        return [self._devices[i % len(self._devices)] for i in range(self._workers)]

    def warm_up(self, imports: Sequence[str] = ()) -> None:
        """Start every worker and pay its one-time costs now (imports, optimizer set-up),
        so timings measure training only."""
        self.map(_warm, [{"i": i, "imports": list(imports)} for i in range(self._workers * 2)])

    def map(
        self,
        fn: JobFn,
        jobs: Sequence[Mapping[str, Any]],
        *,
        progress: bool = False,
        desc: str = "jobs",
        on_result: OnResult | None = None,
    ) -> list[dict[str, Any]]:
        slots = self.devices
        free = list(range(self._workers))
        todo = list(range(len(jobs)))
        running: dict[Future[dict[str, Any]], tuple[int, int]] = {}
        results: list[dict[str, Any] | None] = [None] * len(jobs)

        def submit() -> None:
            while todo and free:
                i, slot = todo.pop(0), free.pop(0)
                job = dict(jobs[i])
                if slots is not None:
                    job["device"] = slots[slot]
                running[self._pool.submit(fn, job)] = (i, slot)

        with _bar(len(jobs), progress, desc) as bar:
            try:
                submit()
            except BrokenProcessPool:
                raise TrainingError(_broken()) from None
            while running:
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in done:
                    i, slot = running.pop(fut)
                    free.append(slot)
                    try:
                        results[i] = fut.result()
                    except BrokenProcessPool as exc:
                        for f in running:
                            f.cancel()
                        raise TrainingError(f"job {jobs[i].get('name', i)!r}: {_broken()}") from exc
                    except Exception as exc:
                        for f in running:
                            f.cancel()
                        name = jobs[i].get("name", i)
                        raise TrainingError(
                            f"job {name!r} failed in a worker: {type(exc).__name__}: {exc}"
                        ) from exc
                    if on_result is not None:
                        on_result(i, results[i])  # type: ignore[arg-type]
                    bar.update(1)
                try:
                    submit()
                except BrokenProcessPool:
                    raise TrainingError(_broken()) from None
        return results  # type: ignore[return-value]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _broken() -> str:
    return (
        "a worker process died abruptly (killed, out of memory, or the main script started "
        f"the run again on import); if your script calls it at the top level, {MAIN_GUARD_HINT}"
    )


@final
class RayExecutor(Executor):
    """Jobs as Ray tasks (one CPU each) on a local instance or a cluster.

    Args:
        address: a Ray cluster address (``ray://host:10001`` or ``auto``); ``None`` starts a
            local instance.
        num_cpus: CPUs of a local instance (default: all).
        gpus_per_task: GPUs Ray reserves for a job whose ``"device"`` is CUDA (Ray then
            sets ``CUDA_VISIBLE_DEVICES``; the job runs on ``"cuda"``).
    """

    name = "ray"

    def __init__(
        self, address: str | None = None, num_cpus: int | None = None, gpus_per_task: float = 1.0
    ):
        self._gpus = float(gpus_per_task)
        try:
            import ray
        except ImportError:
            raise TrainingError(
                "--executor ray needs the optional 'ray' package; install it with "
                "`pip install brickwork[ray]` or use --executor local"
            ) from None
        self._ray = ray
        self._own = not ray.is_initialized()
        if self._own:
            env = {"OMP_NUM_THREADS": "1"}
            if os.environ.get("PYTHONPATH"):
                env["PYTHONPATH"] = os.environ["PYTHONPATH"]
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "configure_logging": False,
            }
            if address is None:
                kwargs["num_cpus"] = num_cpus
            try:
                ray.init(address=address, **kwargs)
            except Exception as exc:
                raise TrainingError(
                    f"cannot start or reach Ray (address={address!r}): {exc}. "
                    "Check --ray-address, or drop it to start a local instance"
                ) from None
        self._workers = int(ray.cluster_resources().get("CPU", 1))

    @property
    def workers(self) -> int:
        return self._workers

    def map(
        self,
        fn: JobFn,
        jobs: Sequence[Mapping[str, Any]],
        *,
        progress: bool = False,
        desc: str = "jobs",
        on_result: OnResult | None = None,
    ) -> list[dict[str, Any]]:
        ray = self._ray
        remote = ray.remote(num_cpus=1, max_retries=0)(_ray_call)
        refs = []
        for job in jobs:
            job = dict(job)
            dev = str(job.get("device") or "")
            if dev.startswith("cuda"):
                job["device"] = "cuda"  # Ray hides every GPU but the reserved one(s)
                refs.append(
                    remote.options(num_gpus=self._gpus).remote(fn.__module__, fn.__qualname__, job)
                )
            else:
                refs.append(remote.remote(fn.__module__, fn.__qualname__, job))
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
                    raise TrainingError(
                        f"job {jobs[i].get('name', i)!r} failed on Ray: {exc}"
                    ) from exc
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
    result: dict[str, Any] = fn(job)  # type: ignore[operator]
    return result


def make_executor(
    kind: str = "local",
    *,
    workers: int | None = None,
    address: str | None = None,
    devices: Sequence[str] | None = None,
) -> Executor:
    """``"local"`` or ``"ray"`` (``address`` only for Ray; ``devices`` only for local)."""
    if workers is not None and (isinstance(workers, bool) or int(workers) < 1):
        raise TrainingError(f"workers must be >= 1, got {workers}")
    if kind == "local":
        if address:
            raise TrainingError("--ray-address only applies to --executor ray")
        return LocalExecutor(workers, devices=devices)
    if kind == "ray":
        return RayExecutor(address, num_cpus=workers)
    raise TrainingError(f"unknown executor {kind!r}; use 'local' or 'ray'")
