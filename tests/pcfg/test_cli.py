"""``brickwork pcfg train|evaluate|generate`` end to end (all ten modules, quick)."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def _bw(*args, cwd, env):
    return subprocess.run(
        [sys.executable, "-m", "brickwork", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_train_then_evaluate_from_registry(tmp_path):
    env = {**os.environ, "BRICKWORK_REGISTRY": str(tmp_path / "reg")}
    r = _bw(
        "pcfg", "generate", "--out", "data", "--train", "0", "--test", "60", cwd=tmp_path, env=env
    )
    assert r.returncode == 0, r.stderr
    r = _bw(
        "pcfg",
        "train",
        "--out",
        "run",
        "--examples",
        "500",
        "--max-time",
        "60",
        cwd=tmp_path,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert "pcfg.remove_second@1" in r.stdout
    r = _bw(
        "pcfg",
        "evaluate",
        "--src",
        "data/test.src",
        "--tgt",
        "data/test.tgt",
        "--json",
        "e.json",
        cwd=tmp_path,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "e.json").read_text())
    assert rep["accuracy"] == 1.0 and rep["n"] == 60
    assert {"by_functions", "by_target_length", "by_function"} <= set(rep)
    assert min(int(k) for k in rep["by_functions"]) >= 9
    # a wrong target is reported with its first mismatching position
    lines = (tmp_path / "data/test.tgt").read_text().splitlines()
    first = lines[0].split()
    lines[0] = (
        " ".join(first[:1] + ["Z20" if first[1:2] != ["Z20"] else "A1"] + first[2:])
        if len(first) > 1
        else "Z20 Z20"
    )
    (tmp_path / "bad.tgt").write_text("\n".join(lines) + "\n")
    r = _bw(
        "pcfg",
        "evaluate",
        "--src",
        "data/test.src",
        "--tgt",
        "bad.tgt",
        "--json",
        "b.json",
        "--run",
        "run",
        cwd=tmp_path,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    err = json.loads((tmp_path / "b.json").read_text())["errors"]
    assert err[0]["line"] == 1 and err[0]["first_mismatch"] == 1
    # bad input: one line naming the token position
    (tmp_path / "bad.src").write_text("append A1 B2 reverse C3\n")
    (tmp_path / "one.tgt").write_text("A1\n")
    r = _bw("pcfg", "evaluate", "--src", "bad.src", "--tgt", "one.tgt", cwd=tmp_path, env=env)
    assert r.returncode == 2
    msg = r.stderr.strip().splitlines()
    assert len(msg) == 1 and "bad.src:1: token 4 'reverse': expected ','" in msg[0]
