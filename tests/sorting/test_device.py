"""Devices in the sorting study: ``run_study(..., device=)`` reaches every training and
evaluation job, the batches and the agents' state are made on that device, an unusable
device is refused before anything runs, and the CPU numbers do not change."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import brickwork.studies.sorting.study as study_mod
from brickwork.errors import TrainingError
from brickwork.studies.sorting import (
    MonolithicConfig,
    StudyConfig,
    TrainConfig,
    build_agent,
    handcoded_modules,
    run_study,
    train_unit,
)
from brickwork.studies.sorting.data import (
    SortingEnvironment,
    Transitions,
    batch_representation,
    build_transitions,
    random_lists,
    representation,
)
from brickwork.studies.sorting.evaluation import evaluate_length
from brickwork.training import check_device

TINY = TrainConfig(
    max_length=3,
    train_lists=60,
    val_lists=20,
    max_seconds=1,
    extra_max_seconds=1,
    eval_every=10,
    hidden=8,
)


def test_run_study_passes_the_device_to_every_job(tmp_path, monkeypatch):
    seen: list[tuple[str, str]] = []

    def spy(name, fn):
        def wrapped(*args, **kwargs):
            seen.append((name, kwargs.get("device", "<missing>")))
            return fn(*args, **kwargs)

        return wrapped

    for name in ("train_unit", "train_monolithic", "evaluate_variant"):
        monkeypatch.setattr(study_mod, name, spy(name, getattr(study_mod, name)))
    cfg = replace(
        StudyConfig.quick_config(),
        workers=1,
        seeds=(0,),
        variants=("monolithic", "modular_addressed_recursive"),
        train=TINY,
        monolithic=MonolithicConfig(
            max_length=3,
            train_lists=40,
            val_lists=10,
            cap_seconds=0.5,
            hidden=8,
            batch=4,
            val_episodes=8,
        ),
        factors=(2,),
        lists=5,
        whole_list_min_lists=2,
    )
    summary = run_study(cfg, tmp_path, device="cpu")
    assert summary["device"] == "cpu"
    assert {n for n, _ in seen} == {"train_unit", "train_monolithic", "evaluate_variant"}
    assert all(d == "cpu" for _, d in seen), seen
    assert summary["modules"]["0"]["rec.controller"]["criterion"]["device"] == "cpu"


@pytest.mark.parametrize(
    "device, message",
    [
        ("gpu", "device 'gpu' is not a torch device"),
        ("cuda:99", "cuda:99"),
    ],
)
def test_an_unusable_device_is_refused_before_anything_runs(tmp_path, device, message):
    with pytest.raises(TrainingError, match=message) as err:
        run_study(StudyConfig.quick_config(), tmp_path / "out", device=device)
    assert "sorting study" in str(err.value) and "cpu" in str(err.value)
    assert not (tmp_path / "out").exists()  # nothing written


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without CUDA")
def test_cuda_without_cuda_says_so():
    with pytest.raises(TrainingError, match="no CUDA device .* use device='cpu'"):
        check_device("cuda", "sorting study")


def test_representations_and_environment_are_made_on_the_asked_device():
    lists = torch.tensor([[3, 1, 2], [0, 9, 9]])
    assert representation(lists, device="meta").device.type == "meta"
    assert representation(lists).device.type == "cpu"
    env = SortingEnvironment(lists, device="meta")
    assert {v.device.type for v in env.observe().values()} == {"meta"}
    tr: Transitions = build_transitions([[3, 1, 2], [2, 1]], pad_to=3)
    rows = torch.arange(len(tr)).numpy()
    batch = batch_representation(tr, rows, device="meta")
    assert batch.device.type == "meta" and batch["values"].shape == (len(tr), 3, 11)


def test_explicit_cpu_gives_the_same_numbers_as_the_default():
    a = train_unit(
        "addr.movb",
        0,
        replace(TINY, max_seconds=1e9, stall_evals=2, error=0.0, saturation=0.0, stage_evals=1),
    )
    b = train_unit(
        "addr.movb",
        0,
        replace(TINY, max_seconds=1e9, stall_evals=2, error=0.0, saturation=0.0, stage_evals=1),
        device="cpu",
    )
    assert a["iterations"] == b["iterations"] and a["history"]["loss"] == b["history"]["loss"]
    assert a["states"] == b["states"]
    agent = build_agent("modular_addressed", handcoded_modules("addressed"))
    lists = random_lists(20, 6, torch.Generator().manual_seed(0))
    assert evaluate_length(agent, True, lists, device="cpu")["correct"] == 20


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_training_and_evaluation_on_cuda():
    res = train_unit("addr.controller", 0, TINY, device="cuda")
    assert res["device"] == "cuda" and res["iterations"] > 0
    modules = handcoded_modules("addressed")
    for m in modules.values():
        m.to("cuda")
    agent = build_agent("modular_addressed_recursive", modules)
    lists = random_lists(30, 8, torch.Generator().manual_seed(1))
    out = evaluate_length(agent, True, lists, device="cuda")
    assert out["correct"] == 30


def test_progress_bar_counts_every_finished_job(tmp_path, capsys):
    cfg = replace(
        StudyConfig.quick_config(),
        workers=1,
        seeds=(0,),
        variants=("modular_addressed",),
        train=TINY,
        factors=(2,),
        lists=5,
    )
    run_study(cfg, tmp_path, progress=True)
    err = capsys.readouterr().err
    # 5 units to criterion + 5 extra trainings + 1 evaluation, all counted
    assert "sorting study" in err and "11/11" in err
    run_study(cfg, tmp_path, train=False, progress=False)
    assert "sorting study" not in capsys.readouterr().err
