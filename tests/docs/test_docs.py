"""The docs run as written: every ``>>>`` example and every ``console`` block.

* ``>>>`` examples in ``docs/*.md`` run as doctests (one namespace per page).
* Fenced blocks tagged ``console`` run command by command (lines starting with ``$ ``)
  in one fresh working folder per page, in order, with ``brickwork`` from this
  interpreter's environment on ``PATH``; a command must exit 0 unless the line ends
  with ``# fails`` (then it must exit non-zero and print no traceback). Blocks tagged
  ``text`` or ``bash`` are illustrations and are not run.
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
_CONSOLE = re.compile(r"```console\n(.*?)```", re.S)


@pytest.mark.parametrize("page", DOCS, ids=[p.name for p in DOCS])
def test_doctests_in_docs(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = doctest.testfile(str(page), module_relative=False,
                              optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{page.name}: {result.failed} of {result.attempted} examples failed"


def _console_commands(page: Path) -> list[str]:
    commands = []
    for block in _CONSOLE.findall(page.read_text()):
        for line in block.splitlines():
            if line.startswith("$ "):
                commands.append(line[2:].strip())
    return commands


PAGES_WITH_CONSOLE = [p for p in DOCS if _console_commands(p)]


@pytest.mark.parametrize("page", PAGES_WITH_CONSOLE, ids=[p.name for p in PAGES_WITH_CONSOLE])
def test_console_blocks_in_docs(page: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "BRICKWORK_REGISTRY": str(tmp_path / "default-registry"), "PYTHONUNBUFFERED": "1"}
    for command in _console_commands(page):
        must_fail = command.endswith("# fails")
        command = command.removesuffix("# fails").strip()
        if command.startswith("python "):
            command = f"{shlex.quote(sys.executable)} {command[len('python '):]}"
        proc = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=600)
        where = f"{page.name}: `{command}`"
        assert "Traceback" not in proc.stderr, f"{where} printed a traceback:\n{proc.stderr}"
        if must_fail:
            assert proc.returncode != 0, f"{where} should fail but exited 0"
        else:
            assert proc.returncode == 0, (f"{where} exited {proc.returncode}\n"
                                          f"stdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-2000:]}")
