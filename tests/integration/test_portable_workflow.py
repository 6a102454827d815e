"""A module travels: train → export → import into another registry → load elsewhere.

The kinds live in a separate package installed in the environment
(``tests/fixtures/brickwork_toykinds``, found through its ``brickwork.kinds`` entry
point); every step runs in its own fresh interpreter, as a user on another machine
would, and the outputs of the loaded module are compared bit for bit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from brickwork.training import Samples

pytest.importorskip("brickwork_toykinds", reason="make installs tests/fixtures/brickwork_toykinds")

BRICKWORK = [sys.executable, "-m", "brickwork"]


def _run(args: list[str], cwd: Path, **kw: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, **kw)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, f"{args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def _write_plan(folder: Path) -> Path:
    """exist(find[red]) and exist(find[blue]) over 4-channel 3x3 feature maps."""
    g = torch.Generator().manual_seed(0)
    n = 384
    features = torch.randn(n, 4, 3, 3, generator=g)
    layout = torch.randint(0, 2, (n,), generator=g)
    channel = features[torch.arange(n), layout]  # red reads channel 0, blue channel 1
    answer = (channel.flatten(1).amax(1) > 1.5).float()
    Samples({"features": features, "layout": layout, "answer": answer}).save(
        folder / "data.safetensors"
    )
    spec = {
        "name": "portable",
        "kinds": {
            "find": {"kind": "tk_find", "config": {"channels": 4, "hidden": 8}},
            "exist": {"kind": "tk_exist", "config": {}},
        },
        "layouts": [
            {
                "name": f"exist-{c}",
                "program": [
                    {"function": "find", "inputs": [], "value_inputs": [c]},
                    {"function": "exist", "inputs": [0]},
                ],
                "externals": {"features": "Features[b 4 h w]"},
            }
            for c in ("red", "blue")
        ],
        "data": {"inputs": ["features"], "targets": ["answer"], "path": "data.safetensors"},
        "train": {
            "seed": 0,
            "workers": 1,
            "hparams": {"find": {"epochs": 2}, "exist": {"epochs": 2}},
        },
    }
    path = folder / "plan.json"
    path.write_text(json.dumps(spec, indent=2))
    return path


_OUTPUTS = """
import sys, torch
from safetensors.torch import save_file
from brickwork.modules import Module
ref, out = sys.argv[1], sys.argv[2]
registry = sys.argv[3] if len(sys.argv) > 3 else None
assert "brickwork_toykinds" not in sys.modules
module = Module.from_pretrained(ref, registry=registry)
x = torch.randn(5, 4, 3, 3, generator=torch.Generator().manual_seed(7))
fp = torch.tensor(list(module.fingerprint().encode()))
save_file({"mask": module(x).contiguous(), "fp": fp}, out)
print(type(module).__module__)
"""


@pytest.mark.slow
def test_train_export_import_load_is_bit_identical(tmp_path: Path) -> None:
    plan = _write_plan(tmp_path)
    train = _run([*BRICKWORK, "train", str(plan), "--out", "run", "--registry", "reg1"], tmp_path)
    registered = json.loads((tmp_path / "run" / "summary.json").read_text())["registered"]
    ref = registered["find[red]"]
    assert ref.startswith("tk_find.red") and ref in train.stdout
    name = ref.split("@")[0]

    _run([*BRICKWORK, "registry", "export", ref, "hub/find-red", "--registry", "reg1"], tmp_path)
    card = (tmp_path / "hub" / "find-red" / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: brickwork" in card
    config = json.loads((tmp_path / "hub" / "find-red" / "config.json").read_text())
    assert config["module"] == "brickwork_toykinds.kinds"
    _run([*BRICKWORK, "registry", "import", "hub/find-red", "--registry", "reg2"], tmp_path)
    listing = json.loads(
        _run([*BRICKWORK, "registry", "list", "--json", "--registry", "reg2"], tmp_path).stdout
    )
    assert name in json.dumps(listing)

    script = tmp_path / "outputs.py"
    script.write_text(_OUTPUTS)
    py = [sys.executable, str(script)]
    origin = _run([*py, ref, "a.safetensors", "reg1"], tmp_path)
    _run([*py, name, "b.safetensors", "reg2"], tmp_path)
    _run([*py, "hub/find-red", "c.safetensors"], tmp_path)
    assert origin.stdout.strip() == "brickwork_toykinds.kinds"
    a, b, c = (
        (tmp_path / f).read_bytes() for f in ("a.safetensors", "b.safetensors", "c.safetensors")
    )
    assert a == b == c
