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

JOBS = '''
import os, time

def sleepy(job):
    with open(job["pidfile"] + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(job["pidfile"] + ".tmp", job["pidfile"])
    time.sleep(120)
    return {}
'''

OWNER = '''
import sys
sys.path.insert(0, {folder!r})
from brickwork.training.executor import LocalExecutor
from jobs_for_owner_test import sleepy

if __name__ == "__main__":
    with LocalExecutor(workers=1) as ex:
        ex.map(sleepy, [{{"pidfile": {pidfile!r}}}])
'''


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
