"""LocalExecutor and RayExecutor: map, submit, device slots, in-process runs, dead or
orphaned workers, the main guard."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

JOBS = """
import os, time

def sleepy(job):
    with open(job["pidfile"] + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(job["pidfile"] + ".tmp", job["pidfile"])
    time.sleep(120)
    return {}
"""

OWNER = """
import sys
sys.path.insert(0, {folder!r})
from brickwork.training.executor import LocalExecutor
from jobs_for_owner_test import sleepy

if __name__ == "__main__":
    with LocalExecutor(workers=1) as ex:
        ex.map(sleepy, [{{"pidfile": {pidfile!r}}}])
"""


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_workers_end_when_their_owner_is_killed(tmp_path):
    (tmp_path / "jobs_for_owner_test.py").write_text(JOBS)
    pidfile = tmp_path / "worker.pid"
    script = tmp_path / "owner.py"
    script.write_text(textwrap.dedent(OWNER.format(folder=str(tmp_path), pidfile=str(pidfile))))
    owner = subprocess.Popen([sys.executable, str(script)])
    worker = None
    try:
        deadline = time.monotonic() + 90
        while not pidfile.exists():
            assert owner.poll() is None, "the owner process ended before its job started"
            assert time.monotonic() < deadline, "the worker never started its job"
            time.sleep(0.2)
        worker = int(pidfile.read_text())
        assert _running(worker)
        owner.kill()  # SIGKILL: no clean-up code of the owner runs
        owner.wait()
        deadline = time.monotonic() + 15
        while _running(worker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _running(worker), "the worker kept running after its owner was killed"
    finally:
        if owner.poll() is None:
            owner.kill()
        if worker is not None and _running(worker):
            os.kill(worker, signal.SIGKILL)


# ---------------------------------------------------------------- devices, workers, guard


def _slot(job):
    import time

    t0 = time.time()
    time.sleep(0.3)
    return {"device": job.get("device"), "start": t0, "end": time.time()}


def test_local_executor_gives_each_job_its_slot_device():
    from brickwork.training.executor import LocalExecutor

    with LocalExecutor(devices=["cpu", "meta"]) as ex:
        assert ex.workers == 2 and ex.devices == ["cpu", "meta"]
        out = ex.map(_slot, [{"i": i} for i in range(6)])
    assert {r["device"] for r in out} == {"cpu", "meta"}
    # a device's slot runs one job at a time: jobs given one device never overlap
    for dev in ("cpu", "meta"):
        spans = sorted((r["start"], r["end"]) for r in out if r["device"] == dev)
        assert all(a[1] <= b[0] + 0.01 for a, b in zip(spans, spans[1:]))


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"workers": 0}, "workers must be >= 1, got 0"),
        ({"workers": -2}, "workers must be >= 1, got -2"),
        ({"devices": ["gpu7"]}, "device 'gpu7' is not one of cpu, cuda, cuda:N"),
        ({"devices": []}, "give at least one device"),
    ],
)
def test_local_executor_refuses_bad_arguments(kw, message):
    from brickwork.errors import TrainingError
    from brickwork.training.executor import LocalExecutor, make_executor

    with pytest.raises(TrainingError, match=message):
        LocalExecutor(**kw)
    if "workers" in kw:
        with pytest.raises(TrainingError, match=message):
            make_executor("local", workers=kw["workers"])


UNGUARDED = """
from brickwork.training.executor import LocalExecutor, _echo
with LocalExecutor(2) as ex:
    print(ex.map(_echo, [{"x": 1}]))
"""

GUARDED = """
from brickwork.training.executor import LocalExecutor, _echo

def main():
    with LocalExecutor(1) as ex:
        print(ex.map(_echo, [{"x": 1}]))

if __name__ == "__main__":
    main()
"""


def test_missing_main_guard_is_one_line(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(UNGUARDED)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and time.monotonic() - t0 < 60
    last = proc.stderr.strip().splitlines()[-1]
    assert f"{bad}:3:" in last and "wrap the call in `if __name__ == '__main__':`" in last
    good = tmp_path / "good.py"
    good.write_text(GUARDED)
    proc = subprocess.run([sys.executable, str(good)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "{'x': 1}" in proc.stdout, proc.stderr


def _die(job):
    import os

    os._exit(3)


def test_a_dead_worker_is_one_error_with_the_hint():
    from brickwork.errors import TrainingError
    from brickwork.training.executor import LocalExecutor

    with LocalExecutor(1) as ex:
        with pytest.raises(
            TrainingError, match=r"job 'x': a worker process died abruptly.*__main__"
        ):
            ex.map(_die, [{"name": "x"}])


def test_ray_executor_asks_for_a_gpu_for_cuda_jobs(monkeypatch):
    """Without Ray installed: a fake ``ray`` records the options of each task."""
    import types
    from concurrent.futures import Future

    from brickwork.training import executor as exmod

    calls = []

    class Ref:
        """An ObjectRef whose task ran: ``future()`` is done (fails for job 'bad')."""

        def __init__(self, job):
            self.job = job

        def future(self):
            fut = Future()
            if self.job.get("name") == "bad":
                fut.set_exception(RuntimeError("boom on a node"))
            else:
                fut.set_result({"ref": len(calls) - 1})
            return fut

    class Remote:
        def __init__(self, opts=None):
            self.opts = opts or {}

        def options(self, **kw):
            return Remote(kw)

        def remote(self, module, qualname, job):
            calls.append((self.opts, job))
            return Ref(job)

    fake = types.SimpleNamespace(
        is_initialized=lambda: True,
        cluster_resources=lambda: {"CPU": 2},
        remote=lambda **kw: lambda fn: Remote(),
        cancel=lambda ref: None,
        shutdown=lambda: None,
    )
    monkeypatch.setitem(sys.modules, "ray", fake)
    ex = exmod.RayExecutor()
    out = ex.map(exmod._echo, [{"device": "cuda:1"}, {"device": "cpu"}, {}])
    assert out == [{"ref": 0}, {"ref": 1}, {"ref": 2}]
    assert calls[0] == ({"num_gpus": 1.0}, {"device": "cuda"})
    assert calls[1][0] == {} and calls[2][0] == {}
    assert ex.submit(exmod._echo, {"device": "cuda"}).result() == {"ref": 3}
    from brickwork.errors import TrainingError

    with pytest.raises(TrainingError, match="job 'bad' failed on Ray: RuntimeError: boom"):
        ex.map(exmod._echo, [{"name": "bad"}])


# ---------------------------------------------------------------- submit


def _square(job):
    if job.get("fail"):
        raise ValueError(f"no square for {job['x']}")
    return {"x": job["x"], "y": job["x"] ** 2, "pid": os.getpid(), "device": job.get("device")}


def test_submit_returns_futures_and_surfaces_the_jobs_exception():
    from concurrent.futures import wait

    from brickwork.training.executor import LocalExecutor

    with LocalExecutor(2) as ex:
        futs = [ex.submit(_square, {"x": x}) for x in range(5)]
        bad = ex.submit(_square, {"x": 7, "fail": True})
        wait(futs + [bad])
        assert [f.result()["y"] for f in futs] == [0, 1, 4, 9, 16]
        assert all(f.result()["pid"] != os.getpid() for f in futs)  # in workers
        with pytest.raises(ValueError, match="no square for 7"):
            bad.result()


def test_submit_after_a_result_and_from_on_result():
    """A scheduler adds jobs as results come in: after waiting on a future, and from
    ``map``'s ``on_result``; the executor keeps working (and ``map`` after that)."""
    from concurrent.futures import wait

    from brickwork.training.executor import LocalExecutor

    with LocalExecutor(2) as ex:
        first = ex.submit(_square, {"x": 3})
        second = ex.submit(_square, {"x": first.result()["y"]})
        assert second.result()["y"] == 81
        extra = []
        out = ex.map(
            _square,
            [{"x": 1}, {"x": 2}],
            on_result=lambda i, r: extra.append(ex.submit(_square, {"x": r["y"] + 10})),
        )
        assert [r["y"] for r in out] == [1, 4]
        done, _ = wait(extra, timeout=60)
        assert sorted(f.result()["y"] for f in done) == [121, 196]
        assert [r["y"] for r in ex.map(_square, [{"x": 5}])] == [25]


def test_in_process_executor_runs_jobs_here_one_torch_thread_each():
    import torch

    from brickwork.errors import TrainingError
    from brickwork.training.executor import LocalExecutor

    threads = torch.get_num_threads()
    with LocalExecutor(1, in_process=True, devices=["meta"]) as ex:
        assert ex.in_process and ex.workers == 1
        got = ex.submit(_threads, {"x": 1}).result()
        assert got["pid"] == os.getpid() and got["threads"] == 1 and got["device"] == "meta"
        assert torch.get_num_threads() == threads  # restored after the job
        bad = ex.submit(_square, {"x": 2, "fail": True})
        with pytest.raises(ValueError, match="no square for 2"):
            bad.result()
        seen = []
        out = ex.map(
            _square, [{"x": 2}, {"x": 3}], on_result=lambda i, r: seen.append((i, len(seen)))
        )
        assert [r["y"] for r in out] == [4, 9] and seen == [(0, 0), (1, 1)]
        with pytest.raises(TrainingError, match=r"job 'sq' failed in a worker: ValueError"):
            ex.map(_square, [{"x": 1, "fail": True, "name": "sq"}])
    with pytest.raises(TrainingError, match="in_process=True.*workers=2"):
        LocalExecutor(2, in_process=True)


def _threads(job):
    import torch

    return {"pid": os.getpid(), "threads": torch.get_num_threads(), "device": job.get("device")}


def test_submitted_jobs_wait_for_a_free_device_slot():
    """More submissions than slots: each job gets its slot's device, and one slot never
    runs two jobs at once."""
    from brickwork.training.executor import LocalExecutor

    with LocalExecutor(devices=["cpu", "meta"]) as ex:
        futs = [ex.submit(_slot, {"i": i}) for i in range(6)]
        out = [f.result(timeout=120) for f in futs]
    # the first two start at once, one per slot; the rest take whichever slot frees first
    assert {out[0]["device"], out[1]["device"]} == {"cpu", "meta"}
    for dev in ("cpu", "meta"):
        spans = sorted((r["start"], r["end"]) for r in out if r["device"] == dev)
        assert all(a[1] <= b[0] + 0.01 for a, b in zip(spans, spans[1:]))


def test_an_executor_without_submit_says_to_use_map():
    from brickwork.errors import TrainingError
    from brickwork.training.executor import Executor, _echo

    class Inline(Executor):
        @property
        def workers(self) -> int:
            return 1

        def map(self, fn, jobs, **kw):
            return [fn(dict(j)) for j in jobs]

    ex = Inline()
    assert ex.map(_echo, [{"x": 1}]) == [{"x": 1}]
    with pytest.raises(TrainingError, match="Inline.submit: .*use map"):
        ex.submit(_echo, {"x": 1})
