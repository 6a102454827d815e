"""Intermediate datasets: hits, misses on any upstream change, no half-written caches."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import torch

from brickwork.errors import DataError
from brickwork.training import CacheKey, IntermediateDataset, Samples, join_on_ids
from brickwork.training.fixtures import ToyFind


def _key(find, data):
    return CacheKey(
        upstream={"find[0]": find.fingerprint()},
        producers={"find[0]": {"kind": find.kind, "config": find.config}},
        data_digest=data.digest(),
        dtype="float32",
        content={"port": "mask"},
    )


def _producer(find, data, calls):
    def produce():
        calls.append(1)
        with torch.no_grad():
            yield Samples({"mask": find(data["features"][:8])}, data.ids[:8])
            yield Samples({"mask": find(data["features"][8:])}, data.ids[8:])

    return produce


@pytest.fixture
def setup():
    torch.manual_seed(0)
    find = ToyFind(channels=4)
    data = Samples({"features": torch.randn(20, 4, 3, 3)})
    return find, data


def test_hit_on_identical_inputs(tmp_path, setup):
    find, data = setup
    calls = []
    ds, hit = IntermediateDataset.get_or_build(
        tmp_path, _key(find, data), _producer(find, data, calls)
    )
    assert not hit and len(ds) == 20 and ds.num_shards == 2
    ds2, hit2 = IntermediateDataset.get_or_build(
        tmp_path, _key(find, data), _producer(find, data, calls)
    )
    assert hit2 and len(calls) == 1 and ds2.folder == ds.folder
    loaded = ds2.load()
    assert torch.equal(loaded.ids, data.ids)
    with torch.no_grad():
        assert torch.allclose(loaded["mask"], find(data["features"]))


def test_miss_after_any_upstream_weight_change(tmp_path, setup):
    find, data = setup
    calls = []
    IntermediateDataset.get_or_build(tmp_path, _key(find, data), _producer(find, data, calls))
    for name, p in find.named_parameters():
        with torch.no_grad():
            p.view(-1)[0] += 1e-6
        _, hit = IntermediateDataset.get_or_build(
            tmp_path, _key(find, data), _producer(find, data, calls)
        )
        assert not hit, f"changing {name} must be a miss"
    assert len(calls) == 1 + len(list(find.parameters()))
    # other declared inputs also change the key
    k = _key(find, data)
    assert (
        CacheKey(k.upstream, k.producers, k.data_digest, "float16", k.content).digest()
        != k.digest()
    )
    changed = Samples({"features": data["features"] + 1})
    assert _key(find, changed).digest() != k.digest()


def test_interrupted_write_leaves_nothing_readable(tmp_path, setup):
    find, data = setup
    key = _key(find, data)

    def broken():
        yield Samples({"mask": torch.rand(4, 1, 3, 3)})
        raise RuntimeError("crash while recording")

    with pytest.raises(RuntimeError):
        IntermediateDataset.build(tmp_path, key, broken())
    assert IntermediateDataset.lookup(tmp_path, key) is None
    assert list(tmp_path.iterdir()) == []
    # a folder without a manifest (or with a damaged one) is never a hit
    (tmp_path / key.digest()).mkdir()
    (tmp_path / key.digest() / "shard-00000.safetensors").write_bytes(b"partial")
    assert IntermediateDataset.lookup(tmp_path, key) is None
    with pytest.raises(DataError, match="not a finished intermediate dataset"):
        IntermediateDataset(tmp_path / key.digest())


KILLED_WRITER = """
import sys, time, torch
from brickwork.training import CacheKey, IntermediateDataset, Samples
def chunks():
    for i in range(1000):
        yield Samples({"x": torch.rand(64, 32)})
        if i == 2:
            print("writing", flush=True)
            time.sleep(60)
IntermediateDataset.build(sys.argv[1], CacheKey(data_digest="kill"), chunks())
"""


def test_kill_9_during_write_leaves_no_readable_cache(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    key = CacheKey(data_digest="kill")
    assert IntermediateDataset.lookup(tmp_path, key) is None
    assert not (tmp_path / key.digest()).exists()
    assert IntermediateDataset.remove_stale(tmp_path) == 1


def test_shard_damage_detected(tmp_path, setup):
    find, data = setup
    ds, _ = IntermediateDataset.get_or_build(tmp_path, _key(find, data), _producer(find, data, []))
    shard = ds.folder / "shard-00001.safetensors"
    raw = bytearray(shard.read_bytes())
    raw[-1] ^= 0xFF
    shard.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="shard digest"):
        ds.load()


def test_concurrent_readers_open_files_themselves(tmp_path, setup):
    find, data = setup
    ds, _ = IntermediateDataset.get_or_build(tmp_path, _key(find, data), _producer(find, data, []))
    rows = ds.torch_dataset()
    loader = torch.utils.data.DataLoader(
        rows, batch_size=5, num_workers=2, multiprocessing_context="spawn"
    )
    ids = torch.cat([b["ids"] for b in loader])
    assert sorted(ids.tolist()) == list(range(20))


def test_join_by_sample_ids():
    a = Samples({"m": torch.arange(4.0)}, ids=torch.tensor([3, 1, 2, 0]))
    b = Samples({"n": torch.arange(3.0)}, ids=torch.tensor([0, 1, 2]))
    j = join_on_ids({"a": a, "b": b})
    assert j.ids.tolist() == [0, 1, 2]
    assert j["a.m"].tolist() == [3.0, 1.0, 2.0] and j["b.n"].tolist() == [0.0, 1.0, 2.0]
