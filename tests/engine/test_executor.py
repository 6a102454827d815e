"""LocalExecutor workers do not outlive the process that owns the pool."""

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

    from brickwork.training import executor as exmod

    calls = []

    class Remote:
        def __init__(self, opts=None):
            self.opts = opts or {}

        def options(self, **kw):
            return Remote(kw)

        def remote(self, module, qualname, job):
            calls.append((self.opts, job))
            return len(calls) - 1

    fake = types.SimpleNamespace(
        is_initialized=lambda: True,
        cluster_resources=lambda: {"CPU": 2},
        remote=lambda **kw: lambda fn: Remote(),
        wait=lambda pending, num_returns: (pending[:1], pending[1:]),
        get=lambda ref: {"ref": ref},
        cancel=lambda ref: None,
        shutdown=lambda: None,
    )
    monkeypatch.setitem(sys.modules, "ray", fake)
    ex = exmod.RayExecutor()
    out = ex.map(exmod._echo, [{"device": "cuda:1"}, {"device": "cpu"}, {}])
    assert len(out) == 3
    assert calls[0] == ({"num_gpus": 1.0}, {"device": "cuda"})
    assert calls[1][0] == {} and calls[2][0] == {}
