"""Executors run independent jobs (one stage of a plan) in parallel.

``LocalExecutor`` (default) is a process pool — one torch thread per worker, workers
forked from a server that has torch preloaded (or, with ``in_process=True``, this process,
one job at a time). ``RayExecutor`` runs the same jobs as Ray tasks on a local Ray
instance or an existing cluster (``address``). Jobs are dicts and results JSON-like;
functions are passed by reference (importable, top level).

Two ways to run jobs: ``map(fn, jobs)`` runs a fixed list and returns the results in job
order (``on_result`` sees each one as it ends); ``submit(fn, job)`` returns a
:class:`concurrent.futures.Future` at once, so a scheduler can submit more jobs as results
come in (wait on the futures with :func:`concurrent.futures.wait`).

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
    >>> with LocalExecutor(workers=1, in_process=True) as ex:
    ...     ex.submit(_echo, {"x": 3}).result()
    {'x': 3}
"""

from __future__ import annotations

import abc
import ast
import collections
import contextlib
import functools
import logging
import multiprocessing as mp
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    CancelledError,
    Future,
    ProcessPoolExecutor,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, final

from brickwork.errors import TrainingError

if TYPE_CHECKING:
    import torch

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


_ExecutorT = TypeVar("_ExecutorT", bound="Executor")


class Executor(abc.ABC):
    """Abstract: run ``fn(job)`` for jobs, on ``workers`` slots at once.

    A subclass gives ``workers`` and either ``submit`` (then ``map`` comes with it) or
    its own ``map`` (then ``submit`` says it is not offered).
    """

    name: str = ""
    #: where jobs run, for error messages ("job 'x' failed in a worker: ...")
    where: str = "in a worker"

    def submit(self, fn: JobFn, job: Mapping[str, Any]) -> Future[dict[str, Any]]:
        """Start ``fn(job)`` (a copy of ``job``) and return its future at once.

        The future's ``result()`` is ``fn``'s result, or raises the job's own exception.
        Submit from the thread that owns the executor, e.g. after waiting on earlier
        futures (:func:`concurrent.futures.wait`), to add jobs as results come in.

        Raises:
            TrainingError: this executor runs fixed lists only (use :meth:`map`, or a
                :class:`LocalExecutor` / :class:`RayExecutor`).
        """
        raise TrainingError(
            f"{type(self).__name__}.submit: this executor runs fixed lists of jobs only; "
            "use map(fn, jobs), or LocalExecutor / RayExecutor, which offer submit"
        )

    def map(
        self,
        fn: JobFn,
        jobs: Sequence[Mapping[str, Any]],
        *,
        progress: bool = False,
        desc: str = "jobs",
        on_result: OnResult | None = None,
    ) -> list[dict[str, Any]]:
        """Run the jobs (``workers`` at a time, in order); the results in job order.

        ``on_result(i, result)`` runs in this process as soon as job ``i`` ends (e.g. to
        save it, so that an interrupted run can resume); it may submit more jobs.

        Raises:
            TrainingError: naming the first job that failed (the others are cancelled).
        """
        todo = list(range(len(jobs)))
        running: dict[Future[dict[str, Any]], int] = {}
        results: list[dict[str, Any] | None] = [None] * len(jobs)
        with _bar(len(jobs), progress, desc) as bar:
            while todo or running:
                while todo and len(running) < self.workers:
                    i = todo.pop(0)
                    running[self.submit(fn, jobs[i])] = i
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in sorted(done, key=running.__getitem__):
                    i = running.pop(fut)
                    try:
                        results[i] = fut.result()
                    except Exception as exc:
                        self._cancel(list(running))
                        raise self._job_error(jobs[i].get("name", i), exc) from exc
                    if on_result is not None:
                        on_result(i, results[i])  # type: ignore[arg-type]
                    bar.update(1)
        return results  # type: ignore[return-value]

    def _cancel(self, futures: Sequence[Future[dict[str, Any]]]) -> None:
        """Cancel what has not started (a job that runs already ends on its own)."""
        for f in futures:
            f.cancel()

    def _job_error(self, name: object, exc: BaseException) -> TrainingError:
        if isinstance(exc, BrokenProcessPool):
            return TrainingError(f"job {name!r}: {_broken()}")
        return TrainingError(f"job {name!r} failed {self.where}: {type(exc).__name__}: {exc}")

    @property
    @abc.abstractmethod
    def workers(self) -> int:
        """How many jobs run at once."""

    def close(self) -> None:  # noqa: B027 (optional: executors without workers keep it)
        """Release the workers."""

    def __enter__(self: _ExecutorT) -> _ExecutorT:
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
    """Validate device names (``cpu``, ``cuda``, ``cuda:N``, ``mps``, ``meta``).

    Example:
        >>> check_devices(["cpu", "cuda:1"])
        ['cpu', 'cuda:1']
    """
    out = []
    for d in devices:
        if not isinstance(d, str) or not _DEVICE.match(d):
            raise TrainingError(f"device {d!r} is not one of cpu, cuda, cuda:N, mps, meta")
        out.append(d)
    if not out:
        raise TrainingError("devices: give at least one device, e.g. ['cuda:0', 'cuda:1']")
    return out


def check_device(device: str | torch.device, where: str) -> torch.device:
    """``device`` parsed, or a :class:`TrainingError` saying why it cannot be used here.

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` (or a ``torch.device``).
        where: who asks, for the message (``"sorting study"``, ``"StudyConfig.device"``).

    Raises:
        TrainingError: not a torch device, or one this machine does not have; the message
            names ``where``, the device, what exists and the fix.

    Example:
        >>> check_device("cpu", "sorting study")
        device(type='cpu')
        >>> check_device("gpu", "sorting study")
        Traceback (most recent call last):
        ...
        brickwork.errors.TrainingError: sorting study: device 'gpu' is not a torch device...
    """
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise TrainingError(
            f"{where}: device {device!r} is not a torch device ({exc}); use "
            "'cpu', 'cuda', 'cuda:N' or 'mps'"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(
            f"{where}: device {device!r} asked, but this torch has no CUDA "
            f"device (torch {torch.__version__}); use device='cpu'"
        )
    count = torch.cuda.device_count() if dev.type == "cuda" else 0
    if dev.type == "cuda" and dev.index is not None and dev.index >= count:
        have = "cuda:0" if count == 1 else f"one of cuda:0…cuda:{count - 1}"
        raise TrainingError(
            f"{where}: device {device!r} asked, but only {count} CUDA device(s) exist; "
            f"use {have} or 'cpu'"
        )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise TrainingError(
            f"{where}: device {device!r} asked, but MPS is not available here; use device='cpu'"
        )
    return dev


def _bar(total: int, progress: bool, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not progress, leave=False)


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """One torch thread while a job runs in this process (as in a worker), then back."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@final
class LocalExecutor(Executor):
    """A pool of worker processes on this machine (or this process, one job at a time).

    Args:
        workers: processes (default: one per device when ``devices`` is given, else the
            CPU count; 1 with ``in_process``).
        start_method: ``forkserver`` (default; torch preloaded in the server), ``spawn``
            or ``fork``.
        devices: devices of the worker slots (``["cuda:0", "cuda:1"]``); the slots cycle
            through them when ``workers`` is larger. A job runs in a free slot and gets
            that slot's device as its ``"device"`` key; jobs submitted while every slot
            is busy wait for one.
        in_process: run each job in this process, one at a time, with one torch thread
            while it runs (tests, debugging, a one-worker run without start-up cost); no
            pool is started. Needs ``workers`` 1 (or None).

    Raises:
        TrainingError: ``workers`` < 1 (or > 1 with ``in_process``), a bad device name,
            or the pool is started from the top level of a script without an
            ``if __name__ == "__main__":`` guard.

    Example:
        >>> from concurrent.futures import wait
        >>> with LocalExecutor(workers=1, in_process=True) as ex:
        ...     first = ex.submit(_echo, {"x": 1})
        ...     more = [ex.submit(_echo, {"x": first.result()["x"] + k}) for k in (1, 2)]
        ...     sorted(f.result()["x"] for f in wait(more).done)
        [2, 3]
    """

    name = "local"

    def __init__(
        self,
        workers: int | None = None,
        start_method: str = "forkserver",
        devices: Sequence[str] | None = None,
        *,
        in_process: bool = False,
    ):
        if workers is not None and (isinstance(workers, bool) or int(workers) < 1):
            raise TrainingError(f"workers must be >= 1, got {workers}")
        if in_process and workers not in (None, 1):
            raise TrainingError(
                f"LocalExecutor(in_process=True) runs one job at a time, got workers={workers}; "
                "use workers=1, or in_process=False for a pool"
            )
        self._devices = check_devices(devices) if devices is not None else None
        default = len(self._devices) if self._devices else (os.cpu_count() or 1)
        self._workers = 1 if in_process else max(1, int(workers or default))
        self._pool: ProcessPoolExecutor | None = None
        if not in_process:
            check_main_guard(start_method)
            ctx = mp.get_context(start_method)
            if start_method == "forkserver":
                ctx.set_forkserver_preload(
                    ["torch", "brickwork.training", "brickwork.training.job"]
                )
            self._pool = ProcessPoolExecutor(
                self._workers,
                mp_context=ctx,
                initializer=_worker_init,
                initargs=(os.getpid(), _parent_log_level()),
            )
        # device slots: a job runs in a free slot; the others wait here in order
        self._lock = threading.Lock()
        self._free = list(range(self._workers))
        self._waiting: collections.deque[tuple[JobFn, dict[str, Any], Future[dict[str, Any]]]] = (
            collections.deque()
        )

    @property
    def workers(self) -> int:
        return self._workers

    @property
    def in_process(self) -> bool:
        """Whether jobs run in this process (no pool)."""
        return self._pool is None

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

    def submit(self, fn: JobFn, job: Mapping[str, Any]) -> Future[dict[str, Any]]:
        """Run ``fn(job)`` in a free slot (now, or when one frees); its future at once.

        The job gets its slot's device (``devices``); ``result()`` raises the job's own
        exception, or ``BrokenProcessPool`` when a worker died.
        """
        outer: Future[dict[str, Any]] = Future()
        with self._lock:
            self._waiting.append((fn, dict(job), outer))
        self._dispatch()
        return outer

    def _dispatch(self) -> None:
        """Start waiting jobs while slots are free (a cancelled one is dropped)."""
        slots = self.devices
        while True:
            with self._lock:
                if not self._waiting or not self._free:
                    return
                fn, job, outer = self._waiting.popleft()
                if not outer.set_running_or_notify_cancel():
                    continue
                slot = self._free.pop(0)
            if slots is not None:
                job["device"] = slots[slot]
            if self._pool is None:
                inner: Future[dict[str, Any]] = Future()
                try:
                    with _one_torch_thread():
                        inner.set_result(fn(job))
                except Exception as exc:  # surfaced by result()
                    inner.set_exception(exc)
                self._finished(outer, slot, inner)
                continue
            try:
                inner = self._pool.submit(fn, job)
            except Exception as exc:  # a broken or shut-down pool: surfaced by result()
                inner = Future()
                inner.set_exception(exc)
                self._finished(outer, slot, inner)
                continue
            inner.add_done_callback(functools.partial(self._finished, outer, slot))

    def _finished(
        self, outer: Future[dict[str, Any]], slot: int, inner: Future[dict[str, Any]]
    ) -> None:
        # the slot is free before the caller sees the result, so a job it submits then
        # can start at once
        with self._lock:
            self._free.append(slot)
        self._dispatch()
        exc = inner.exception() if not inner.cancelled() else CancelledError()
        if exc is not None:
            outer.set_exception(exc)
        else:
            outer.set_result(inner.result())

    def close(self) -> None:
        with self._lock:
            waiting = list(self._waiting)
            self._waiting.clear()
        for _, _, outer in waiting:
            outer.cancel()
        if self._pool is not None:
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
    where = "on Ray"

    def __init__(
        self, address: str | None = None, num_cpus: int | None = None, gpus_per_task: float = 1.0
    ):
        self._gpus = float(gpus_per_task)
        self._remote: Any = None
        self._refs: dict[Future[dict[str, Any]], Any] = {}
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

    def submit(self, fn: JobFn, job: Mapping[str, Any]) -> Future[dict[str, Any]]:
        """Start ``fn(job)`` as a Ray task; its future (Ray's ``ObjectRef.future()``).

        A job whose ``"device"`` is CUDA gets ``gpus_per_task`` GPUs and runs on
        ``"cuda"`` (Ray makes the reserved GPU the only visible one). ``result()`` raises
        Ray's task error when the job failed.
        """
        if self._remote is None:
            self._remote = self._ray.remote(num_cpus=1, max_retries=0)(_ray_call)
        job = dict(job)
        task = self._remote
        if str(job.get("device") or "").startswith("cuda"):
            job["device"] = "cuda"  # Ray hides every GPU but the reserved one(s)
            task = task.options(num_gpus=self._gpus)
        ref = task.remote(fn.__module__, fn.__qualname__, job)
        fut: Future[dict[str, Any]] = ref.future()
        self._refs[fut] = ref
        fut.add_done_callback(lambda f: self._refs.pop(f, None))
        return fut

    def _cancel(self, futures: Sequence[Future[dict[str, Any]]]) -> None:
        for f in futures:
            ref = self._refs.get(f)
            if ref is not None:
                self._ray.cancel(ref)

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
