"""A job cache: finished jobs' results kept in a folder, each under the key of what it depends on.

A study (or any long run) is a list of independent jobs — JSON-able dicts with a
``name`` — run on an :class:`~brickwork.training.executor.Executor`. :class:`JobCache`
stores each result as it finishes (``<folder>/<name>.json``, written atomically) with the
digest of the job's *key*: everything the result depends on, as the caller's ``key``
function says (the job's config less what it never reads, and the digests of the code it
runs from :func:`source_digests`), plus brickwork's version. A rerun reuses a stored
result only when its digest matches, so an interrupted run resumes where it stopped, a
changed config or changed code reruns exactly the jobs it touches, and there is no
revision number to bump by hand.

Example:
    >>> import tempfile
    >>> def square(job): return {"y": job["x"] ** 2}
    >>> cache = JobCache(tempfile.mkdtemp(), key=lambda job: {"x": job["x"]})
    >>> cache.run(square, [{"name": "a", "x": 3}, {"name": "b", "x": 4}])
    {'a': {'y': 9}, 'b': {'y': 16}}
    >>> cache.get({"name": "a", "x": 3}), cache.get({"name": "a", "x": 5})
    ({'y': 9}, None)
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, final

from brickwork._version import __version__
from brickwork.errors import TrainingError
from brickwork.modules import atomic_write_json
from brickwork.training.executor import Executor, LocalExecutor

log = logging.getLogger(__name__)

#: a job's key: every field its result depends on (JSON-able)
KeyFn = Callable[[Mapping[str, Any]], Mapping[str, Any]]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@=+-]*$")


def _origin(module: str) -> str | None:
    """The Python source file of a module, or None (no such module, or not Python)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):  # a parent that is not a package, a bad name
        return None
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return None
    return spec.origin


@functools.cache
def _source(module: str) -> tuple[str, frozenset[str]]:
    """SHA-256 of a module's source file, and the names it imports (for ``from a import
    b`` both ``a`` and ``a.b``, which may be a module)."""
    origin = _origin(module)
    if origin is None:
        raise TrainingError(
            f"source_digests: module {module!r} has no Python source file; name modules "
            "written in Python (e.g. 'brickwork.studies.clevr.nmn.modular')"
        )
    text = Path(origin).read_bytes()
    imports: set[str] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imports.add(node.module)
            imports.update(f"{node.module}.{a.name}" for a in node.names if a.name != "*")
        elif isinstance(node, ast.Import):
            imports.update(a.name for a in node.names)
    return hashlib.sha256(text).hexdigest(), frozenset(imports)


def source_digests(modules: Iterable[str], *, follow: str | None = None) -> dict[str, str]:
    """SHA-256 of the source of ``modules`` and, with ``follow`` (a module-name prefix such
    as ``"brickwork.studies."``), of every module under that prefix they import,
    transitively; by module name, sorted. A job key that holds these reruns the job when
    the code it runs changes.

    Raises:
        TrainingError: a module has no Python source file.

    Example:
        >>> d = source_digests(["brickwork.training.jobcache"], follow="brickwork.training.")
        >>> "brickwork.training.executor" in d, len(d["brickwork.training.jobcache"])
        (True, 64)
    """
    todo, out = list(modules), {}
    while todo:
        m = todo.pop()
        if m in out:
            continue
        out[m], deps = _source(m)
        if follow is not None:  # names that are not modules (classes, functions) drop out
            todo += [d for d in deps if d.startswith(follow) and _origin(d) is not None]
    return dict(sorted(out.items()))


@final
class JobCache:
    """Results of finished jobs in ``folder``, one JSON file per job name, each with the
    digest of the job's key (``key(job)`` plus brickwork's version).

    Args:
        folder: where the results live (created on the first write).
        key: job → JSON-able mapping of everything its result depends on; default: the
            whole job.

    Raises:
        TrainingError: (``run``/``put``) a job without a usable ``name``, or two jobs
            with one name.

    Example:
        >>> import tempfile
        >>> cache = JobCache(tempfile.mkdtemp())
        >>> job = {"name": "a", "x": 1}
        >>> _ = cache.put(job, {"y": 2}); cache.get(job), cache.get({**job, "x": 2})
        ({'y': 2}, None)
    """

    def __init__(self, folder: str | Path, key: KeyFn | None = None):
        self.folder = Path(folder)
        self._key = key if key is not None else (lambda job: job)

    def digest(self, job: Mapping[str, Any]) -> str:
        """The job's key digest (16 hex digits)."""
        payload = dict(self._key(job))
        payload["brickwork"] = __version__
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def path(self, job: Mapping[str, Any]) -> Path:
        """Where the job's result is kept."""
        name = job.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise TrainingError(
                f"JobCache: job name {name!r} cannot name a file; give every job a "
                "'name' of letters, digits and _ . @ = + - (not starting with a symbol)"
            )
        return self.folder / f"{name}.json"

    def get(self, job: Mapping[str, Any]) -> dict[str, Any] | None:
        """The stored result when it was computed under this job's key, else None (no
        file, another key, or a damaged file: logged)."""
        path = self.path(job)
        if not path.exists():
            return None
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            log.warning("%s: unreadable (%s); the job runs again", path, exc)
            return None
        if not isinstance(saved, dict) or saved.get("key") != self.digest(job):
            return None
        result = saved.get("result")
        return result if isinstance(result, dict) else None

    def put(self, job: Mapping[str, Any], result: Mapping[str, Any]) -> Path:
        """Store a result (atomically) with the job and its key digest."""
        path = self.path(job)
        atomic_write_json(
            path, {"key": self.digest(job), "job": dict(job), "result": dict(result)}, indent=1
        )
        return path

    def run(
        self,
        fn: Callable[[dict[str, Any]], dict[str, Any]],
        jobs: Sequence[Mapping[str, Any]],
        *,
        executor: Executor | None = None,
        workers: int = 1,
        progress: bool = False,
        desc: str = "jobs",
    ) -> dict[str, dict[str, Any]]:
        """Results of every job by name: stored ones reused, the rest run by ``fn`` on
        ``executor`` and stored as each finishes, so an interrupted run resumes. Jobs
        run in the order given (put the longest first).

        Without ``executor``: a :class:`~brickwork.training.executor.LocalExecutor` of
        ``min(workers, jobs to run)`` worker processes (``fn`` must be importable), or
        this process (``in_process``) when that is 1."""
        names = [self.path(job).stem for job in jobs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise TrainingError(
                f"JobCache: job names {dupes} appear more than once; names key the results"
            )
        done: dict[str, dict[str, Any]] = {}
        todo: list[dict[str, Any]] = []
        for job in jobs:
            hit = self.get(job)
            if hit is not None:
                done[job["name"]] = hit
            else:
                todo.append(dict(job))
        if done:
            log.info(
                "resuming: %d of %d jobs already done under %s", len(done), len(jobs), self.folder
            )
        if not todo:
            return {n: done[n] for n in names}

        def save(i: int, res: dict[str, Any]) -> None:
            self.put(todo[i], res)
            done[todo[i]["name"]] = res
            log.info("job %s done", todo[i]["name"])

        if executor is not None:
            executor.map(fn, todo, progress=progress, desc=desc, on_result=save)
        else:
            n = min(max(1, workers), len(todo))
            with LocalExecutor(in_process=True) if n == 1 else LocalExecutor(workers=n) as ex:
                ex.map(fn, todo, progress=progress, desc=desc, on_result=save)
        return {n: done[n] for n in names}


__all__ = ["JobCache", "KeyFn", "source_digests"]
