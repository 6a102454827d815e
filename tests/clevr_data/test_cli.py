from __future__ import annotations

import json
from pathlib import Path

import pytest

from brickwork.cli import main


def test_generate_execute_render_stats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "clevr"
    assert (
        main(
            [
                "clevr",
                "generate",
                "--scenes",
                "12",
                "--questions-per-scene",
                "5",
                "--max-depth",
                "12",
                "--out",
                str(out),
                "--processes",
                "1",
            ]
        )
        == 0
    )
    scenes = out / "scenes" / "CLEVR_train_scenes.json"
    questions = out / "questions" / "CLEVR_train_questions.json"
    assert scenes.exists() and questions.exists() and (out / "splits.json").exists()
    report = tmp_path / "agree.json"
    assert (
        main(
            [
                "clevr",
                "execute",
                "--scenes",
                str(scenes),
                "--questions",
                str(questions),
                "--json",
                str(report),
            ]
        )
        == 0
    )
    data = json.loads(report.read_text())
    assert data["agreement"] == 1.0 and data["n_questions"] == 60 and data["disagreements"] == []
    assert (
        main(["clevr", "render", str(scenes), "--out", str(tmp_path / "r"), "--processes", "1"])
        == 0
    )
    assert (tmp_path / "r" / "contact_sheet.png").exists()
    assert (tmp_path / "r" / "CLEVR_train_000011.png").exists()
    assert main(["clevr", "stats", str(out)]) == 0
    assert (out / "stats_train.png").exists()
    printed = capsys.readouterr().out
    assert "agreement 100.0000%" in printed and "depth:" in printed


def test_execute_on_clevr_generator_format(tmp_path: Path, fixtures: Path) -> None:
    report = tmp_path / "r.json"
    assert (
        main(
            [
                "clevr",
                "execute",
                "--scenes",
                str(fixtures / "handmade_scenes.json"),
                "--questions",
                str(fixtures / "generator_questions.json"),
                "--json",
                str(report),
            ]
        )
        == 0
    )
    assert json.loads(report.read_text())["agreement"] == 1.0


def test_execute_reports_disagreements(
    tmp_path: Path, fixtures: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = json.loads((fixtures / "generator_questions.json").read_text())
    raw["questions"][1]["answer"] = 3  # truly 2
    raw["questions"][2]["program"][2]["side_inputs"] = ["sphere"]  # two red... none: ill-posed
    qpath = tmp_path / "q.json"
    qpath.write_text(json.dumps(raw))
    report = tmp_path / "r.json"
    assert (
        main(
            [
                "clevr",
                "execute",
                "--scenes",
                str(fixtures / "handmade_scenes.json"),
                "--questions",
                str(qpath),
                "--json",
                str(report),
            ]
        )
        == 1
    )
    data = json.loads(report.read_text())
    assert data["disagreements"] == [1, 2] and data["ill_posed"] == [2]
    assert data["agreement"] == pytest.approx(0.8)


def test_cli_errors_are_messages(
    tmp_path: Path, fixtures: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = json.loads((fixtures / "generator_questions.json").read_text())
    raw["questions"][4]["image_index"] = 99
    qpath = tmp_path / "q.json"
    qpath.write_text(json.dumps(raw))
    assert (
        main(
            [
                "clevr",
                "execute",
                "--scenes",
                str(fixtures / "handmade_scenes.json"),
                "--questions",
                str(qpath),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "DataError" in err and "question 4: field 'image_index': 99" in err
