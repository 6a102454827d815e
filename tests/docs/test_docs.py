"""The docs run as written: every ``>>>`` example and every ``console`` block.

* ``>>>`` examples in ``docs/*.md`` run as doctests (one namespace per page).
* The other runnable blocks of a page run in page order, in one fresh working folder
  per page: ``console`` blocks command by command (lines starting with ``$ ``), with
  ``brickwork`` from this interpreter's environment on ``PATH`` (a command must exit 0
  unless the line ends with ``# fails``: then it must exit non-zero; never a
  traceback), and ``python`` blocks without ``>>>`` as scripts in one namespace per
  page. Blocks tagged ``text`` or ``bash`` are illustrations and are not run.
"""

from __future__ import annotations

import doctest
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
_BLOCK = re.compile(r"```(console|python)\n(.*?)```", re.S)


@pytest.mark.parametrize("page", DOCS, ids=[p.name for p in DOCS])
def test_doctests_in_docs(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = doctest.testfile(
        str(page),
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
    )
    assert result.failed == 0, f"{page.name}: {result.failed} of {result.attempted} examples failed"


def _runnable_blocks(page: Path) -> list[tuple[str, str]]:
    """(kind, text) of every console block and every python block without ``>>>``."""
    return [
        (kind, text)
        for kind, text in _BLOCK.findall(page.read_text())
        if kind == "console" or ">>>" not in text
    ]


RUNNABLE = [p for p in DOCS if _runnable_blocks(p)]


def _run_console(block: str, page: Path, cwd: Path, env: dict[str, str]) -> None:
    for line in block.splitlines():
        if not line.startswith("$ "):
            continue
        command = line[2:].strip()
        must_fail = command.endswith("# fails")
        command = command.removesuffix("# fails").strip()
        if command.startswith("python "):
            command = f"{shlex.quote(sys.executable)} {command[len('python ') :]}"
        proc = subprocess.run(
            command, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=600
        )
        where = f"{page.name}: `{command}`"
        assert "Traceback" not in proc.stderr, f"{where} printed a traceback:\n{proc.stderr}"
        if must_fail:
            assert proc.returncode != 0, f"{where} should fail but exited 0"
        else:
            assert proc.returncode == 0, (
                f"{where} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-2000:]}"
            )


@pytest.mark.parametrize("page", RUNNABLE, ids=[p.name for p in RUNNABLE])
def test_runnable_blocks_in_docs(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "BRICKWORK_REGISTRY": str(tmp_path / "default-registry"),
        "PYTHONUNBUFFERED": "1",
    }
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BRICKWORK_REGISTRY", env["BRICKWORK_REGISTRY"])
    scope: dict[str, object] = {"__name__": "__main__"}
    for i, (kind, text) in enumerate(_runnable_blocks(page)):
        if kind == "console":
            _run_console(text, page, tmp_path, env)
        else:
            exec(compile(text, f"{page.name} (python block {i})", "exec"), scope)  # noqa: S102 - our docs
