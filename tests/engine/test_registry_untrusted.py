"""Untrusted import folders (FIFO, devices, symlinks, sizes, hostile configs), the
exported folder's files, kinds from a separate package, and the put/remove blob race."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch

from brickwork.errors import RegistryError
from brickwork.registry import Registry
from brickwork.training.fixtures import ToyClassifier


@pytest.fixture
def exported(tmp_path):
    reg = Registry(tmp_path / "src")
    torch.manual_seed(0)
    reg.put("toy_classifier.good", ToyClassifier(dim=4, classes=2), metrics={"acc": 0.9})
    return reg.export("toy_classifier.good", tmp_path / "exp")


def _refused_quickly(action, match):
    t = time.perf_counter()
    with pytest.raises(RegistryError, match=match):
        action()
    assert time.perf_counter() - t < 1.0


def test_exported_folder_is_portable(exported):
    meta = json.loads((exported / "config.json").read_text())
    assert meta["module"] == "brickwork.training.fixtures" and meta["registry_card"]["version"] == 1
    readme = (exported / "README.md").read_text()
    assert readme.startswith("---\n") and "library_name: brickwork" in readme
    assert "Module.from_pretrained" in readme and "toy_classifier.good@1" in readme
    assert oct(os.stat(exported / "config.json").st_mode & 0o777) != oct(0o600)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_config_is_refused_at_once(exported, tmp_path):
    (exported / "config.json").unlink()
    os.mkfifo(exported / "config.json")
    _refused_quickly(
        lambda: Registry(tmp_path / "dst").import_(exported),
        r"config.json: is a FIFO; an import folder must hold regular files",
    )


def test_symlink_to_dev_zero_is_refused_at_once(exported, tmp_path):
    (exported / "model.safetensors").unlink()
    os.symlink("/dev/zero", exported / "model.safetensors")
    _refused_quickly(
        lambda: Registry(tmp_path / "dst").import_(exported),
        r"model.safetensors: a symbolic link pointing out of the folder \(to /dev/zero\)",
    )


def test_symlink_out_of_the_folder_is_refused(exported, tmp_path):
    outside = tmp_path / "outside.json"
    (exported / "config.json").rename(outside)
    os.symlink(outside, exported / "config.json")
    _refused_quickly(
        lambda: Registry(tmp_path / "dst").import_(exported),
        "config.json: a symbolic link pointing out of the folder",
    )


def test_symlink_inside_the_folder_is_followed(exported, tmp_path):
    (exported / "model.safetensors").rename(exported / "weights.bin.safetensors")
    os.symlink("weights.bin.safetensors", exported / "model.safetensors")
    assert Registry(tmp_path / "dst").import_(exported).ref == "toy_classifier.good@1"


def test_size_caps(exported, tmp_path):
    dst = Registry(tmp_path / "dst")
    _refused_quickly(
        lambda: dst.import_(exported, max_weights_bytes=100),
        r"model.safetensors: \d+ bytes, more than the 100 allowed; pass "
        r"max_weights_bytes=",
    )
    (exported / "config.json").write_bytes(b" " * ((1 << 20) + 1))
    _refused_quickly(lambda: dst.import_(exported), r"config.json: 1048577 bytes, more than")


def test_hostile_config_is_refused_before_building(exported, tmp_path):
    meta = json.loads((exported / "config.json").read_text())
    meta["config"]["hidden"] = meta["registry_card"]["config"]["hidden"] = 200_000_000
    (exported / "config.json").write_text(json.dumps(meta))
    # 200M x 4 floats would be 3.2 GB: the shapes are compared on the meta device first
    _refused_quickly(
        lambda: Registry(tmp_path / "dst").import_(exported), r"does not fit the weights"
    )


def test_directory_in_place_of_a_file(exported, tmp_path):
    (exported / "config.json").unlink()
    (exported / "config.json").mkdir()
    _refused_quickly(
        lambda: Registry(tmp_path / "dst").import_(exported), "config.json: is a directory"
    )
    with pytest.raises(RegistryError, match="not a folder"):
        Registry(tmp_path / "dst").import_(exported / "model.safetensors")


def test_import_adds_a_version(exported, tmp_path):
    dst = Registry(tmp_path / "dst")
    assert dst.import_(exported).ref == "toy_classifier.good@1"
    assert dst.import_(exported).ref == "toy_classifier.good@1"  # the same content: kept
    assert dst.import_(exported, "toy_classifier.copy").ref == "toy_classifier.copy@1"


def test_kind_module_outside_the_allow_list_is_not_imported(exported, tmp_path):
    meta = json.loads((exported / "config.json").read_text())
    for where in (meta, meta["registry_card"]):
        where["kind"], where["module"] = "evil_kind", "antigravity"
    (exported / "config.json").write_text(json.dumps(meta))
    with pytest.raises(
        RegistryError,
        match=r"unknown module kind 'evil_kind': it is defined in "
        r"module 'antigravity', which is not allowed.*--import",
    ):
        Registry(tmp_path / "dst").import_(exported)
    assert "antigravity" not in sys.modules


FIXTURE = "brickwork_toykinds.kinds"


def test_kind_from_a_separate_package_round_trips_in_fresh_interpreters(tmp_path):
    """A kind defined outside brickwork: export, import into another registry and load
    it in fresh interpreters (the fixture package declares a brickwork.kinds entry point)."""
    pytest.importorskip("brickwork_toykinds")
    script = f"""
import sys, torch
from brickwork.registry import Registry
import {FIXTURE} as k
torch.manual_seed(0)
kind = [n for n in ("tk_find",) ][0]
from brickwork.modules import build_kind as build
m = build(kind, {{"channels": 3}})
reg = Registry(sys.argv[1])
card = reg.put(kind + ".a", m)
reg.export(card.ref, sys.argv[2])
x = torch.rand(2, 3, 4, 4)
torch.save(m(x), sys.argv[3])
torch.save(x, sys.argv[4])
"""
    paths = [str(tmp_path / p) for p in ("reg", "exp", "y.pt", "x.pt")]
    subprocess.run([sys.executable, "-c", script, *paths], check=True)
    cli = [
        sys.executable,
        "-m",
        "brickwork",
        "registry",
        "--registry",
        str(tmp_path / "reg2"),
        "import",
        paths[1],
    ]
    r = subprocess.run(cli, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "imported tk_find.a@1" in r.stdout
    load = f"""
import sys, torch
from brickwork.registry import Registry
m = Registry(sys.argv[1]).load("tk_find.a")
y = m(torch.load(sys.argv[2], weights_only=True))
assert torch.equal(y, torch.load(sys.argv[3], weights_only=True)), "outputs differ"
print("{FIXTURE}" in sys.modules)
"""
    r = subprocess.run(
        [sys.executable, "-c", load, str(tmp_path / "reg2"), paths[3], paths[2]],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and r.stdout.strip() == "True", r.stderr


RACE = r"""
import json, sys, time, torch
from brickwork.registry import Registry
from brickwork.training.fixtures import ToyClassifier
root, who, n, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
torch.manual_seed(0)  # both processes hold identical weights
module = ToyClassifier(dim=4, classes=2, hidden=4)
reg = Registry(root)
while time.time() < start:
    time.sleep(0.001)
lost = errors = 0
for i in range(n):
    try:
        card = reg.put(f"toy_classifier.{who}", module)
        if not reg.blob_path(card.weights_sha256).exists():
            lost += 1
        elif i % 10 == 0:
            reg.load(card.ref)
        reg.remove(f"toy_classifier.{who}")
    except Exception as exc:
        errors += 1
        print("ERR", type(exc).__name__, exc, file=sys.stderr)
print(json.dumps({"lost": lost, "errors": errors}))
"""


def test_put_racing_remove_of_identical_weights_never_loses_a_blob(tmp_path):
    root = tmp_path / "race"
    Registry(root)
    start = time.time() + 2.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(root), who, "100", str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        for who in ("a", "b")
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert results == [{"lost": 0, "errors": 0}] * 2
    reg = Registry(root)
    assert len(reg) == 0 and reg.verify() == []


def test_readme_use_snippet_runs_in_a_fresh_interpreter(exported):
    readme = (exported / "README.md").read_text()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    assert "from_pretrained" in code
    r = subprocess.run([sys.executable, "-c", code], cwd=exported, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "(x: Features['b 4']) -> (probs: Probs['b 2'])"
