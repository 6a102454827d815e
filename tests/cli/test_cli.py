"""The command line: help, version, error display."""

from __future__ import annotations

import subprocess
import sys

import pytest

from brickwork import __version__
from brickwork.cli import build_parser, main


def test_help_and_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"brickwork {__version__}"
    assert "demo" in build_parser().format_help()


def test_python_dash_m_runs_the_cli():
    res = subprocess.run(
        [sys.executable, "-m", "brickwork", "--help"], capture_output=True, text=True, check=True
    )
    assert "usage: brickwork" in res.stdout


def test_core_demo_trains_and_checks(tmp_path):
    from brickwork.cli.core_demo import run_core_demo

    summary = run_core_demo(tmp_path, seed=0, steps=100)
    assert summary["test_accuracy"] > 0.9
    assert (tmp_path / "summary.json").exists()
