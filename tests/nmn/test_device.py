"""Devices in the NMN study: ``StudyConfig.device`` reaches the jobs, the data moves there
once (``data_on``), the models follow their data (modules a later layout instantiates
included), an unusable device is refused before anything is written, and the CPU job
keys (resume) do not change.

The ``meta`` device proves the model's hot path makes nothing on the CPU: a CPU tensor
meeting a meta tensor raises, so a forward + backward pass of the NMN (both interface
sets, every module kind) and of FiLM on meta tensors would fail on any tensor made
implicitly on the CPU."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import brickwork.studies.clevr.nmn.jobs as jobs_module
import brickwork.studies.clevr.nmn.study as study_module
from brickwork.errors import TrainingError
from brickwork.studies.clevr.data import Program
from brickwork.studies.clevr.nmn import NMN, FiLM, StudyConfig
from brickwork.studies.clevr.nmn.data import QuestionSet, StudyData, data_device, data_on
from brickwork.studies.clevr.nmn.end_to_end import train_e2e
from brickwork.studies.clevr.nmn.evaluate import accuracy
from brickwork.studies.clevr.nmn.jobs import DEVICE_WHERE, check_device, study_jobs
from brickwork.studies.clevr.nmn.modular import train_modular
from brickwork.studies.clevr.nmn.recorded import Recorded
from brickwork.studies.clevr.nmn.vocab import K

C = 8


def _p(nodes):
    return Program.from_json([{"function": f, "inputs": i, "value_inputs": v} for f, i, v in nodes])


PROGRAMS = [
    _p([("scene", [], []), ("filter_color", [0], ["red"]), ("count", [1], [])]),
    _p(
        [
            ("scene", [], []),
            ("filter_shape", [0], ["cube"]),
            ("unique", [1], []),
            ("relate", [2], ["left"]),
            ("unique", [3], []),
            ("query_color", [4], []),
        ]
    ),
    _p(
        [
            ("scene", [], []),
            ("filter_size", [0], ["small"]),
            ("scene", [], []),
            ("filter_color", [2], ["blue"]),
            ("count", [1], []),
            ("count", [3], []),
            ("greater_than", [4, 5], []),
        ]
    ),
    _p(
        [
            ("scene", [], []),
            ("filter_color", [0], ["red"]),
            ("unique", [1], []),
            ("same_shape", [2], []),
            ("exist", [3], []),
        ]
    ),
    _p(
        [
            ("scene", [], []),
            ("filter_color", [0], ["red"]),
            ("scene", [], []),
            ("filter_shape", [2], ["cube"]),
            ("union", [1, 3], []),
            ("count", [4], []),
        ]
    ),
]


def _data(n_q: int = 80, n_img: int = 6, seed: int = 0) -> StudyData:
    g = torch.Generator().manual_seed(seed)

    def qset() -> QuestionSet:
        progs = [PROGRAMS[i % len(PROGRAMS)] for i in range(n_q)]
        return QuestionSet(
            questions=[SimpleNamespace(program=p) for p in progs],  # type: ignore[misc]
            image=torch.randint(0, n_img, (n_q,), generator=g),
            split="train",
            tokens=torch.randint(1, 5, (n_q, 3), generator=g),
            answer=torch.randint(0, K, (n_q,), generator=g),
            depth=torch.ones(n_q, dtype=torch.long),
        )

    return StudyData(
        features={"train": torch.randn(n_img, C, 4, 6, generator=g)},
        sets={"train": qset(), "val": qset(), "test": qset()},
        tokenizer=list(range(6)),  # type: ignore[arg-type]
        find_targets={"train": torch.rand(n_img, 3, 4, 6, generator=g)},
        digest="tiny",
        encoder_accuracy={},
    )


@pytest.mark.parametrize("interface", ["typed", "classic"])
def test_nmn_forward_and_backward_on_meta_make_nothing_on_the_cpu(interface):
    nmn = NMN(interface, vocab=10, channels=C).to("meta")
    # the layouts instantiate their modules after the move: they follow the model
    lays = [nmn.layouts(p) for p in PROGRAMS]
    assert {p.device.type for p in nmn.parameters()} == {"meta"}
    out = nmn(
        lays,
        torch.rand(len(lays), C, 4, 6, device="meta"),
        tokens=torch.ones(len(lays), 5, dtype=torch.long, device="meta"),
    )
    assert out.device.type == "meta" and out.shape == (len(lays), K)
    out.sum().backward()
    assert all(p.grad is None or p.grad.device.type == "meta" for p in nmn.parameters())


def test_film_and_recorded_masks_on_meta():
    film = FiLM(10, C).to("meta")
    out = film(
        torch.rand(2, C, 4, 6, device="meta"), torch.ones(2, 5, dtype=torch.long, device="meta")
    )
    assert out.device.type == "meta"
    mods = [Recorded(0, 3, "typed"), Recorded(2, 3, "typed")]
    got = Recorded.forward_instances(
        mods, torch.tensor([1, 0], device="meta"), torch.rand(2, 3, 4, 6, device="meta")
    )
    assert got.device.type == "meta" and got.shape == (2, 1, 4, 6)


def test_data_on_moves_every_tensor_and_keeps_cpu_data_as_is():
    data = _data()
    assert data_on(data, "cpu") is data and data_device(data) == torch.device("cpu")
    meta = data_on(data, "meta")
    assert data_device(meta).type == "meta"
    tensors = [*meta.features.values(), *meta.find_targets.values()]
    for qs in meta.sets.values():
        tensors += [qs.image, qs.tokens, qs.answer, qs.depth]
        assert qs.questions is data.sets["train"].questions or qs.questions  # kept
    assert {t.device.type for t in tensors} == {"meta"}
    assert data.features["train"].device.type == "cpu"  # the original is untouched


def test_models_follow_their_data_and_cpu_results_do_not_change():
    data = _data()
    a, info_a = train_e2e("typed", data, seconds=0.3, seed=0, channels=C)
    assert {p.device.type for p in a.parameters()} == {"cpu"}
    assert 0.0 <= accuracy(a, data, "test") <= 1.0
    _, info = train_modular(
        "typed", data, seconds=0.2, seed=0, sgm_epochs=1, sgm_steps=10, channels=C
    )
    assert info["downstream"]["steps"] > 0


def test_study_config_device_and_cpu_job_keys():
    assert StudyConfig().device == "cpu" and StudyConfig.quick().device == "cpu"
    cfg = StudyConfig.quick()
    jobs = study_jobs(Path("o"), cfg, "c")
    keys = {j["name"]: jobs_module._job_key(j) for j in jobs}
    # the keys of CPU jobs are those of jobs saved before the device field existed
    legacy = [{**j, "cfg": {k: v for k, v in j["cfg"].items() if k != "device"}} for j in jobs]
    assert {j["name"]: jobs_module._job_key(j) for j in legacy} == keys
    on_gpu = study_jobs(Path("o"), replace(cfg, device="cuda:0"), "c")
    assert all(j["cfg"]["device"] == "cuda:0" for j in on_gpu)
    assert not set(keys.values()) & {jobs_module._job_key(j) for j in on_gpu}


@pytest.mark.parametrize(
    "device, message",
    [
        ("gpu", "StudyConfig.device: device 'gpu' is not a torch device"),
        ("cuda:99", "'cuda:99'"),
    ],
)
def test_an_unusable_device_is_refused_before_anything_is_written(tmp_path, device, message):
    with pytest.raises(TrainingError, match=message) as err:
        study_module.run_study(
            tmp_path / "out", replace(StudyConfig.quick(), device=device), tmp_path / "cache"
        )
    assert "clevr study" in str(err.value)
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()
    with pytest.raises(TrainingError, match=message):
        check_device(device, DEVICE_WHERE)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_training_on_cuda():
    data = data_on(_data(), "cuda")
    model, info = train_e2e("typed", data, seconds=0.5, seed=0, channels=C)
    assert {p.device.type for p in model.parameters()} == {"cuda"}
    assert info["steps"] > 0 and 0.0 <= accuracy(model, data, "test") <= 1.0
    model, info = train_modular(
        "typed", data, seconds=0.3, seed=0, sgm_epochs=1, sgm_steps=10, channels=C
    )
    assert {p.device.type for p in model.parameters()} == {"cuda"}
    assert info["downstream"]["steps"] > 0
