"""Fit loop, checkpoints and resume, HPO, executors (local and Ray), plan training, CLI."""

from __future__ import annotations

import json

import pytest
import torch

from brickwork.cli import main as cli
from brickwork.errors import TrainingError
from brickwork.plan import DataSpec, make_plan
from brickwork.registry import Registry
from brickwork.training import Callback, EarlyStopping, FitConfig, Samples, fit
from brickwork.training.checkpoint import load_checkpoint, save_checkpoint
from brickwork.training.cost import CostReport
from brickwork.training.executor import LocalExecutor
from brickwork.training.fixtures import nmn_data, nmn_family, nmn_kinds, write_example_plan
from brickwork.training.hpo import SearchSpace, run_search
from brickwork.training.trainer import train_plan


def _problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 3, generator=g)
    return Samples({"x": x, "y": x @ torch.tensor([[1.0], [-2.0], [0.5]])})


def _model():
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 1))


def _loss(m, b):
    return torch.nn.functional.mse_loss(m(b["x"]), b["y"])


class Crash(Callback):
    def __init__(self, at):
        self.at = at

    def on_epoch_end(self, state):
        if state.epoch == self.at:
            raise KeyboardInterrupt("simulated crash")


def test_resume_gives_identical_weights(tmp_path):
    cfg = FitConfig(epochs=5, batch_size=16, lr=0.01, seed=3)
    ref = _model()
    fit(ref, _loss, _problem(), config=cfg)
    model = _model()
    with pytest.raises(KeyboardInterrupt):
        fit(model, _loss, _problem(), config=cfg, checkpoint_dir=tmp_path, callbacks=[Crash(2)])
    resumed = _model()
    res = fit(resumed, _loss, _problem(), config=cfg, checkpoint_dir=tmp_path, resume=True)
    # the crash hit before epoch 2 was checkpointed: resume from epoch 1
    assert res.resumed_from == 1 and res.epochs == 5 and res.steps == 30
    for a, b in zip(ref.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(TrainingError, match="config"):
        fit(
            _model(),
            _loss,
            _problem(),
            config=FitConfig(epochs=6, seed=3),
            checkpoint_dir=tmp_path,
            resume=True,
        )


def test_checkpoint_is_safetensors_and_json_only(tmp_path):
    model = _model()
    opt = torch.optim.Adam(model.parameters())
    _loss(model, _problem()).backward()
    opt.step()
    save_checkpoint(tmp_path, model, opt, {"epoch": 1, "step": 1})
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names[0].endswith(".json") and names[1].endswith(".safetensors") and len(names) == 2
    opt2 = torch.optim.Adam(_model().parameters())
    load_checkpoint(tmp_path, _model(), opt2)
    assert torch.equal(
        opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"]
    )


def test_early_stopping_and_nan(tmp_path):
    data = _problem()
    res = fit(
        _model(),
        _loss,
        data,
        val=data,
        config=FitConfig(epochs=200, lr=1e-9),
        callbacks=[EarlyStopping("val_loss", patience=2, min_delta=1.0)],
    )
    assert res.stopped_early and res.epochs == 3
    with pytest.raises(TrainingError, match="lower the learning rate"):
        fit(_model(), lambda m, b: _loss(m, b) * float("nan"), data, config=FitConfig(epochs=1))


def test_hpo_seeds_and_resume_are_deterministic(tmp_path):
    space = SearchSpace(
        {
            "a": {"type": "float", "low": 0.0, "high": 1.0},
            "k": {"type": "categorical", "choices": [1, 2, 3]},
        }
    )
    seeds = []

    def objective(params, seed, report):
        seeds.append(seed)
        for step in range(3):
            report(step, params["a"] * params["k"])
        return params["a"] * params["k"]

    full = run_search("m", objective, space, trials=6, seed=7, storage=tmp_path / "a.log")
    first = run_search("m", objective, space, trials=3, seed=7, storage=tmp_path / "b.log")
    rest = run_search("m", objective, space, trials=6, seed=7, storage=tmp_path / "b.log")
    assert len(first.trials) == 3 and len(rest.trials) == 6
    assert [t["params"] for t in full.trials] == [t["params"] for t in rest.trials]
    assert full.best_params == rest.best_params
    assert len(set(seeds)) == 6  # per-trial seeds differ, and repeat per index
    url = run_search(
        "m", objective, space, trials=2, seed=7, storage=f"sqlite:///{tmp_path / 'rdb.sqlite'}"
    )
    assert len(url.trials) == 2


def test_cost_report():
    c = CostReport(
        {"a": 1.0, "b": 2.0, "c": 4.0},
        [["a", "b"], ["c"]],
        end_to_end=10.0,
        workers=1,
        overhead=[0.5, 0.0],
    )
    assert c.sequential == 7.5 and c.critical_path == 7.5
    assert CostReport(c.modules, c.stages, workers=2).critical_path == 6.0
    assert "end-to-end" in c.table()


def _small_plan_run(tmp_path, executor, **kw):
    kinds = nmn_kinds()
    family = nmn_family(kinds)
    data = nmn_data(256, len(family))
    plan = make_plan(family, DataSpec({"features", "question"}, {"answer"}))
    hp = {k: {"epochs": 2} for k in ("encoder", "find", "describe", "measure")}
    return kinds, train_plan(
        plan,
        family,
        kinds,
        data,
        workdir=tmp_path / "run",
        executor=executor,
        workers=2,
        hparams=hp,
        **kw,
    )


def test_train_plan_local_registers_and_summarises(tmp_path):
    reg = Registry(tmp_path / "reg")
    with LocalExecutor(2) as ex:
        kinds, result = _small_plan_run(
            tmp_path,
            ex,
            registry=reg,
            trials=2,
            search={"encoder": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}}},
            end_to_end_time=10.0,
        )
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    for key in (
        "brickwork_version",
        "seed",
        "data_digest",
        "config",
        "wall_time",
        "metrics",
        "cost",
    ):
        assert key in s
    assert set(s["registered"]) == {
        "encoder",
        "find[0]",
        "find[1]",
        "describe[what]",
        "measure[count]",
    }
    assert s["modules"]["find[0]"]["mode"] == "surrogate"
    assert len(s["modules"]["encoder"]["hpo"]["trials"]) == 2
    assert reg.verify() == [] and len(reg) == 5
    assert kinds.module("find[0]").fingerprint() == s["modules"]["find[0]"]["fingerprint"]
    assert result.cost.critical_path <= result.cost.sequential
    lineage = reg.card(s["registered"]["describe[what]"]).lineage
    assert set(lineage["upstream"]) == {"find[0]", "find[1]"}
    # re-running with resume (same settings) skips every finished job and hits the caches
    with LocalExecutor(2) as ex:
        _, again = _small_plan_run(
            tmp_path,
            ex,
            resume=True,
            trials=2,
            search={"encoder": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}}},
        )
    assert all(r.get("skipped") for r in again.modules.values())
    # ... and resuming with other settings is refused, naming what changed
    with pytest.raises(TrainingError, match=r"trials: 2 -> 0.*--out NEW_FOLDER"):
        _small_plan_run(tmp_path, "local", resume=True)
    with pytest.raises(TrainingError, match="already holds a run"):
        _small_plan_run(tmp_path, "local")


def test_train_plan_on_local_ray(tmp_path):
    pytest.importorskip("ray")
    from brickwork.training.executor import RayExecutor

    ex = RayExecutor(num_cpus=2)
    try:
        _, result = _small_plan_run(tmp_path, ex)
    finally:
        ex.close()
    assert result.summary["config"]["executor"] == "ray"
    assert {r["name"] for r in result.modules.values()} >= {"find[0]", "describe[what]"}


def test_cli_plan_train_registry(tmp_path, capsys):
    plan = write_example_plan(str(tmp_path / "p"), samples=256)
    assert cli(["plan", plan, "--by", "kind", "--json", str(tmp_path / "plan.json")]) == 0
    out = capsys.readouterr().out
    assert "find" in out and "surrogate" in out and "stage 2" in out
    assert (
        json.loads((tmp_path / "plan.json").read_text())["modules"]["encoder"]["mode"] == "direct"
    )
    reg = str(tmp_path / "reg")
    assert cli(["train", plan, "--out", str(tmp_path / "run"), "--registry", reg]) == 0
    assert (
        cli(
            [
                "registry",
                "--registry",
                reg,
                "search",
                "--in",
                "features:Features[b 4 h w]",
                "--out",
                "mask:SoftMask[b 1 h w]",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert (
        "toy_find.0-v1" in out
        and "toy_find.1-v1" in out
        and "toy_describe" not in out.split("toy_find.1-v1")[-1]
    )
    assert cli(["registry", "--registry", reg, "verify"]) == 0
    assert cli(["registry", "--registry", reg, "export", "toy_find.0-v1", str(tmp_path / "e")]) == 0
    assert cli(["registry", "--registry", reg, "remove", "toy_find.0-v1"]) == 0
    assert cli(["registry", "--registry", reg, "import", str(tmp_path / "e")]) == 0
    assert cli(["registry", "--registry", reg, "show", "../x.y"]) == 2
    assert "invalid" in capsys.readouterr().err
    assert cli(["train", plan, "--out", str(tmp_path / "run"), "--registry", reg]) == 2


def test_tensorboard_is_optional(tmp_path):
    from brickwork.training import TensorBoard

    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(TrainingError, match="tensorboard"):
            TensorBoard(tmp_path)
        return
    res = fit(
        _model(), _loss, _problem(), config=FitConfig(epochs=1), callbacks=[TensorBoard(tmp_path)]
    )
    assert res.epochs == 1 and any(tmp_path.iterdir())


def test_cost_report_plot_is_a_png(tmp_path):
    from brickwork.training import CostReport

    report = CostReport(
        {"find": 2.0, "describe": 1.0}, [["find"], ["describe"]], end_to_end=4.0, workers=2
    )
    path = report.plot(tmp_path / "cost.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.tmp"))


class _Inline:
    """Runs jobs in this process (fast)."""

    name = "inline"
    workers = 1

    def map(self, fn, jobs, **kw):
        return [fn(dict(j)) for j in jobs]

    def close(self):
        pass


def test_train_registers_new_versions_with_unique_names(tmp_path):
    from brickwork.registry import module_name_to_tag as registry_tag

    reg = Registry(tmp_path / "reg")
    _, first = _small_plan_run(tmp_path / "a", _Inline(), registry=reg)
    _, second = _small_plan_run(tmp_path / "b", _Inline(), registry=reg, seed=1)
    assert first.summary["registered"]["find[0]"] == "toy_find.0-v1@1"
    assert second.summary["registered"]["find[0]"] == "toy_find.0-v1@2"
    assert first.summary["registered"]["encoder"] == "toy_encoder.encoder-v1@1"
    # both versions stay loadable and describe their own weights
    for res in (first, second):
        ref = res.summary["registered"]["find[0]"]
        assert reg.load(ref).fingerprint() == res.modules["find[0]"]["fingerprint"]
        assert reg.card(ref).data_digest == res.summary["data_digest"]
    # two modules of one kind without an [arg] never share a name
    assert registry_tag("sum_a") != registry_tag("sum_b")
    assert registry_tag("find[red]") == "red" and registry_tag("encoder") == "encoder"


def _plan_file(tmp_path, **edit):
    plan = write_example_plan(str(tmp_path / "p"), samples=64)
    spec = json.loads(open(plan).read())
    spec["train"]["hparams"] = {k: {"epochs": 1} for k in spec["train"]["hparams"]}
    spec["train"].update(edit)
    open(plan, "w").write(json.dumps(spec))
    return plan


def _rc(argv):
    """The CLI's exit code (argparse usage errors exit through SystemExit)."""
    try:
        return cli(argv)
    except SystemExit as exc:
        return exc.code


def test_train_cli_bad_inputs_are_one_line_and_write_nothing(tmp_path, capsys):
    import importlib.util

    plan = _plan_file(tmp_path)
    out = tmp_path / "run"
    cases = [
        (["--workers", "0"], "--workers"),
        (["--workers", "-2"], "--workers"),
        (["--trials", "-1"], "--trials"),
        (["--device", "gpu"], "not a device"),
    ]
    if importlib.util.find_spec("tensorboard") is None:
        cases.append((["--tensorboard"], "--tensorboard needs TensorBoard"))
    for extra, words in cases:
        rc = _rc(["train", plan, "--out", str(out), "--no-register", *extra])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and words in err and "Traceback" not in err, (extra, err)
        assert not out.exists(), extra
    # a folder where the plan file is expected, a file where the run folder is expected
    assert _rc(["train", str(tmp_path), "--out", str(out)]) == 2
    assert "is a folder, expected a file" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert cli(["train", plan, "--out", str(tmp_path / "file"), "--no-register"]) == 2
    assert "is a file, expected a folder" in capsys.readouterr().err
    # wrong JSON type in the plan file: file, key path, found, expected
    bad = _plan_file(tmp_path / "t", workers="2")
    assert cli(["train", bad, "--out", str(out), "--no-register"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.count("\n") == 0
        and 'train.workers: expected an integer >= 1, found a string "2"' in err
    )
    # a layout column out of range: the row and the valid range, before any training
    from brickwork.training import Samples

    data_path = tmp_path / "p" / "data.safetensors"
    data = Samples.load(data_path)
    layout = data["layout"].clone()
    layout[5] = 9
    Samples({**dict(data), "layout": layout}).save(data_path)
    assert cli(["train", plan, "--out", str(out), "--no-register"]) == 2
    err = capsys.readouterr().err
    assert "row 5: layout index 9 is out of range; expected 0..3" in err
    assert not out.exists()


def test_device_is_where_a_job_runs_not_what_it_is():
    from brickwork.training.job import ModuleJob, job_key

    job = ModuleJob(
        name="s",
        kind="Sum",
        config={"axes": "b 2"},
        mode="direct",
        data="d",
        inputs={},
        target="y",
        workdir="w",
    )
    moved = ModuleJob.from_json({**job.to_json(), "device": "cuda:1"})
    assert moved.device == "cuda:1" and job_key(moved) == job_key(job)


def test_end_to_end_and_evaluate_take_a_device():
    from brickwork.training import evaluate, train_end_to_end

    kinds = nmn_kinds()
    family = nmn_family(kinds)
    data = nmn_data(64, len(family))
    res = train_end_to_end(
        family,
        kinds,
        data,
        targets=["answer"],
        config=FitConfig(epochs=1, batch_size=32),
        device="cpu",
    )
    assert res.steps == 2
    assert evaluate(family, kinds, data, device="cpu").outputs["answer"]["count"] == 64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_train_plan_on_cuda(tmp_path):
    """Jobs train on the GPU (one worker slot per device), tables and the final
    evaluation run there, saved weights are CPU tensors that load anywhere."""
    from brickwork.modules import load_module
    from brickwork.training.trainer import evaluate_run

    with LocalExecutor(devices=["cuda:0"]) as ex:
        kinds, result = _small_plan_run(tmp_path, ex, device="cuda")
    assert {r["device"] for r in result.modules.values() if "device" in r} == {"cuda:0"}
    assert next(kinds.module("find[0]").parameters()).device.type == "cuda"
    assert result.summary["evaluation"]["outputs"]["answer"]["count"] > 0
    m = load_module(tmp_path / "run" / result.modules["find[0]"]["module_dir"])
    assert next(m.parameters()).device.type == "cpu"
    fresh = nmn_kinds()
    rep = evaluate_run(nmn_family(fresh), fresh, tmp_path / "run", device="cuda")
    assert rep.outputs["answer"]["value"] == pytest.approx(
        result.summary["evaluation"]["outputs"]["answer"]["value"], abs=1e-6
    )
