"""An honest resume: a finished job is reused only when its key matches; a changed run is
refused before anything is written; a copied run folder resumes from its own files."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
import torch

from brickwork.cli import main as cli
from brickwork.errors import TrainingError
from brickwork.plan import DataSpec, make_plan
from brickwork.training.executor import LocalExecutor
from brickwork.training.fixtures import nmn_data, nmn_family, nmn_kinds, write_example_plan
from brickwork.training.job import ModuleJob, job_key, run_job
from brickwork.training.samples import Samples
from brickwork.training.trainer import read_run, train_plan

HP = {k: {"epochs": 2} for k in ("encoder", "find", "describe", "measure")}


def _run(work, *, seed=0, data=None, hparams=HP, resume=False, **kw):
    kinds = nmn_kinds()
    family = nmn_family(kinds)
    data = data if data is not None else nmn_data(192, len(family))
    plan = make_plan(family, DataSpec({"features", "question"}, {"answer"}))
    res = train_plan(
        plan,
        family,
        kinds,
        data,
        workdir=work,
        executor=LocalExecutor(1, in_process=True),
        seed=seed,
        hparams=hparams,
        resume=resume,
        **kw,
    )
    return kinds, res


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp("resume") / "run"
    kinds, res = _run(work)
    return work, kinds, res


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"seed": 1}, r"seed: 0 -> 1"),
        ({"data": nmn_data(192, 4, seed=5)}, r"data digest: [0-9a-f]{8}… -> [0-9a-f]{8}…"),
        ({"hparams": {**HP, "find": {"epochs": 3}}}, r"hparams\.find\.epochs: 2 -> 3"),
    ],
)
def test_changed_run_is_refused_and_nothing_written(trained, change, expected):
    work, _, _ = trained
    before = {p: p.read_bytes() for p in (work / "summary.json", work / "run.json")}
    files = sorted(str(p) for p in work.rglob("*"))
    with pytest.raises(TrainingError, match=expected) as err:
        _run(work, resume=True, **change)
    msg = str(err.value)
    assert "\n" not in msg and f"delete {work}" in msg and "--out NEW_FOLDER" in msg
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(str(p) for p in work.rglob("*")) == files


def test_unchanged_resume_skips_every_job(trained):
    work, kinds, first = trained
    again_kinds, again = _run(work, resume=True)
    assert all(r.get("skipped") for r in again.modules.values())
    for name in first.modules:
        assert again_kinds.module(name).fingerprint() == kinds.module(name).fingerprint()
    run = read_run(work)
    assert run["data"] == "data.safetensors" and run["key"]["seed"] == 0
    assert run["split"]["val_rows"] == round(192 * 0.2)


def test_run_folder_paths_are_relative(trained):
    work, _, _ = trained
    s = json.loads((work / "summary.json").read_text())
    for r in s["modules"].values():
        assert (
            not r["module_dir"].startswith("/")
            and (work / r["module_dir"] / "config.json").is_file()
        )
    for res in work.glob("jobs/*/result.json"):
        assert json.loads(res.read_text())["module_dir"] == "module"
    assert str(work) not in (work / "run.json").read_text()
    assert (work / "metrics.csv").read_text().startswith("module,epoch,")
    assert all((p.parent / "metrics.jsonl").is_file() for p in work.glob("jobs/*/result.json"))
    assert (
        s["evaluation"]["split"] == "val"
        and s["evaluation"]["outputs"]["answer"]["metric"] == "accuracy"
    )


def test_copied_run_folder_resumes_from_the_copy(tmp_path, caplog):
    from brickwork.modules import load_module, save_module
    from brickwork.registry import Registry

    original = tmp_path / "a"
    _run(original)
    copy = tmp_path / "b"
    shutil.copytree(original, copy)
    shutil.rmtree(original)  # nothing may still point into the original
    reg = Registry(tmp_path / "reg")
    kinds, res = _run(copy, resume=True, registry=reg)
    assert all(r.get("skipped") for r in res.modules.values())
    for name in res.modules:
        saved = load_module(copy / res.modules[name]["module_dir"])
        assert kinds.module(name).fingerprint() == saved.fingerprint()
        assert reg.load(res.summary["registered"][name]).fingerprint() == saved.fingerprint()
    assert str(original) not in (copy / "summary.json").read_text()
    # weights that are not the ones result.json describes are never reused
    mdir = copy / "jobs" / "find_0" / "module"
    m = load_module(mdir)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(1.0)
    save_module(m, mdir)
    with caplog.at_level(logging.WARNING, logger="brickwork.training"):
        _, again = _run(copy, resume=True)
    assert not again.modules["find[0]"]["skipped"] and "not the ones" in caplog.text
    assert again.modules["find[1]"]["skipped"]
    # retrained from its seed it is bit-identical again, so its consumers' keys match
    assert again.modules["find[0]"]["fingerprint"] == res.modules["find[0]"]["fingerprint"]
    assert again.modules["describe[what]"]["skipped"]


def _job(tmp_path, **kw):
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    Samples({"x": x, "y": (x[:, 0] > 0).long()}).save(tmp_path / "d.safetensors")
    base = dict(
        name="cls",
        kind="toy_classifier",
        config={"dim": 4, "classes": 2},
        imports=("brickwork.training.fixtures",),
        mode="direct",
        data=str(tmp_path / "d.safetensors"),
        inputs={"x": "x"},
        target="y",
        hparams={"epochs": 2},
        seed=0,
        workdir=str(tmp_path / "job"),
    )
    return ModuleJob(**{**base, **kw})


def test_job_with_a_changed_key_trains_again(tmp_path, caplog):
    first = run_job(_job(tmp_path).to_json())
    assert not first["skipped"]
    assert run_job(_job(tmp_path).to_json())["skipped"]  # same key: reused
    stored = json.loads((tmp_path / "job" / "job.json").read_text())
    assert stored["key"] == job_key(_job(tmp_path))
    with caplog.at_level(logging.WARNING, logger="brickwork.training"):
        again = run_job(_job(tmp_path, upstream={"find[0]": "f" * 64}).to_json())
    assert not again["skipped"] and again["upstream"] == {"find[0]": "f" * 64}
    assert "other settings" in caplog.text and "upstream" in caplog.text
    # moving the job folder keeps it valid (paths inside are relative)
    shutil.move(tmp_path / "job", tmp_path / "moved")
    moved = run_job(
        _job(tmp_path, upstream={"find[0]": "f" * 64}, workdir=str(tmp_path / "moved")).to_json()
    )
    assert moved["skipped"] and moved["module_dir"] == "module"


def test_cli_resume_with_another_seed_is_one_line(tmp_path, capsys):
    plan = write_example_plan(str(tmp_path / "p"), samples=128)
    spec = json.loads(open(plan).read())
    spec["train"]["hparams"] = {k: {"epochs": 1} for k in spec["train"]["hparams"]}
    spec["train"]["workers"] = 1
    open(plan, "w").write(json.dumps(spec))
    out = tmp_path / "run"
    assert cli(["train", plan, "--out", str(out), "--no-register"]) == 0
    text = capsys.readouterr().out
    assert "evaluation of the assembled family (val samples)" in text and "answer" in text
    summary = (out / "summary.json").read_bytes()
    assert cli(["train", plan, "--out", str(out), "--no-register", "--resume", "--seed", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "seed: 0 -> 1" in err and "--out NEW_FOLDER" in err
    assert (out / "summary.json").read_bytes() == summary
    assert cli(["evaluate", plan, "--run", str(out), "--json", str(tmp_path / "e.json")]) == 0
    shown = capsys.readouterr().out
    assert "answer" in shown and "(all)" in shown
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["split"] == "val" and report["outputs"]["answer"]["count"] == report["samples"]
    s = json.loads(summary)
    assert s["evaluation"]["outputs"]["answer"]["value"] == pytest.approx(
        report["outputs"]["answer"]["value"]
    )


def test_unverifiable_leftovers_are_not_continued(tmp_path, caplog):
    job = _job(tmp_path)
    first = run_job(job.to_json())
    (tmp_path / "job" / "job.json").unlink()  # an older brickwork's folder: no key
    with caplog.at_level(logging.WARNING, logger="brickwork.training"):
        again = run_job(job.to_json())
    assert not again["skipped"] and "cannot be verified" in caplog.text
    assert again["fingerprint"] == first["fingerprint"]  # same key, same seed: same weights
