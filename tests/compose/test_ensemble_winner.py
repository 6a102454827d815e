"""fit.ensemble_scope="winner": selection among single fits, then only the winner's new
modules (and the standalone baseline) become ensembles of K."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from brickwork.compose import (
    LibraryOp,
    SolveConfig,
    Task,
    build_program,
    run_candidate,
    score,
    solve,
)
from brickwork.compose.holes import Hole
from brickwork.compose.jobs import ENSEMBLE_SEED_STEP, ensemble_options
from brickwork.compose.program import hole_term
from brickwork.compose.solve import Candidate, _ensemble_winner
from brickwork.compose.types import ListOf
from brickwork.errors import DataError
from brickwork.modules import load_module
from brickwork.registry import Registry
from brickwork.studies.compose import (
    StudyConfig,
    count_samples,
    digit_pools,
    recognise_samples,
)
from brickwork.studies.compose.study import baseline_jobs
from brickwork.training import Samples
from brickwork.types import Bool, Count, Features

IMG = Features("b 1 8 8")
FIT = {"epochs": 2, "batch_size": 32, "lr": 3e-3, "keep_best": "val_loss", "min_steps": 6}


@pytest.fixture(scope="module")
def recognise(tmp_path_factory):
    root = tmp_path_factory.mktemp("recognise")
    pools = digit_pools(0)
    tr = recognise_samples(pools["train"], 3, seed=0, fraction=0.15, negatives=None)
    va = recognise_samples(pools["val"], 3, seed=1, fraction=0.3, negatives=None)
    return str(tr.save(root / "tr.st")), str(va.save(root / "va.st"))


def _states_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_the_winner_alone_becomes_an_ensemble_of_k_distinct_fits(recognise, tmp_path):
    train, val = recognise
    # a value output: its RMSE tells an ensemble's test scores from its first fit's (two
    # barely trained recognisers can both say "no" everywhere and tie on accuracy)
    task = Task("threes", IMG, Count("b 1"), train=train, val=val, tests={"test": val})
    registry = Registry(tmp_path / "reg")
    cfg = SolveConfig(
        rank_limit=3,
        rank_steps=3,
        top_k=2,
        structured_k=0,
        fit={**FIT, "ensemble": 2, "ensemble_scope": "winner"},
    )
    said: list[str] = []
    sol = solve(task, registry, workdir=tmp_path / "run", config=cfg, progress=said.append)
    trained = [c for c in sol.candidates if c.stage == "trained"]
    assert len(trained) == 2
    # selection compared single fits: every fully trained candidate saved one network
    for c in trained:
        if c is not sol.winner:
            saved = (c.result or {})["saved"]
            assert all(load_module(s).config["members"] == 1 for s in saved)
    result = sol.winner.result or {}
    assert result["members"] == 2 and "first_fit" in result
    (ref,) = sol.registered
    ens = registry.load(ref)
    assert isinstance(ens, Hole) and ens.members_count == 2
    first, second = ens.members
    assert not _states_equal(first, second)  # distinct members
    # member 0 is the winner's own single fit, member 1 the single fit of the next seed
    (single,) = result["first_fit"]["saved"]
    assert _states_equal(first, load_module(single))
    again = run_candidate(
        {
            "term": sol.winner.term,
            "train": train,
            "val": val,
            "seed": ENSEMBLE_SEED_STEP,
            "member": 1,
            "select_split": cfg.select_split,
            "fit": {**FIT, "ensemble": 1},
            "out": str(tmp_path / "m1"),
        }
    )
    assert _states_equal(second, load_module(again["saved"][0]))
    # the test scores are the registered ensemble's; the first fit's are kept beside them
    program = build_program(
        sol.program, lambda t, k: registry.load(t[1]) if t[0] == "reg" else LibraryOp(t[1])
    )
    assert result["tests"]["test"] == score(program, Samples.load(val))
    assert set(result["first_fit"]["tests"]) == {"test"}
    assert "ensembling the winner's new modules: 1 more fit" in said
    # recorded: the solution's config and the registry card
    record = json.loads((tmp_path / "run" / "solution.json").read_text())
    assert record["config"]["fit"]["ensemble_scope"] == "winner"
    assert record["config"]["fit"]["ensemble"] == 2
    assert registry.card(ref).hyperparameters["ensemble_scope"] == "winner"
    # the card's metrics are the registered ensemble's, not the first fit's
    assert dict(registry.card(ref).metrics) == result["val"]
    # solution.json: the selection's score is the first fit's; the tests the ensemble's
    assert record["members"] == 2 and record["tests"] == result["tests"]
    assert record["validation_score"] == sol.winner.final == result["first_fit"]["val"]["score"]
    assert record["ensemble_validation_score"] == result["val"]["score"]
    assert record["first_fit_tests"] == result["first_fit"]["tests"]
    assert record["tests"] != record["first_fit_tests"]


def test_the_winners_ensemble_is_run_candidates_ensemble_even_with_a_fit_seed(recognise, tmp_path):
    train, val = recognise
    term = hole_term({"x": IMG}, Bool("b 1"))
    fit = {**FIT, "seed": 5}  # a fit's own seed overrides the job's: members must move it too
    base = {"registry": "", "train": train, "val": val, "seed": 2, "select_split": 0.5}
    tests = {"test": val}
    single = run_candidate(
        {**base, "term": term, "fit": fit, "tests": tests, "out": str(tmp_path / "one")}
    )
    winner = Candidate(term, 1, 1, result=single)
    got = _ensemble_winner(winner, 2, base, fit, tests, tmp_path / "w")
    both = run_candidate(
        {
            **base,
            "term": term,
            "fit": {**fit, "ensemble": 2},
            "tests": tests,
            "out": str(tmp_path / "two"),
        }
    )
    mine, theirs = load_module(got["saved"][0]), load_module(both["saved"][0])
    assert _states_equal(mine, theirs)
    assert got["members"] == both["members"] == 2
    assert got["val"] == both["val"] and got["tests"] == both["tests"]
    assert got["first_fit"]["tests"] == single["tests"]


def test_baselines_standalone_gets_k_lstm_and_transfer_stay_single(tmp_path):
    registry = Registry(tmp_path / "reg")
    cnn = hole_term({"x": IMG}, Count("b 1"))
    term = ["compose", ["map", cnn], ["fold", ["lib", "add"]]]
    pools = digit_pools(0)
    tr = count_samples(pools["train"], 3, n=10, lengths=(2, 5), seed=0).save(tmp_path / "tr.st")
    va = count_samples(pools["val"], 3, n=12, lengths=(2, 5), seed=1).save(tmp_path / "va.st")
    task = Task("count_3", ListOf(IMG), Count("b 1"), train=str(tr), val=str(va))
    sol = SimpleNamespace(winner=SimpleNamespace(term=term))
    for scope, others in (("winner", 1), ("all", 3)):
        search = SolveConfig(fit={**FIT, "ensemble": 3, "ensemble_scope": scope})
        jobs = baseline_jobs(sol, task, registry, "recognise_3.new0@1", search, "cpu")
        assert set(jobs) == {"standalone", "lstm", "transfer"}
        assert ensemble_options(jobs["standalone"]["fit"])[0] == 3
        assert ensemble_options(jobs["lstm"]["fit"])[0] == others
        assert ensemble_options(jobs["transfer"]["fit"])[0] == others
    # the standalone job really fits K copies and scores their ensemble
    search = SolveConfig(fit={**FIT, "ensemble": 2, "ensemble_scope": "winner"})
    job = baseline_jobs(sol, task, registry, None, search, "cpu")["standalone"]
    done = run_candidate({**job, "tests": {}, "out": str(tmp_path / "s")})
    assert done["members"] == 2
    saved = load_module(done["saved"][0])
    assert isinstance(saved, Hole) and saved.members_count == 2


def test_bad_ensemble_options_are_one_line_before_any_work(recognise, tmp_path):
    train, val = recognise
    task = Task("recognise_3", IMG, Bool("b 1"), train=train, val=val)
    cfg = SolveConfig(fit={**FIT, "ensemble": 2, "ensemble_scope": "best"})
    with pytest.raises(DataError, match="ensemble_scope got 'best', expected one of"):
        solve(task, None, workdir=tmp_path / "run", config=cfg)
    assert not (tmp_path / "run" / "solution.json").exists()
    with pytest.raises(DataError, match="ensemble got 0, expected an integer >= 1"):
        ensemble_options({"ensemble": 0})


def test_the_bench_ensembles_the_winner_by_default():
    for cfg in (StudyConfig(), StudyConfig.quick()):
        assert ensemble_options(cfg.fit) == (3, "winner")
