"""Registry versions, aliases, globs, reindex, the first-format migration and the CLI."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest
import torch

from brickwork.cli import main
from brickwork.errors import RegistryError
from brickwork.registry import Registry, parse_ref
from brickwork.training.fixtures import ToyClassifier, ToyFind


def _find(seed: int = 0) -> ToyFind:
    torch.manual_seed(seed)
    return ToyFind(channels=4)


@pytest.fixture
def reg(tmp_path):
    r = Registry(tmp_path / "reg")
    r.put("toy_find.red", _find(0), metrics={"iou": 0.5})
    r.put("toy_find.red", _find(1), metrics={"iou": 0.7})
    r.put("toy_find.blue", _find(2))
    r.put("toy_classifier.a", ToyClassifier(dim=4, classes=3))
    return r


def test_put_adds_versions_and_never_overwrites(reg):
    assert [e.ref for e in reg.versions("toy_find.red")] == ["toy_find.red@1", "toy_find.red@2"]
    assert reg.card("toy_find.red").version == 2
    assert reg.card("toy_find.red@1").metrics == {"iou": 0.5}
    assert reg.card("toy_find.red@latest").metrics == {"iou": 0.7}
    m1, m2 = reg.load("toy_find.red@1"), reg.load("toy_find.red")
    assert not torch.equal(m1.state_dict()["net.0.weight"], m2.state_dict()["net.0.weight"])
    assert reg.card_path("toy_find.red", 1).exists() and reg.card_path("toy_find.red", 2).exists()
    assert len(reg) == 3 and reg.names("toy_find.*") == ["toy_find.blue", "toy_find.red"]


def test_identical_put_returns_the_existing_version(reg):
    again = reg.put("toy_find.red", _find(1), metrics={"iou": 0.7})
    assert again.ref == "toy_find.red@2"
    third = reg.put("toy_find.red", _find(1), metrics={"iou": 0.8})  # another card: new version
    assert third.ref == "toy_find.red@3"


def test_overwrite_keyword_is_ignored_with_a_warning(reg, caplog):
    card = reg.put("toy_find.blue", _find(5), overwrite=True)
    assert card.version == 2 and reg.card("toy_find.blue@1")
    assert "deprecated" in caplog.text


def test_version_numbers_are_never_reused(reg):
    assert reg.remove("toy_find.red@2") == ["toy_find.red@2"]
    assert reg.card("toy_find.red").version == 1
    assert reg.put("toy_find.red", _find(9)).version == 3
    with pytest.raises(RegistryError, match=r"has no version 2; its versions are \[1, 3\]"):
        reg.card("toy_find.red@2")


def test_remove_name_removes_every_version_and_unused_blobs(reg):
    shas = {e.card.weights_sha256 for e in reg.versions("toy_find.red")}
    assert reg.remove("toy_find.red") == ["toy_find.red@1", "toy_find.red@2"]
    assert "toy_find.red" not in reg and "toy_find.red@1" not in reg
    assert not any(reg.blob_path(s).exists() for s in shas)
    with pytest.raises(RegistryError, match="no registry entry 'toy_find.red'"):
        reg.remove("toy_find.red")
    assert reg.verify() == []


def test_aliases_move_only_explicitly(reg):
    assert reg.alias("toy_find.red@1", "production").ref == "toy_find.red@1"
    reg.put("toy_find.red", _find(3))
    assert reg.card("toy_find.red@production").version == 1  # a put does not move it
    assert reg.resolve("toy_find.red") == "toy_find.red@3"
    reg.alias("toy_find.red@2", "production")
    assert reg.resolve("toy_find.red@production") == "toy_find.red@2"
    assert [e.aliases for e in reg.versions("toy_find.red")] == [(), ("production",), ("latest",)]
    with pytest.raises(
        RegistryError,
        match=r"has no alias 'staging' \(aliases: \['latest', "
        r"'production'\]\); set it with",
    ):
        reg.load("toy_find.red@staging")
    with pytest.raises(RegistryError, match="'latest' is implicit"):
        reg.alias("toy_find.red@1", "latest")
    reg.remove("toy_find.red@2")  # the alias goes with its version
    with pytest.raises(RegistryError, match="no alias 'production'"):
        reg.card("toy_find.red@production")
    state = json.loads(reg.state_path.read_text())
    assert state["aliases"] == {} and state["next_version"]["toy_find.red"] == 4


@pytest.mark.parametrize(
    "ref,message",
    [
        ("toy_find.red@0", "versions start at 1"),
        ("toy_find.red@-1", "after '@' write a version number"),
        ("toy_find.red@a b", "after '@' write a version number"),
        ("../x.y@1", "is invalid"),
    ],
)
def test_bad_references(reg, ref, message):
    with pytest.raises(RegistryError, match=message):
        reg.card(ref)


def test_parse_ref():
    assert parse_ref("a.b@12") == ("a.b", 12) and parse_ref("a.b@prod") == ("a.b", "prod")


def test_list_and_search_take_globs(reg):
    assert [e.ref for e in reg.list("toy_find.*")] == ["toy_find.blue@1", "toy_find.red@2"]
    assert [e.ref for e in reg.list("toy_find.r?d", all_versions=True)] == [
        "toy_find.red@1",
        "toy_find.red@2",
    ]
    assert [c.ref for c in reg.search(pattern="*.red")] == ["toy_find.red@2"]
    assert [c.ref for c in reg.search(pattern="*.red", all_versions=True)] == [
        "toy_find.red@1",
        "toy_find.red@2",
    ]
    assert reg.list("nothing.*") == []


def test_damaged_card_is_flagged_not_hidden(reg):
    p = reg.card_path("toy_find.blue", 1)
    p.write_text(p.read_text().replace('"mode": "direct"', '"mode": "joint"'))
    entries = {e.ref: e for e in reg.list()}
    assert set(entries) == {"toy_find.blue@1", "toy_find.red@2", "toy_classifier.a@1"}
    bad = entries["toy_find.blue@1"]
    assert not bad.ok and "does not match the digest" in bad.problem and "verify" in bad.problem
    assert [c.name for c in reg.cards()] == ["toy_classifier.a", "toy_find.red"]


def test_lost_index_refuses_then_reindex_restores_everything(reg):
    reg.alias("toy_find.red@1", "production")
    reg.remove("toy_find.blue")
    before = {e.ref: e.card for e in reg.list(all_versions=True)}
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{reg.index_path}{suffix}"):
            os.remove(f"{reg.index_path}{suffix}")
    fresh = Registry(reg.root)
    for action in (
        fresh.list,
        fresh.names,
        lambda: fresh.load("toy_find.red"),
        lambda: fresh.put("toy_find.red", _find(7)),
    ):
        with pytest.raises(
            RegistryError,
            match=r"index holds no entries but .* holds cards .*"
            r"run `brickwork registry reindex`",
        ):
            action()
    problems = fresh.verify()
    assert problems and all(p.needs_reindex for p in problems)
    report = fresh.reindex()
    assert (report.names, report.versions, report.aliases, report.problems) == (2, 3, 1, ())
    after = {e.ref: e.card for e in fresh.list(all_versions=True)}
    assert after == before
    assert fresh.resolve("toy_find.red@production") == "toy_find.red@1"
    assert fresh.verify() == []
    assert fresh.put("toy_find.blue", _find(8)).version == 2  # the removed @1 is not reused


def test_damaged_index_file_is_moved_aside_by_reindex(reg):
    for suffix in ("-wal", "-shm"):
        if os.path.exists(f"{reg.index_path}{suffix}"):
            os.remove(f"{reg.index_path}{suffix}")
    reg.index_path.write_bytes(b"this is not sqlite" * 100)
    broken = Registry(reg.root)  # opens, so that verify and reindex can run
    with pytest.raises(RegistryError, match="not a usable SQLite database.*registry reindex"):
        broken.names()
    assert broken.verify()[0].needs_reindex
    assert broken.reindex().versions == 4
    assert list(reg.root.glob("index.sqlite.damaged-*"))
    assert broken.verify() == [] and len(Registry(reg.root)) == 3


def test_first_format_registry_is_migrated_on_open(tmp_path):
    """An index with one `entries` row per name and cards/<name>.json still opens."""
    root = tmp_path / "old"
    new = Registry(root)
    new.put("toy_find.red-v1", _find(0), metrics={"iou": 0.9})
    card = new.card("toy_find.red-v1")
    old_card = {k: v for k, v in card.to_json().items() if k not in ("version", "module")}
    raw = (json.dumps(old_card, indent=2, sort_keys=True) + "\n").encode()
    import hashlib

    new.card_path("toy_find.red-v1", 1).unlink()
    (root / "cards" / "toy_find.red-v1.json").write_bytes(raw)
    conn = sqlite3.connect(root / "index.sqlite")
    conn.executescript(
        "DROP TABLE versions; DROP TABLE counters; DROP TABLE aliases; "
        "CREATE TABLE entries (name TEXT PRIMARY KEY, kind TEXT NOT NULL, tag "
        "TEXT NOT NULL, weights_sha256 TEXT NOT NULL, card_sha256 TEXT NOT NULL, "
        "fingerprint TEXT NOT NULL, mode TEXT NOT NULL, signature_text TEXT NOT "
        "NULL, signature_json TEXT NOT NULL, created TEXT NOT NULL);"
    )
    conn.execute(
        "INSERT INTO entries VALUES (?,?,?,?,?,?,?,?,?,?)",
        (
            "toy_find.red-v1",
            "toy_find",
            "red-v1",
            card.weights_sha256,
            hashlib.sha256(raw).hexdigest(),
            card.fingerprint,
            "direct",
            str(card.signature_obj),
            json.dumps(card.signature, sort_keys=True),
            card.created,
        ),
    )
    conn.commit()
    conn.close()
    old = Registry(root)
    assert old.resolve("toy_find.red-v1") == "toy_find.red-v1@1"
    assert old.card("toy_find.red-v1").metrics == {"iou": 0.9}
    assert old.load("toy_find.red-v1").fingerprint() == card.fingerprint
    assert not (root / "cards" / "toy_find.red-v1.json").exists() and old.verify() == []
    assert old.put("toy_find.red-v1", _find(1)).version == 2


def test_unwritable_export_folder_is_a_registry_error(reg, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(RegistryError, match=r"a-file.*exporting failed"):
        reg.export("toy_find.red", blocker / "sub")
    folder = reg.export("toy_find.red@1", tmp_path / "exp")
    with pytest.raises(RegistryError, match="holds .* already; export into a new or empty"):
        reg.export("toy_find.red@1", folder)


# ----- CLI ---------------------------------------------------------------------------


def _cli(capsys, *argv):
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_versions_alias_json_and_globs(reg, capsys):
    r = ["--registry", str(reg.root)]
    rc, out, _ = _cli(capsys, "registry", *r, "list", "toy_find.*", "--json")
    assert rc == 0 and [e["ref"] for e in json.loads(out)] == ["toy_find.blue@1", "toy_find.red@2"]
    rc, out, _ = _cli(capsys, "registry", *r, "alias", "toy_find.red@1", "production")
    assert rc == 0 and "toy_find.red@production -> toy_find.red@1" in out
    rc, out, _ = _cli(capsys, "registry", *r, "versions", "toy_find.red", "--json")
    assert [(e["version"], e["aliases"]) for e in json.loads(out)] == [
        (1, ["production"]),
        (2, ["latest"]),
    ]
    rc, out, _ = _cli(capsys, "registry", *r, "show", "toy_find.red@production")
    assert json.loads(out)["version"] == 1
    rc, out, _ = _cli(
        capsys, "registry", *r, "search", "*.red", "--json", "--out", "mask:SoftMask[b 1 h w]"
    )
    assert [c["name"] for c in json.loads(out)] == ["toy_find.red"]


def test_cli_lost_index_is_an_error_and_reindex_fixes_it(reg, capsys):
    r = ["--registry", str(reg.root)]
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{reg.index_path}{suffix}"):
            os.remove(f"{reg.index_path}{suffix}")
    rc, out, err = _cli(capsys, "registry", *r, "list")
    assert rc == 2 and "(no entries" not in out and "registry reindex" in err
    rc, out, _ = _cli(capsys, "registry", *r, "verify")
    assert rc == 1 and "run `brickwork registry reindex`" in out
    rc, out, _ = _cli(capsys, "registry", *r, "reindex")
    assert rc == 0 and "reindexed 3 entries (4 versions, 0 aliases), 0 problems" in out
    rc, out, _ = _cli(capsys, "registry", *r, "list")
    assert rc == 0 and out.count("@") == 3


def test_cli_list_flags_a_damaged_card_and_exits_1(reg, capsys):
    reg.card_path("toy_find.blue", 1).write_bytes(b"\x00garbage")
    rc, out, err = _cli(capsys, "registry", "--registry", str(reg.root), "list")
    assert rc == 1 and "toy_find.blue@1" in out and "DAMAGED" in out
    assert "1 damaged entries; run `brickwork registry verify`" in err
