"""``brickwork clevr ask`` / ``answer`` on a small fake study run (its registry holds
untrained typed modules): the commands load everything from the registry and report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from brickwork.cli import main
from brickwork.registry import Registry
from brickwork.studies.clevr.data import ClevrDataset, generate_dataset
from brickwork.studies.clevr.nmn import NMN, StudyConfig, Tokenizer
from brickwork.studies.clevr.nmn.answers import COMPARISONS
from brickwork.studies.clevr.nmn.data import FIND_VALUES
from brickwork.studies.clevr.nmn.encoder import ImageEncoder
from brickwork.studies.clevr.nmn.registration import registry_name
from brickwork.studies.clevr.parse.answering import _data_digest, image_features
from brickwork.studies.clevr.parse.parser import register_generator
from brickwork.studies.clevr.parse.train import ParseConfig, train_program_generator

C = 4


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("study")
    cfg = StudyConfig(train_scenes=3, test_scenes=3, channels=C)
    data = root / "clevr-cache" / f"clevr-{_data_digest(cfg)}"
    generate_dataset(data, 3, 4, 4, split="train", render=False, processes=1)
    generate_dataset(data, 3, 4, 5, seed=1, split="test", render=False, processes=1)
    torch.manual_seed(0)
    save_file(
        {"features.test": torch.rand(3, C, 8, 12), "features.train": torch.rand(3, C, 8, 12)},
        str(data / "features.safetensors"),
    )
    run = root / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"config": cfg.to_json()}))
    train_q = ClevrDataset(data, "train").questions
    tok = Tokenizer.fit(q.question for q in train_q)
    nmn = NMN("typed", vocab=len(tok), channels=C)
    names = ["scene", "unique"]
    names += [f"find[{v}]" for v in FIND_VALUES]
    names += [f"relate[{r}]" for r in ("left", "right", "front", "behind")]
    names += [f"same[{a}]" for a in ("color", "shape", "size", "material")]
    names += [f"measure[{f}]" for f in ("count", "exist")]
    names += [f"query[{a}]" for a in ("color", "shape", "size", "material")]
    names += [f"compare[{f}]" for f in COMPARISONS]
    reg = Registry(run / "registry")
    for n in names:
        reg.put(
            registry_name(n, "joint-typed-answers-s0"), nmn.kinds.module(n), lineage={"module": n}
        )
    reg.put(
        "question_encoder.direct-typed-answers-s0",
        nmn.question,
        lineage={"module": "question_encoder"},
    )
    scenes = {sc.image_index: sc for sc in ClevrDataset(data, "train").scenes}
    gen, _ = train_program_generator(
        train_q, scenes, ParseConfig(n_programs=None, sup_steps=60, rl_steps=0, recombine=0, dim=16)
    )
    greg = Registry(root / "gen")
    register_generator(greg, gen, "transducer-n270-s0", {"config": {"dim": 8}})
    return {
        "run": run,
        "cache": root / "clevr-cache",
        "gen": root / "gen",
        "questions": data / "questions" / "CLEVR_test_questions.json",
        "root": root,
    }


def _base(f: dict[str, Path]) -> list[str]:
    return [
        "--run",
        str(f["run"]),
        "--cache",
        str(f["cache"]),
        "--generator-registry",
        str(f["gen"]),
    ]


@pytest.mark.parametrize("programs", ["given", "generated"])
def test_answer_reports_accuracy_by_depth_and_family(
    fake_run: dict[str, Path], programs: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "a.json"
    code = main(
        [
            "clevr",
            "answer",
            *_base(fake_run),
            "--questions",
            str(fake_run["questions"]),
            "--programs",
            programs,
            "--json",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    rep = json.loads(out.read_text())
    assert rep["questions"] == 12 and rep["programs"] == programs
    assert 0.0 <= rep["accuracy"] <= 1.0
    assert rep["accuracy_by_depth"] and rep["accuracy_by_family"]
    assert len(rep["answers"]) == 12
    if programs == "given":
        assert rep["answered"] == 12 and rep["parse_failures"] == []


def test_ask_scene_prints_program_answer_and_writes_masks(
    fake_run: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "clevr",
            "ask",
            *_base(fake_run),
            "--scene",
            "1",
            "--question",
            "How many red things are there?",
            "--out",
            str(tmp_path / "o"),
            "--json",
            str(tmp_path / "ask.json"),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    text = captured.out
    assert "program:" in text and "answer:" in text
    rep = json.loads((tmp_path / "ask.json").read_text())["answers"][0]
    assert 0.0 < rep["probability"] <= 1.0
    assert Path(rep["png"]).is_file()


def test_ask_errors_are_one_line(
    fake_run: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["clevr", "ask", *_base(fake_run), "--scene", "9", "--question", "How many?"])
    err = capsys.readouterr().err
    assert code == 2 and "has 3 images" in err and "Traceback" not in err
    code = main(
        ["clevr", "answer", "--run", str(tmp_path), "--questions", str(fake_run["questions"])]
    )
    err = capsys.readouterr().err
    assert code == 2 and "summary.json" in err and len(err.strip().splitlines()) == 1
    code = main(["clevr", "ask", *_base(fake_run), "--scene", "0", "--question", "Zorp blib?"])
    err = capsys.readouterr().err
    assert code == 2 and "no word the program generator knows" in err


def test_image_of_the_wrong_size_is_resized_with_a_warning(tmp_path: Path) -> None:
    enc = ImageEncoder(channels=C)
    img = tmp_path / "big.png"
    Image.fromarray(np.zeros((128, 128, 3), dtype=np.uint8)).save(img)
    feats, arr, warning = image_features(enc, img)
    assert feats.shape == (C, 8, 12) and arr.shape == (64, 96, 3)
    assert warning is not None and "resized" in warning and "aspect ratio" in warning
    ok = tmp_path / "ok.png"
    Image.fromarray(np.zeros((64, 96, 3), dtype=np.uint8)).save(ok)
    assert image_features(enc, ok)[2] is None
