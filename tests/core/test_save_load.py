"""Saving and loading modules: round trip, tampering, unknown kinds, pickle payloads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import brickwork.modules as bm
from brickwork.errors import LoadError
from brickwork.layouts import Kinds, load_kinds, save_kinds
from brickwork.types import Features, SoftMask


@bm.register_kind(
    "test.find", example_config={"channels": 3}, sizes={"b": 2, "c": 3, "h": 4, "w": 5}
)
class FindForTest(bm.Module):
    """A 1x1-conv finder used by the save/load tests."""

    inputs = {"features": Features("b c h w")}
    outputs = {"mask": SoftMask("b 1 h w")}

    def __init__(self, channels: int = 3):
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, 1, 1)

    def forward(self, features):
        return torch.sigmoid(self.conv(features))


def test_round_trip_is_bit_identical(tmp_path):
    m = FindForTest(channels=3)
    bm.save_module(m, tmp_path / "find")
    card = json.loads((tmp_path / "find" / "config.json").read_text())
    assert card["kind"] == "test.find" and card["config"] == {"channels": 3}
    assert card["signature_text"] == str(m.signature)
    back = bm.load_module(tmp_path / "find")
    assert back.fingerprint() == m.fingerprint()
    for k, v in m.state_dict().items():
        assert torch.equal(v, back.state_dict()[k])
    assert not list(tmp_path.glob("find/*.tmp"))


def test_truncated_or_altered_weights_are_refused(tmp_path):
    folder = bm.save_module(FindForTest(), tmp_path / "m")
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[:-7])
    with pytest.raises(LoadError, match="truncated or altered"):
        bm.load_module(folder)
    flipped = bytearray(data)
    flipped[-3] ^= 0x40
    (folder / "model.safetensors").write_bytes(bytes(flipped))
    with pytest.raises(LoadError, match="truncated or altered"):
        bm.load_module(folder)


def test_edited_card_unknown_kind_and_signature_mismatch(tmp_path):
    folder = bm.save_module(FindForTest(), tmp_path / "m")
    card_path = folder / "config.json"
    card = json.loads(card_path.read_text())
    card_path.write_text(json.dumps({**card, "kind": "nope.kind"}))
    with pytest.raises(LoadError, match="unknown module kind 'nope.kind'"):
        bm.load_module(folder)
    sig = dict(card["signature"])
    sig["outputs"] = {"mask": SoftMask("b 2 h w").to_json()}
    card_path.write_text(json.dumps({**card, "signature": sig}))
    with pytest.raises(LoadError, match="signature mismatch"):
        bm.load_module(folder)
    card_path.write_text(json.dumps({**card, "fingerprint": "0" * 64}))
    with pytest.raises(LoadError, match="fingerprint mismatch"):
        bm.load_module(folder)
    card_path.write_text("{not json")
    with pytest.raises(LoadError, match="not valid JSON"):
        bm.load_module(folder)


def _pickle_payload(marker: Path) -> bytes:
    """A hand-written protocol-0 pickle that, if unpickled, calls ``builtins.exec`` to
    create ``marker`` (written by hand so that no test imports the pickle module)."""
    code = f"open({str(marker)!r}, 'w').write('pwned')"
    return f"cbuiltins\nexec\n(S{code!r}\ntR.".encode()


def test_pickle_payload_executes_nothing(tmp_path):
    folder = bm.save_module(FindForTest(), tmp_path / "m")
    marker = tmp_path / "executed.txt"
    payload = _pickle_payload(marker)
    (folder / "model.safetensors").write_bytes(payload)
    with pytest.raises(LoadError):
        bm.load_module(folder)
    # even with a card that matches the payload's digest, nothing is unpickled
    card = json.loads((folder / "config.json").read_text())
    card["weights_sha256"] = bm.sha256_bytes(payload)
    (folder / "config.json").write_text(json.dumps(card))
    with pytest.raises(LoadError, match="not a valid safetensors file"):
        bm.load_module(folder)
    assert not marker.exists()


def test_kinds_folder_round_trip(tmp_path):
    kinds = Kinds(find=FindForTest, And=lambda: bm.And.min("b 1 h w"))
    kinds.module("find[red]")
    kinds.module("find[blue]")
    kinds.module("And")
    save_kinds(kinds, tmp_path / "family")
    back = load_kinds(tmp_path / "family")
    assert sorted(back.names()) == ["And", "find[blue]", "find[red]"]
    assert back.module("find[red]").fingerprint() == kinds.module("find[red]").fingerprint()
    shutil.rmtree(
        tmp_path / "family" / next(p.name for p in (tmp_path / "family").iterdir() if p.is_dir())
    )
    with pytest.raises(LoadError):
        load_kinds(tmp_path / "family")
