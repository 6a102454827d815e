"""Trained function modules: length generalisation, composition through the Runner."""

from __future__ import annotations

import random

import pytest
import torch

from brickwork.layouts import Runner
from brickwork.modules import load_module
from brickwork.registry import Registry
from brickwork.studies.pcfg import (
    Composer,
    apply_reference,
    encode,
    function_kinds,
    make_function_module,
    parse_program,
    program_layout,
    registry_name,
    train_function,
)
from brickwork.studies.pcfg.evaluate import random_chain, single_function_examples


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("pcfg")
    mods = {}
    for fn in ("reverse", "append", "shift"):
        r = train_function(
            {"function": fn, "out": str(out), "seed": 0, "examples": 1000, "max_time": 60}
        )
        assert r["metrics"]["exact"] == 1.0, r
        mods[fn] = load_module(r["folder"]).eval()
    return mods


def _score(composer, examples):
    preds = composer([parse_program(e.source) for e in examples])
    return sum(" ".join(p) == e.target for p, e in zip(preds, examples)) / len(examples)


def test_each_module_alone_is_exact_far_beyond_training_length(trained):
    comp = Composer(trained)
    for fn in trained:
        assert _score(comp, single_function_examples(fn, range(1, 401, 9), seed=1)) == 1.0


def test_compositions_on_50x_strings(trained):
    rng = random.Random(4)
    progs = [random_chain(rng, 3, 500, list(trained)) for _ in range(6)]
    progs += [
        parse_program(s)
        for s in (
            "reverse append shift A1 B2 C3 , reverse D4 E5",
            "append reverse A1 B2 , append C3 , shift D4 E5 F6",
        )
    ]
    assert Composer(trained)(progs) == [apply_reference(p) for p in progs]


def test_autobatched_runner_matches_per_sample_on_different_shapes(trained):
    kinds = function_kinds(trained)
    progs = [
        parse_program(s)
        for s in (
            "reverse A1 B2 C3",
            "append A1 , reverse B2 C3",
            "shift append reverse A1 B2 , C3 D4",
        )
    ]
    layouts = [program_layout(p, kinds, name=f"p{i}") for i, p in enumerate(progs)]
    assert len({len(lay.nodes) for lay in layouts}) == 3
    inputs = {
        "s0": encode([["A1", "B2", "C3"], ["A1"], ["A1", "B2"]], width=8),
        "s1": encode([[], ["B2", "C3"], ["C3", "D4"]], width=8),
    }
    with torch.no_grad():
        batched = Runner(kinds)(layouts, inputs, ["out"])["out"]
        ref = Runner.per_sample(layouts, inputs, ["out"])["out"]
    assert torch.equal(batched, ref)


def test_untrained_modules_do_not_solve_it():
    """Every output symbol comes from the module: untrained pointers get it wrong."""
    from brickwork.studies.pcfg import FUNCTIONS

    torch.manual_seed(0)
    comp = Composer({f: make_function_module(f) for f in FUNCTIONS})
    scores = [_score(comp, single_function_examples(f, range(2, 30), seed=0)) for f in FUNCTIONS]
    assert sum(scores) / len(scores) < 0.2


def test_registry_round_trip(trained, tmp_path):
    reg = Registry(tmp_path / "reg")
    reg.put(registry_name("reverse"), trained["reverse"])
    back = reg.load("pcfg.reverse").eval()
    x = encode([["A1", "B2", "C3"]], width=5)
    assert torch.equal(back(x), trained["reverse"](x))
