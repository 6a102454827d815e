"""brickwork.compose: programs are layouts run by the Runner; typed pruning; device;
batched scoring; min_steps."""

from __future__ import annotations

import pytest
import torch

from brickwork.compose import (
    LibraryOp,
    ListOf,
    Padded,
    Task,
    compose,
    count_space,
    fold_l,
    functions,
    hole_allowed,
    leaf,
    make_hole,
    map_l,
    run_candidate,
    score,
    standard_library,
)
from brickwork.compose.jobs import score_programs
from brickwork.compose.program import FoldStage, MapStage, hole_term, term_str
from brickwork.compose.search import Function, Space
from brickwork.errors import LayoutError
from brickwork.layouts import Kinds, Layout, Node, Runner, Source
from brickwork.registry import Registry
from brickwork.studies.compose import count_samples, digit_pools
from brickwork.types import Bool, Count, Features, Probs

IMG = Features("b 1 8 8")


def test_programs_are_layouts_of_combinator_modules_run_by_the_runner():
    count = compose(map_l(leaf(LibraryOp("as_count"))), fold_l(leaf(LibraryOp("add"))))
    assert isinstance(count.layout, Layout)
    kinds = [count.layout.signature_of(n.id) for n in count.layout.nodes]
    assert [type(count.kinds.module(n.module)).kind_name for n in count.layout.nodes] == [
        "compose.map",
        "compose.fold",
    ]
    assert list(kinds[0].inputs) == ["values", "mask"]
    p = Padded.from_list([torch.ones(4, 1), torch.zeros(2, 1), torch.ones(1, 1)])
    assert count(p).squeeze(1).tolist() == [4.0, 0.0, 1.0]
    sched = count.runner.last_schedule
    assert sched is not None and sched.batch == 3 and sched.calls == 2  # one call per stage
    # the same layout run by a Runner the caller makes gives the same counts
    out = Runner(count.kinds)(
        [count.layout] * 3, {"values": p.values, "mask": p.mask.float()}, ["y"]
    )
    assert out["y"].squeeze(1).tolist() == [4.0, 0.0, 1.0]


def test_combinator_modules_type_check_when_the_layout_is_built():
    kinds = Kinds()
    kinds.add("map_not", MapStage(leaf(LibraryOp("not"))))
    kinds.add("fold_add", FoldStage(leaf(LibraryOp("add"))))
    nodes = [
        Node(
            "m",
            "map_not",
            "map_not",
            None,
            {"values": Source(None, "v"), "mask": Source(None, "m")},
        ),
        Node(
            "f",
            "fold_add",
            "fold_add",
            None,
            {"values": Source("m", "values"), "mask": Source("m", "mask")},
        ),
    ]
    with pytest.raises(LayoutError, match=r"node 'f', port 'values': got Bool\['b n 1'\]"):
        Layout("count", nodes, kinds)


def test_typed_holes_follow_value_domains():
    assert hole_allowed(IMG, Bool("b 1")) == ""
    assert hole_allowed(Probs("b 10"), Count("b 1")) == ""  # a readout of a distribution
    assert "scalar decision Bool" in hole_allowed(Bool("b 1"), Count("b 1"))
    assert "reduces it" in hole_allowed(Probs("b 10"), Probs("b 10"))
    assert "neutral element" in hole_allowed((Probs("b 10"), Bool("b 1")), Probs("b 10"))
    assert "monoid" in hole_allowed((Count("b 1"), Probs("b 10")), Count("b 1"))
    assert "monoid" in hole_allowed((Bool("b 1"), Bool("b 1")), Bool("b 1"))
    assert hole_allowed((Count("b 1"), Probs("b 10")), Count("b 1"), monoids=()) == ""
    assert hole_allowed(ListOf(Bool("b 1")), Count("b 1")) != ""


def test_typed_search_is_ten_times_smaller_than_shape_only_at_the_search_bound():
    fns = functions(standard_library()) + [
        Function(("reg", "recognise_3.new0@1"), (IMG,), Bool("b 1")),
        Function(("reg", "classify.new0@1"), (IMG,), Probs("b 10")),
    ]
    task = Task("count_7", ListOf(IMG), Count("b 1"))
    counts = count_space(task, fns, 10, 2)
    assert (
        counts["typed"] * 10 <= counts["shape_only"] and counts["typed"] * 1000 < counts["untyped"]
    )
    terms = Space.build(task.input, task.output, fns, "typed").programs(10, 2)
    shown = {term_str(t) for t in terms}
    assert len(terms) == counts["typed"]
    # reading the registry classifier for a digit it was not trained to recognise
    assert "fold(add) ∘ map(NEW[Probs['b 10'] -> Count['b 1']] ∘ classify.new0)" in shown
    assert not any("NEW[Bool['b 1'] ->" in s for s in shown)  # no new net on a scalar


def test_no_learned_fold_step_for_a_state_the_library_folds():
    reg = [
        Function(("reg", "recognise_3.new0@1"), (IMG,), Bool("b 1")),
        Function(("reg", "classify.new0@1"), (IMG,), Probs("b 10")),
    ]
    full = functions(standard_library()) + reg
    shown = {term_str(t) for t in Space.build(ListOf(IMG), Count("b 1"), full).programs(10, 2)}
    assert not any("fold(NEW[" in s for s in shown)  # Count has add: no step hole
    # ... the step that extrapolates, add ∘ (id, g), is there as fold(add) ∘ map(g)
    assert "fold(add) ∘ map(as_count ∘ recognise_3.new0)" in shown
    assert "fold(add) ∘ map(NEW[Probs['b 10'] -> Count['b 1']] ∘ classify.new0)" in shown
    assert "fold(add) ∘ map(NEW[Features['b 1 8 8'] -> Count['b 1']])" in shown
    any_3 = Space.build(ListOf(IMG), Bool("b 1"), full).programs(6, 1)
    assert not any("fold(NEW[" in term_str(t) for t in any_3)  # Bool has or/and
    assert "fold(or) ∘ map(recognise_3.new0)" in {term_str(t) for t in any_3}
    # a library without a step for Count: a learned step is then the only fold of counts
    bare = {k: v for k, v in standard_library().items() if k not in ("add", "max")}
    space = Space.build(ListOf(IMG), Count("b 1"), functions(bare) + reg)
    assert space.monoids == {"Bool"}
    steps = [term_str(t) for t in space.programs(6, 1) if "fold(NEW[" in term_str(t)]
    assert any("Count['b 1'] -> Count['b 1']]) ∘ map(recognise_3.new0)" in s for s in steps)
    assert not any(s.startswith("fold") and "-> Bool['b 1']])" in s for s in steps)


@pytest.fixture(scope="module")
def lists(tmp_path_factory):
    root = tmp_path_factory.mktemp("lists")
    pools = digit_pools(0)
    tr = count_samples(pools["train"], 3, n=10, lengths=(2, 5), seed=0).save(root / "tr.st")
    va = count_samples(pools["val"], 3, n=30, lengths=(2, 5), seed=1).save(root / "va.st")
    return str(tr), str(va)


def test_score_programs_loads_once_and_agrees_with_run_candidate(lists, tmp_path):
    reg = Registry(tmp_path / "reg")
    torch.manual_seed(0)
    ref = reg.put("recognise_3.new0", make_hole(IMG, Bool("b 1"))).ref
    terms = [
        [
            "compose",
            ["map", ["compose", ["reg", ref], ["lib", "as_count"]]],
            ["fold", ["lib", "add"]],
        ],
        [
            "compose",
            ["map", ["compose", ["reg", ref], ["lib", "as_count"]]],
            ["fold", ["lib", "max"]],
        ],
    ]
    base = {"registry": str(reg.root), "train": lists[0], "val": lists[1], "device": "cpu"}
    batched = score_programs({**base, "terms": terms})["results"]
    single = [run_candidate({**base, "term": t}) for t in terms]
    assert [r["val"]["rmse"] for r in batched] == pytest.approx([r["val"]["rmse"] for r in single])
    assert not any(r["trained"] for r in batched)


def test_min_steps_gives_tiny_training_sets_enough_steps(lists, tmp_path):
    term = ["compose", ["map", hole_term({"x": IMG}, Count("b 1"))], ["fold", ["lib", "add"]]]
    job = {"term": term, "train": lists[0], "val": lists[1], "seed": 0}
    few = run_candidate({**job, "fit": {"epochs": 1, "batch_size": 32}})
    more = run_candidate({**job, "fit": {"epochs": 1, "batch_size": 32, "min_steps": 6}})
    assert few["steps"] == 1 and more["steps"] >= 6 and more["epochs"] == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_candidates_train_and_score_on_cuda(lists):
    term = ["compose", ["map", hole_term({"x": IMG}, Count("b 1"))], ["fold", ["lib", "add"]]]
    job = {"term": term, "train": lists[0], "val": lists[1], "seed": 0}
    res = run_candidate({**job, "fit": {"epochs": 2, "batch_size": 8}, "device": "cuda"})
    assert res["trained"] and res["val"]["rmse"] == res["val"]["rmse"]


def test_score_runs_where_the_program_is(lists):
    from brickwork.training import Samples

    count = compose(map_l(leaf(make_hole(IMG, Count("b 1")))), fold_l(leaf(LibraryOp("add"))))
    got = score(count, Samples.load(lists[1]), device="cpu")
    assert set(got) >= {"score", "rmse", "mae", "mae_per_element"}
