"""Modular and monolithic training, the study runner and the CLI (tiny budgets)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from brickwork.cli import build_parser, main
from brickwork.cli.sorting import config_from_args, table
from brickwork.errors import TrainingError
from brickwork.studies.sorting import (
    MonolithicConfig,
    StudyConfig,
    TrainConfig,
    run_study,
    train_monolithic,
    train_unit,
)

TINY = TrainConfig(
    max_length=4, train_lists=300, val_lists=60, max_seconds=20, extra_max_seconds=3, eval_every=25
)


def test_modular_unit_meets_the_criteria_then_trains_further():
    res = train_unit("addr.mova", 0, TINY)
    assert res["stop_reason"] == "criteria" and res["met_criteria"]
    assert res["val_error"] <= 0.01 and res["val_saturation"] <= 0.01
    assert res["history"]["val_length"][-1] == 4  # the curriculum reached the max length
    extra = train_unit(
        "addr.mova",
        0,
        replace(TINY, extra_max_seconds=60),
        phase="extra",
        init_states=res["states"],
        prior_iterations=res["iterations"],
    )
    assert extra["iterations"] >= res["iterations"] and extra["val_error"] <= 0.001
    with pytest.raises(TrainingError, match="phase 'later'"):
        train_unit("addr.mova", 0, TINY, phase="later")


def test_monolithic_hits_its_cap_and_reports_it():
    cfg = MonolithicConfig(
        max_length=4,
        train_lists=100,
        val_lists=20,
        cap_seconds=1.5,
        hidden=16,
        batch=8,
        val_episodes=16,
        eval_every=5,
    )
    res = train_monolithic(0, cfg)
    assert res["stop_reason"] == "time_cap" and not res["met_criteria"]
    assert res["seconds"] >= 1.5 and 0.0 <= res["full_length_error"] <= 1.0
    assert set(res["states"]) == {"mova", "movb", "retb", "swap", "digestor", "policy"}


def test_study_writes_plots_and_summary(tmp_path):
    cfg = replace(
        StudyConfig.quick_config(),
        workers=1,
        seeds=(0,),
        variants=("monolithic", "modular_addressed_recursive"),
        train=TINY,
        monolithic=MonolithicConfig(
            max_length=4,
            train_lists=100,
            val_lists=20,
            cap_seconds=2,
            hidden=16,
            batch=8,
            val_episodes=16,
        ),
        factors=(2, 5),
        lists=20,
        whole_list_min_lists=5,
    )
    summary = run_study(cfg, tmp_path)
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["speedup_is_lower_bound"] is True
    for key in (
        "modular_seconds",
        "monolithic_seconds",
        "speedup",
        "max_train_length",
        "brickwork_version",
        "data_digests",
        "config",
    ):
        assert key in saved, key
    rec = saved["variants"]["modular_addressed_recursive"]
    assert rec["max_verified_length"] == 20 and rec["extrapolation_factor"] == 5.0
    assert set(saved["variants"]["monolithic"]["accuracy_by_length"]) == {"2", "3", "4", "8", "20"}
    for name in summary["plots"]:
        assert (tmp_path / name).stat().st_size > 1000
    assert (
        tmp_path / "modules" / "seed0" / "rec.controller" / "rec_policy" / "config.json"
    ).exists()
    assert "modular_addressed_recursive" in table(summary)
    # evaluate again from the saved modules
    again = run_study(
        replace(cfg, variants=("modular_addressed_recursive",)), tmp_path, train=False
    )
    assert again["variants"]["modular_addressed_recursive"]["max_verified_length"] == 20


def test_cli_parses_sorting_and_rejects_unknown_variants(capsys):
    args = build_parser().parse_args(["sorting", "compare", "--quick", "--seed", "3", "--out", "x"])
    cfg = config_from_args(args)
    assert cfg.quick and cfg.seeds == (3,)
    with pytest.raises(SystemExit) as exit_info:  # rejected while parsing, one line
        build_parser().parse_args(["sorting", "train", "--variants", "modular_addressed,nope"])
    assert exit_info.value.code == 2
    assert "unknown variant(s) ['nope']" in capsys.readouterr().err
    assert main(["sorting", "evaluate", "--out", "/nonexistent/dir/for/test"]) == 2
    assert "no trained study there" in capsys.readouterr().err
