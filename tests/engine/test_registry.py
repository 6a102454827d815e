"""Registry: store, load, search by signature, verify, remove, export/import, names."""

from __future__ import annotations

import json

import pytest
import torch

from brickwork.errors import RegistryError
from brickwork.modules import load_module
from brickwork.registry import Registry, default_registry_path, validate_name
from brickwork.training.fixtures import ToyClassifier, ToyFind
from brickwork.types import Features, Heatmap, SoftMask


@pytest.fixture
def reg(tmp_path):
    r = Registry(tmp_path / "reg")
    torch.manual_seed(0)
    r.put(
        "toy_find.red-v1",
        ToyFind(channels=4),
        mode="surrogate",
        metrics={"iou": 0.9},
        hyperparameters={"lr": 0.003},
        lineage={"upstream": {}},
        data_digest="ab" * 32,
    )
    r.put("toy_find.heat-v1", ToyFind(channels=4, out="heatmap"))
    r.put("toy_classifier.a-v1", ToyClassifier(dim=4, classes=3))
    return r


def test_roundtrip_and_card(reg):
    m = reg.load("toy_find.red-v1")
    card = reg.card("toy_find.red-v1")
    assert m.fingerprint() == card.fingerprint
    assert card.mode == "surrogate" and card.metrics == {"iou": 0.9}
    assert card.brickwork_version and card.created and card.data_digest == "ab" * 32
    assert reg.names() == ["toy_classifier.a-v1", "toy_find.heat-v1", "toy_find.red-v1"]
    # a second put of a name adds a version (nothing is overwritten; see
    # test_registry_versions.py)
    again = reg.put("toy_find.red-v1", ToyFind(channels=4))
    assert again.version == 2 and reg.card("toy_find.red-v1@1").metrics == {"iou": 0.9}


def test_search_by_signature_with_subtypes(reg):
    found = reg.search(
        inputs={"features": Features("b 4 h w")}, outputs={"mask": SoftMask("b 1 h w")}
    )
    assert [c.name for c in found] == ["toy_find.red-v1"]
    # a SoftMask output can stand where a Heatmap is wanted (subtype), not the reverse
    found = reg.search(outputs={"mask": Heatmap("b 1 h w")})
    assert [c.name for c in found] == ["toy_find.heat-v1", "toy_find.red-v1"]
    assert reg.search(inputs={"features": Features("b 5 h w")}) == []


def test_verify_reports_every_problem(reg):
    assert reg.verify() == []
    card = reg.card("toy_find.red-v1")
    blob = reg.blob_path(card.weights_sha256)
    blob.write_bytes(blob.read_bytes()[:-10])
    p = reg.card_path("toy_classifier.a-v1", 1)
    p.write_text(p.read_text().replace('"mode": "direct"', '"mode": "joint"'))
    problems = reg.verify()
    assert {pr.name for pr in problems} == {"toy_find.red-v1@1", "toy_classifier.a-v1@1"}
    with pytest.raises(RegistryError, match="truncated or altered"):
        reg.load("toy_find.red-v1")
    with pytest.raises(RegistryError, match="edited"):
        reg.load("toy_classifier.a-v1")


def test_remove_drops_unused_blob(reg):
    card = reg.card("toy_find.heat-v1")
    reg.remove("toy_find.heat-v1")
    assert "toy_find.heat-v1" not in reg and not reg.blob_path(card.weights_sha256).exists()
    with pytest.raises(RegistryError, match="no registry entry"):
        reg.remove("toy_find.heat-v1")
    assert reg.verify() == []


def test_export_import(reg, tmp_path):
    folder = reg.export("toy_find.red-v1", tmp_path / "exp")
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    assert "toy_find.red-v1" in (folder / "README.md").read_text()
    assert load_module(folder).fingerprint() == reg.card("toy_find.red-v1").fingerprint
    other = Registry(tmp_path / "other")
    card = other.import_(folder)
    assert card.name == "toy_find.red-v1" and other.verify() == []
    assert other.import_(folder, "toy_find.copy-v2").name == "toy_find.copy-v2"
    meta = json.loads((folder / "config.json").read_text())
    meta["registry_card"]["metrics"] = {"iou": 1.0}
    meta["fingerprint"] = "0" * 64
    meta["registry_card"]["fingerprint"] = "0" * 64
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(RegistryError, match="fingerprint"):
        other.import_(folder, "toy_find.bad-v1")


@pytest.mark.parametrize(
    "bad", ["../x.y", "a/b.c", "noseparator", "x.", ".x.y", "x..y", "x.a b", "x.a\\b", "x.a\x00", 3]
)
def test_name_validation(bad):
    with pytest.raises(RegistryError, match="invalid|must be a string"):
        validate_name(bad)


def test_default_location(monkeypatch, tmp_path):
    monkeypatch.setenv("BRICKWORK_REGISTRY", str(tmp_path / "envreg"))
    assert default_registry_path() == tmp_path / "envreg"
    assert Registry().root == tmp_path / "envreg"
    monkeypatch.delenv("BRICKWORK_REGISTRY")
    assert "brickwork" in str(default_registry_path())


def test_index_is_wal(reg):
    import sqlite3

    conn = sqlite3.connect(reg.index_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def _put_one(root, i, barrier):
    torch.manual_seed(i)
    module = ToyFind(channels=4)
    barrier.wait()  # every process opens the new index at the same moment
    Registry(root).put(f"toy_find.p{i}-v1", module)


def test_many_processes_create_and_fill_one_registry(tmp_path):
    # processes that create and fill one new registry at the same moment (as the NMN
    # study's workers do) all land their entries; a study run once failed with
    # "database is locked" from the index set-up (now retried, see registry/index.py)
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    root, n = tmp_path / "shared", 6
    barrier = ctx.Barrier(n)
    procs = [ctx.Process(target=_put_one, args=(root, i, barrier)) for i in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    for p in procs:
        if p.is_alive():  # a hung writer fails the test instead of outliving it
            p.terminate()
    assert [p.exitcode for p in procs] == [0] * n
    assert sorted(Registry(root).names()) == sorted(f"toy_find.p{i}-v1" for i in range(n))
