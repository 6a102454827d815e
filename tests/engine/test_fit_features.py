"""fit features: optimizers, schedules, budgets, keep-best, devices, loaders, metrics files."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from brickwork.errors import DataError, TrainingError
from brickwork.training.callbacks import Callback, EarlyStopping, ProgressBar
from brickwork.training.checkpoint import load_checkpoint, save_checkpoint
from brickwork.training.fit import FitConfig, fit, read_metrics_jsonl, write_metrics_csv
from brickwork.training.losses import resolve_callable
from brickwork.training.samples import Samples
from brickwork.training.seeding import derive_seed


def _problem(n=96):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g)
    return Samples({"x": x, "y": x @ torch.tensor([[1.0], [-2.0], [0.5]])})


def _model():
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def _loss(m, b):
    return torch.nn.functional.mse_loss(m(b["x"]), b["y"])


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class Snapshots(Callback):
    """Keeps the weights at the end of every epoch."""

    def __init__(self):
        self.at = {}

    def on_epoch_end(self, state):
        self.at[state.epoch] = _weights(state.model)


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "field,value,expected",
    [
        ("epochs", 0, "an integer >= 1"),
        ("batch_size", 2.5, "an integer >= 1"),
        ("lr", -1.0, "a finite number > 0"),
        ("lr", float("nan"), "a finite number > 0"),
        ("weight_decay", -0.1, ">= 0"),
        ("max_steps", 0, "None or an integer >= 1"),
        ("grad_clip", 0.0, "None or a finite number > 0"),
        ("optimizer", "lbfgs", "one of 'adam', 'adamw', 'sgd', 'rmsprop'"),
        ("momentum", 1.5, "a number in [0, 1)"),
        ("scheduler", "linear", "None or one of 'cosine', 'step', 'plateau', 'onecycle'"),
        ("max_time", -5, "None or a finite number of seconds > 0"),
        ("max_train_time", 0, "None or a finite number of seconds > 0"),
        ("train_clock", "cpu", "'wall' or 'process'"),
        ("keep_best", "", "None or a metric name"),
        ("keep_best_mode", "biggest", "'min', 'max' or 'auto'"),
    ],
)
def test_bad_config_names_field_value_and_expectation(field, value, expected):
    with pytest.raises(TrainingError) as err:
        FitConfig(**{field: value})
    msg = str(err.value)
    assert msg.startswith(f"FitConfig.{field}: got {value!r}, expected") and expected in msg


def test_config_cross_field_checks():
    with pytest.raises(
        TrainingError,
        match=r"FitConfig.momentum: got 0.9, expected 0 with "
        r"optimizer 'adam'",
    ):
        FitConfig(momentum=0.9)
    with pytest.raises(TrainingError, match="scheduler_kwargs.*unknown option 'T_max'"):
        FitConfig(scheduler="cosine", scheduler_kwargs={"T_max": 3})
    with pytest.raises(TrainingError, match="scheduler_kwargs.*None when scheduler is None"):
        FitConfig(scheduler_kwargs={"gamma": 0.5})
    with pytest.raises(TrainingError, match="scheduler_kwargs.*finite number for option 'gamma'"):
        FitConfig(scheduler="step", scheduler_kwargs={"gamma": "half"})
    cfg = FitConfig(
        scheduler="step",
        scheduler_kwargs={"gamma": 0.5},
        optimizer="sgd",
        momentum=0.9,
        max_time=3.0,
        keep_best="val_loss",
    )
    assert json.loads(json.dumps(cfg.to_json()))["scheduler_kwargs"] == {"gamma": 0.5}
    assert cfg.best_mode == "min" and FitConfig(keep_best="val_score").best_mode == "max"


# --------------------------------------------------------------------------- optimizers, schedules


@pytest.mark.parametrize(
    "name,cls",
    [
        ("adam", torch.optim.Adam),
        ("adamw", torch.optim.AdamW),
        ("sgd", torch.optim.SGD),
        ("rmsprop", torch.optim.RMSprop),
    ],
)
def test_optimizer_names_build_the_right_class(name, cls):
    seen = []

    class Spy(Callback):
        def on_fit_start(self, state):
            seen.append(state.optimizer)

    momentum = 0.5 if name in ("sgd", "rmsprop") else 0.0
    res = fit(
        _model(),
        _loss,
        _problem(),
        config=FitConfig(epochs=1, optimizer=name, momentum=momentum, lr=0.01),
        callbacks=[Spy()],
    )
    assert type(seen[0]) is cls and res.steps == 2
    if momentum:
        assert seen[0].param_groups[0]["momentum"] == 0.5


def test_optimizer_object_overrides_the_name():
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.123, momentum=0.9)
    lrs = []
    fit(
        model,
        _loss,
        _problem(),
        config=FitConfig(epochs=1, optimizer="adam"),
        optimizer=opt,
        on_step=lambda step, loss: lrs.append(opt.param_groups[0]["lr"]),
    )
    assert lrs == [0.123, 0.123] and opt.state  # the given optimizer did the steps


def test_cosine_schedule_goes_from_lr_to_eta_min():
    lrs = []

    class LR(Callback):
        def on_step(self, state):
            lrs.append(state.lr)

    cfg = FitConfig(
        epochs=4, batch_size=32, lr=0.1, scheduler="cosine", scheduler_kwargs={"eta_min": 0.001}
    )
    res = fit(_model(), _loss, _problem(), config=cfg, callbacks=[LR()])
    assert res.steps == 12 and len(lrs) == 12
    # step k+1 uses the cosine value at k of 12 planned steps
    expect = [0.001 + (0.1 - 0.001) * (1 + math.cos(math.pi * k / 12)) / 2 for k in range(12)]
    assert lrs == pytest.approx(expect) and lrs[0] == 0.1
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
    assert res.history[-1]["lr"] == pytest.approx(expect[-1]) and expect[-1] < 0.003


def test_step_schedule_changes_lr_per_epoch_and_onecycle_peaks_at_lr():
    cfg = FitConfig(
        epochs=5, lr=0.1, scheduler="step", scheduler_kwargs={"step_size": 2, "gamma": 0.5}
    )
    res = fit(_model(), _loss, _problem(), config=cfg)
    assert [r["lr"] for r in res.history] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    lrs = []
    fit(
        _model(),
        _loss,
        _problem(),
        config=FitConfig(epochs=5, batch_size=16, lr=0.2, scheduler="onecycle", optimizer="sgd"),
        on_step=lambda s, loss: lrs.append(None),
    )
    assert len(lrs) == 30  # onecycle over exactly the planned steps, no error at the end


def test_plateau_schedule_needs_its_monitor():
    with pytest.raises(TrainingError, match="monitors 'val_loss' but fit got no val data"):
        fit(
            _model(),
            _loss,
            _problem(),
            config=FitConfig(
                epochs=1, scheduler="plateau", scheduler_kwargs={"monitor": "val_loss"}
            ),
        )
    cfg = FitConfig(
        epochs=4,
        lr=1e-6,
        scheduler="plateau",
        scheduler_kwargs={"patience": 0, "factor": 0.5, "threshold": 0.5},
    )
    res = fit(_model(), _loss, _problem(), val=_problem(), config=cfg)
    assert [r["lr"] for r in res.history] == pytest.approx([1e-6, 1e-6, 5e-7, 2.5e-7])


def test_grad_clip_bounds_the_gradient_norm():
    norms = []

    class Norm(Callback):
        def on_step(self, state):
            norms.append(
                float(torch.sqrt(sum((p.grad**2).sum() for p in state.model.parameters())))
            )

    data = Samples({"x": torch.randn(32, 3) * 100, "y": torch.randn(32, 1) * 100})
    fit(_model(), _loss, data, config=FitConfig(epochs=2, grad_clip=0.5), callbacks=[Norm()])
    assert norms and max(norms) <= 0.5 + 1e-5
    norms.clear()
    fit(_model(), _loss, data, config=FitConfig(epochs=1), callbacks=[Norm()])
    assert max(norms) > 10


# --------------------------------------------------------------------------- budgets, keep-best


def test_max_time_stops_within_budget_plus_one_step_and_records_the_epoch(tmp_path):
    def slow(m, b):
        time.sleep(0.05)
        return _loss(m, b)

    budget = 0.4
    res = fit(
        _model(),
        slow,
        _problem(),
        config=FitConfig(epochs=1000, batch_size=8, max_time=budget),
        metrics_path=tmp_path / "m.jsonl",
    )
    assert res.stop_reason == "max_time" and res.stopped_early
    assert budget <= res.wall_time <= budget + 0.05 + 0.25  # one step of slack + overhead
    assert res.epochs == len(res.history) == 1 and res.steps < 12
    assert res.history[-1]["step"] == res.steps
    assert len(read_metrics_jsonl(tmp_path / "m.jsonl")) == 1


class SlowHook(Callback):
    """Spends ``pause`` wall seconds in every step hook, stamping the train time it sees."""

    def __init__(self, pause):
        self.pause, self.seen = pause, []

    def on_step(self, state):
        self.seen.append(state.train_time)
        time.sleep(self.pause)


def test_max_train_time_counts_training_steps_only():
    # each step sleeps 0.02 s in the loss (counted) and 0.05 s in a hook (not counted)
    def slow(m, b):
        time.sleep(0.02)
        return _loss(m, b)

    hook, budget = SlowHook(0.05), 0.2
    res = fit(
        _model(),
        slow,
        _problem(),
        config=FitConfig(epochs=1000, batch_size=8, max_train_time=budget),
        callbacks=[hook],
    )
    assert res.stop_reason == "max_train_time" and res.stopped_early
    # the budget buys about budget / 0.02 steps however long the hook takes
    assert 10 <= res.steps <= 13
    assert budget <= res.train_time <= budget + 0.02 + 0.05
    assert res.wall_time >= res.train_time + 0.05 * res.steps
    assert hook.seen == sorted(hook.seen) and hook.seen[-1] == pytest.approx(res.train_time)
    assert res.history[-1]["train_time"] == pytest.approx(res.train_time)


def test_process_clock_does_not_count_sleeping():
    # a sleeping loss costs wall time but (almost) no CPU time: the process clock
    # keeps the budget for the work, so the run goes on until max_steps
    def sleepy(m, b):
        time.sleep(0.01)
        return _loss(m, b)

    cfg = dict(epochs=1000, batch_size=8, max_steps=30, max_train_time=0.25)
    wall = fit(_model(), sleepy, _problem(), config=FitConfig(**cfg))
    cpu = fit(_model(), sleepy, _problem(), config=FitConfig(**cfg, train_clock="process"))
    assert wall.stop_reason == "max_train_time" and wall.steps < 30
    assert cpu.stop_reason == "max_steps" and cpu.train_time < 0.25


def test_train_time_survives_a_resume(tmp_path):
    cfg = FitConfig(epochs=2, batch_size=16, train_clock="process")
    first = fit(_model(), _loss, _problem(), config=cfg, checkpoint_dir=tmp_path)
    cfg4 = FitConfig(epochs=4, batch_size=16, train_clock="process")
    with pytest.raises(TrainingError):  # a different config is refused, as before
        fit(_model(), _loss, _problem(), config=cfg4, checkpoint_dir=tmp_path, resume=True)
    again = fit(_model(), _loss, _problem(), config=cfg, checkpoint_dir=tmp_path, resume=True)
    assert again.resumed_from == 2 and again.train_time == pytest.approx(first.train_time)


class StopAt(Callback):
    def __init__(self, step):
        self.step = step

    def on_step(self, state):
        if state.step == self.step:
            state.stop = True


def test_a_step_hook_that_stops_ends_the_epoch_at_once():
    # 96 samples / 8 = 12 steps an epoch: stopping at step 5 records a partial epoch
    res = fit(
        _model(), _loss, _problem(), config=FitConfig(epochs=5, batch_size=8), callbacks=[StopAt(5)]
    )
    assert res.steps == 5 and res.epochs == len(res.history) == 1
    assert res.stop_reason == "callback" and res.stopped_early


def test_max_steps_ends_mid_epoch():
    res = fit(_model(), _loss, _problem(), config=FitConfig(epochs=10, batch_size=16, max_steps=8))
    assert res.steps == 8 and res.epochs == 2 and res.stop_reason == "max_steps"


def test_keep_best_restores_the_weights_of_the_best_epoch():
    snaps = Snapshots()
    data = _problem()
    val = Samples({"x": data["x"], "y": -data["y"]})  # val gets worse as train improves
    res = fit(
        _model(),
        _loss,
        data,
        val=val,
        config=FitConfig(epochs=6, lr=0.05, batch_size=16, keep_best="val_loss"),
        callbacks=[snaps],
    )
    losses = [r["val_loss"] for r in res.history]
    best = min(range(6), key=losses.__getitem__) + 1
    assert res.best_epoch == best and res.best == losses[best - 1]
    assert best != 6  # the test would prove nothing if the last epoch were the best
    model = _model()
    fit(
        model,
        _loss,
        data,
        val=val,
        config=FitConfig(epochs=6, lr=0.05, batch_size=16, keep_best="val_loss"),
    )
    for k, v in model.state_dict().items():
        assert torch.equal(v, snaps.at[best][k])
    assert not all(torch.equal(v, snaps.at[6][k]) for k, v in model.state_dict().items())


def test_keep_best_unknown_metric_is_named():
    with pytest.raises(
        TrainingError,
        match=r"FitConfig.keep_best: metric 'val_score' is not in "
        r"the epoch records \(they have \['epoch', 'lr', "
        r"'step', 'time', 'train_loss'\]\)",
    ):
        fit(_model(), _loss, _problem(), config=FitConfig(epochs=1, keep_best="val_score"))


def test_keep_best_survives_a_resume(tmp_path):
    data = _problem()
    val = Samples({"x": data["x"], "y": -data["y"]})
    cfg = FitConfig(epochs=6, lr=0.05, batch_size=16, keep_best="val_loss", seed=2)
    ref = _model()
    ref_res = fit(ref, _loss, data, val=val, config=cfg)

    class Crash(Callback):
        def on_epoch_end(self, state):
            if state.epoch == 4:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(
            _model(), _loss, data, val=val, config=cfg, checkpoint_dir=tmp_path, callbacks=[Crash()]
        )
    resumed = _model()
    res = fit(resumed, _loss, data, val=val, config=cfg, checkpoint_dir=tmp_path, resume=True)
    assert res.resumed_from == 3 and res.best_epoch == ref_res.best_epoch
    for a, b in zip(ref.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_early_stopping_restore_best():
    snaps = Snapshots()
    data = _problem()
    val = Samples({"x": data["x"], "y": -data["y"]})
    stop = EarlyStopping("val_loss", patience=2, restore_best=True)
    model = _model()
    res = fit(
        model,
        _loss,
        data,
        val=val,
        config=FitConfig(epochs=50, lr=0.05, batch_size=16),
        callbacks=[snaps, stop],
    )
    assert res.stop_reason == "callback" and stop.best_epoch == res.epochs - 2
    for k, v in model.state_dict().items():
        assert torch.equal(v, snaps.at[stop.best_epoch][k])


# --------------------------------------------------------------------------- hooks


def test_on_step_is_called_once_per_step_and_on_epoch_per_epoch():
    steps, epochs, cb_steps = [], [], []

    class Steps(Callback):
        def on_step(self, state):
            cb_steps.append((state.step, state.loss, state.lr))

    res = fit(
        _model(),
        _loss,
        _problem(),
        config=FitConfig(epochs=3, batch_size=32, lr=0.01),
        on_step=lambda step, loss: steps.append((step, loss)),
        on_epoch=lambda epoch, rec: epochs.append((epoch, rec["train_loss"])),
        callbacks=[Steps()],
    )
    assert [s for s, _ in steps] == list(range(1, 10)) and res.steps == 9
    assert all(isinstance(v, float) and math.isfinite(v) for _, v in steps)
    assert [(s, loss) for s, loss, _ in cb_steps] == steps and cb_steps[0][2] == 0.01
    assert [e for e, _ in epochs] == [1, 2, 3]
    assert epochs[-1][1] == res.history[-1]["train_loss"]


def test_progress_bar_counts_steps_and_ends_full_under_a_budget():
    bars = []

    class Probe(ProgressBar):
        def on_fit_end(self, state):
            super().on_fit_end(state)
            bars.append((self.bar.total, self.bar.n))

        def on_fit_start(self, state):
            super().on_fit_start(state)
            bars.append((self.bar.total, self.bar.n))

    fit(
        _model(),
        _loss,
        _problem(),
        config=FitConfig(epochs=100, batch_size=32, max_steps=7),
        callbacks=[Probe()],
    )
    assert bars == [(7, 0), (7, 7)]
    bars.clear()
    fit(
        _model(),
        _loss,
        _problem(),
        val=_problem(),
        config=FitConfig(epochs=100, batch_size=32),
        callbacks=[Probe(), EarlyStopping("val_loss", patience=1, min_delta=10.0)],
    )
    assert bars == [(300, 0), (6, 6)]  # stopped at epoch 2 of 100: the bar ends at 6/6


# --------------------------------------------------------------------------- data


def test_loader_gives_the_same_weights_as_samples_in_the_same_order():
    data = _problem()
    cfg = FitConfig(epochs=3, batch_size=16, lr=0.01, seed=4)

    class Dataset(torch.utils.data.Dataset):
        def __len__(self):
            return len(data)

        def __getitem__(self, i):
            return {"x": data["x"][i], "y": data["y"][i]}

    class SameOrder(torch.utils.data.Sampler):
        """fit's own order for Samples: a permutation per epoch from the derived seed."""

        def __init__(self):
            self.epoch = 0

        def __len__(self):
            return len(data)

        def __iter__(self):
            g = torch.Generator().manual_seed(derive_seed(cfg.seed, "epoch", self.epoch))
            self.epoch += 1
            return iter(torch.randperm(len(data), generator=g).tolist())

    loader = torch.utils.data.DataLoader(Dataset(), batch_size=16, sampler=SameOrder())
    val_loader = torch.utils.data.DataLoader(Dataset(), batch_size=40)
    a, b = _model(), _model()
    ra = fit(a, _loss, data, val=data, config=cfg, evaluate=lambda m, v: {"n": len(v)})
    rb = fit(b, _loss, loader, val=val_loader, config=cfg, evaluate=lambda m, v: {"n": len(v)})
    for x, y in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(x, y)
    assert rb.steps == ra.steps == 18 and rb.history[-1]["n"] == 96
    assert rb.history[-1]["val_loss"] == pytest.approx(ra.history[-1]["val_loss"])


def test_loader_of_bad_batches_is_refused_with_the_batch_named():
    loader = torch.utils.data.DataLoader(list(range(10)), batch_size=5)
    with pytest.raises(
        TrainingError,
        match=r"train, batch 0: a DataLoader must yield "
        r"dict\[str, Tensor\] or Samples, got Tensor",
    ):
        fit(_model(), _loss, loader, config=FitConfig(epochs=1))


def test_split_by_group_keeps_each_group_on_one_side():
    g = torch.Generator().manual_seed(0)
    groups = torch.randint(0, 23, (500,), generator=g)
    s = Samples({"question": groups, "x": torch.randn(500, 2, generator=g)})
    a, b = s.split(0.8, seed=5, groups="question")
    assert not set(a["question"].tolist()) & set(b["question"].tolist())
    assert len(a) + len(b) == 500 and set(a.ids.tolist()) | set(b.ids.tolist()) == set(range(500))
    assert len(set(a["question"].tolist())) == round(0.8 * len(set(groups.tolist())))
    a2, _ = s.split(0.8, seed=5, groups="question")
    assert torch.equal(a.ids, a2.ids)  # deterministic
    a3, _ = s.split(0.8, seed=6, groups="question")
    assert not torch.equal(a.ids, a3.ids)
    # rows of a 2-D group column are groups too; tiny fractions still leave one group each side
    two = Samples({"prog": torch.tensor([[1, 2], [1, 2], [3, 4], [5, 6]])})
    first, rest = two.split(0.01, groups="prog")
    assert len(first) in (1, 2) and len(rest) == 4 - len(first)
    with pytest.raises(DataError, match="holds 1 group\\(s\\); a split by group needs at least 2"):
        Samples({"q": torch.zeros(5)}).split(0.5, groups="q")
    with pytest.raises(DataError, match="no column 'nope' to group by"):
        s.split(0.5, groups="nope")
    with pytest.raises(DataError, match=r"fraction must be a number in \[0, 1\], got 1.5"):
        s.split(1.5)


def test_samples_to_device():
    s = _problem(8)
    m = s.to("meta")
    assert m["x"].device.type == "meta" and m.ids.device.type == "meta" and s.to("cpu") is s
    assert m.select(torch.tensor([1, 0]))["x"].shape == (2, 3)
    assert [b["x"].device.type for b in m.batches(3)] == ["meta"] * 3


class _Seen(Exception):
    pass


@pytest.mark.parametrize("as_loader", [False, True])
def test_fit_moves_the_model_and_every_batch_to_the_device(as_loader):
    """No GPU needed: on the meta device the loss cannot be read, so the loss function
    checks where everything is and stops the fit."""
    seen = {}

    def loss(m, b):
        seen.update(
            model=next(m.parameters()).device.type, x=b["x"].device.type, ids=b.ids.device.type
        )
        raise _Seen

    data = _problem(8)
    train = (
        torch.utils.data.DataLoader(
            [{"x": data["x"][i], "y": data["y"][i]} for i in range(8)], batch_size=4
        )
        if as_loader
        else data
    )
    model = _model()
    with pytest.raises(_Seen):
        fit(model, loss, train, config=FitConfig(epochs=1), device="meta")
    assert seen == {"model": "meta", "x": "meta", "ids": "meta"}


# --------------------------------------------------------------------------- metrics files, logs


def test_metrics_jsonl_has_one_line_per_epoch_and_matches_a_resume(tmp_path):
    path = tmp_path / "metrics.jsonl"
    cfg = FitConfig(epochs=4, batch_size=32)

    class Crash(Callback):
        def on_epoch_end(self, state):
            if state.epoch == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(
            _model(),
            _loss,
            _problem(),
            val=_problem(),
            config=cfg,
            checkpoint_dir=tmp_path / "ck",
            callbacks=[Crash()],
            metrics_path=path,
        )
    assert [r["epoch"] for r in read_metrics_jsonl(path)] == [1, 2, 3]  # epoch 3 not checkpointed
    res = fit(
        _model(),
        _loss,
        _problem(),
        val=_problem(),
        config=cfg,
        checkpoint_dir=tmp_path / "ck",
        resume=True,
        metrics_path=path,
    )
    lines = path.read_text().splitlines()
    assert len(lines) == 4 == res.epochs
    assert [json.loads(line) for line in lines] == json.loads(json.dumps(res.history))
    csv_path = write_metrics_csv(path, tmp_path / "metrics.csv")
    rows = csv_path.read_text().splitlines()
    assert rows[0] == "epoch,step,train_loss,lr,val_loss,time" and len(rows) == 5
    assert write_metrics_csv(res.history, tmp_path / "h.csv").read_text() == csv_path.read_text()


def test_log_metrics_is_seen_without_logging_configured():
    code = textwrap.dedent("""
        import logging, sys
        import torch
        from brickwork.training.callbacks import LogMetrics
        from brickwork.training.fit import FitConfig, fit
        from brickwork.training.samples import Samples

        def run():
            fit(torch.nn.Linear(2, 1), lambda m, b: m(b["x"]).pow(2).mean(),
                Samples({"x": torch.randn(16, 2)}), config=FitConfig(epochs=2),
                callbacks=[LogMetrics("probe")])
            sys.stderr.write("--\\n")

        run()                                        # nothing configured
        logging.basicConfig(level=logging.WARNING)   # configured, WARNING: silent
        run()
        logging.getLogger().setLevel(logging.INFO)   # configured, INFO: once per epoch
        run()
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""  # logs, never prints
    plain, quiet, loud, _ = out.stderr.split("--\n")
    lines = [line for line in plain.splitlines() if line.startswith("probe ")]
    assert len(lines) == 2 and "epoch=1" in lines[0] and "train_loss=" in lines[0]
    assert "probe" not in quiet
    assert sum("probe epoch=" in line for line in loud.splitlines()) == 2  # no duplicates


# --------------------------------------------------------------------------- checkpoints, losses


def test_checkpoint_loads_onto_the_models_device(tmp_path):
    model = _model()
    opt = torch.optim.Adam(model.parameters())
    save_checkpoint(tmp_path, model, opt, {"epoch": 1, "step": 1}, extra={"best.w": torch.ones(2)})
    with pytest.raises(TrainingError, match="the checkpoint does not fit this model"):
        load_checkpoint(tmp_path, torch.nn.Linear(2, 2), restore_rng=False)
    extra = {}
    load_checkpoint(tmp_path, _model().to("meta"), restore_rng=False, extra=extra)
    assert extra["best.w"].device.type == "meta"  # mapped to the model's device
    cpu_extra = {}
    load_checkpoint(tmp_path, _model(), restore_rng=False, extra=cpu_extra, map_location="cpu")
    assert torch.equal(cpu_extra["best.w"], torch.ones(2))


def test_resolve_callable_forms_and_errors():
    import torch.nn.functional as F

    assert resolve_callable("torch.nn.functional:mse_loss") is F.mse_loss
    assert resolve_callable("torch.nn.functional.mse_loss") is F.mse_loss
    assert resolve_callable("brickwork.training.losses:type_loss").__name__ == "type_loss"
    with pytest.raises(
        TrainingError,
        match=r"plan.json: 'nopkg_xyz.mod:f': no module named "
        r"'nopkg_xyz.mod'",
    ):
        resolve_callable("nopkg_xyz.mod:f", where="plan.json")
    with pytest.raises(TrainingError, match="module 'torch.nn.functional' has no attribute 'nope'"):
        resolve_callable("torch.nn.functional:nope")
    with pytest.raises(TrainingError, match="is not an importable name"):
        resolve_callable("../evil.py")
    with pytest.raises(TrainingError, match="is a float, not a function"):
        resolve_callable("math:pi")
    with pytest.raises(
        TrainingError,
        match=r"module 'math' is not in the allowed imports "
        r"\['mypkg'\]; add it",
    ):
        resolve_callable("math:sqrt", allowed_modules=["mypkg"])


def test_samples_membership_answers_without_raising():
    """``"col" in samples`` is a question, not a lookup: a missing column is False."""
    import torch

    from brickwork.training import Samples

    data = Samples({"x": torch.zeros(3)})
    assert "x" in data and "ids" in data
    assert "y" not in data and 3 not in data
