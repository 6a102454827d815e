"""Hand-coded operators match their specs; learned and hand-coded operators are
interchangeable; the sorting agents (flat, recursive) run batched."""

from __future__ import annotations

import tempfile

import pytest
import torch

from brickwork.agent import Interface
from brickwork.errors import AgentError
from brickwork.modules import build_kind, load_module, registered_kinds, save_module
from brickwork.studies.sorting import (
    FIELDS,
    HandPairSwap,
    HandShift,
    HandShiftHead,
    HandSwap,
    SortingEnvironment,
    TeacherPolicy,
    TrainConfig,
    build_agent,
    evaluate_agent,
    handcoded_modules,
    new_modules,
    train_unit,
)
from brickwork.studies.sorting.data import random_lists
from brickwork.studies.sorting.evaluation import evaluate_length, teacher_steps_batch
from brickwork.studies.sorting.handcoded import HandDigestor
from brickwork.studies.sorting.training import modules_from_bytes
from brickwork.types import known_types

GEN = torch.Generator().manual_seed(0)


def _onehot(digits, k=11):
    return torch.nn.functional.one_hot(torch.tensor(digits), k).float()


def test_hand_shift_moves_a_pointer_one_position_right():
    p = torch.eye(5)
    assert torch.equal(HandShift()(p)[:4], torch.eye(5)[1:])
    assert HandShift()(p)[4].sum() == 0  # falls off the end


def test_hand_swap_exchanges_the_values_under_a_and_b():
    values = _onehot([[3, 9, 5, 4]])
    a, b = torch.eye(4)[[1]], torch.eye(4)[[3]]
    assert HandSwap()(a, b, values).argmax(-1).tolist() == [[3, 4, 5, 9]]


def test_addressed_hand_operators():
    assert HandShiftHead()(_onehot([1, 2])).tolist() == [[0.0, 0.0, 1.0]] * 2
    new_a, new_b = HandPairSwap()(_onehot([7]), _onehot([2]))
    assert new_a.argmax().item() == 2 and new_b.argmax().item() == 7


def test_teacher_policy_is_the_teacher():
    p = TeacherPolicy()
    e = HandDigestor()(
        torch.tensor([0.0, 0.0, 1.0, 1.0]),
        torch.tensor([0.0, 0.0, 1.0, 1.0]),
        _onehot([5, 1, 1, 1]),
        _onehot([2, 3, 3, 3]),
    )
    prev = torch.eye(6)[[5, 5, 5, 5]]
    prev[3] = torch.eye(6)[0]  # after mova: retb
    names = ("mova", "movb", "retb", "swap", "EOP")
    assert [names[i] for i in p(e, prev).argmax(-1).tolist()] == ["swap", "movb", "EOP", "retb"]


@pytest.mark.parametrize("variant", ["modular_addressed", "modular_addressed_recursive"])
def test_hand_coded_agents_sort_like_the_teacher(variant):
    agent = build_agent(variant, handcoded_modules("addressed"))
    for n in (2, 5, 23):
        lists = random_lists(64, n, GEN)
        env = SortingEnvironment(lists)
        ep = agent.run(Interface(env, FIELDS), step_limit=teacher_steps_batch(lists))
        assert ep.all_terminated
        assert torch.equal(env.lists(), lists.sort(-1).values)
        assert torch.equal(ep.steps, teacher_steps_batch(lists))  # exactly the teacher's steps


def test_swapping_a_learned_operator_for_a_hand_coded_one_keeps_the_agent_runnable():
    learned = {}
    for unit in ("thesis.mova", "thesis.movb", "thesis.retb", "thesis.swap", "thesis.controller"):
        learned.update(new_modules(unit, hidden=8))
    for variant in ("modular_typed", "hybrid_swap", "hybrid_mova"):
        ep = build_agent(variant, learned).run(
            Interface(SortingEnvironment(random_lists(4, 5, GEN)), FIELDS), step_limit=30
        )
        assert ep.steps.max() <= 30 and ep.representation.check() == {}
    # addressed: a trained PairSwap and the hand-coded one are interchangeable
    cfg = TrainConfig(train_lists=1500, val_lists=200, max_seconds=60)
    result = train_unit("addr.swap", 0, cfg)
    assert result["met_criteria"], result["stop_reason"]
    trained = modules_from_bytes("addr.swap", result["states"], 100)
    mixed = handcoded_modules("addressed")
    mixed["swap"] = trained["swap"]
    lists = random_lists(100, 9, GEN)
    for modules in (mixed, handcoded_modules("addressed")):
        res = evaluate_length(build_agent("modular_addressed", modules), True, lists)
        assert res["accuracy"] == 1.0


def test_unknown_variant_and_hybrid_errors():
    with pytest.raises(AgentError, match="unknown variant 'fancy'"):
        build_agent("fancy", handcoded_modules("addressed"))
    with pytest.raises(AgentError, match="unknown hybrid 'hybrid_jump'"):
        build_agent("hybrid_jump", handcoded_modules("thesis"))


def test_whole_list_evaluation_skips_after_zero():
    untrained = {}
    for unit in ("thesis.mova", "thesis.movb", "thesis.retb", "thesis.swap", "thesis.controller"):
        untrained.update(new_modules(unit, hidden=4))
    agent = build_agent("modular_untyped", untrained)
    res = evaluate_agent(agent, False, [5, 6, 8], {5: 8, 6: 8, 8: 8}, seed=0, skip_after_zero=True)
    assert res[5]["accuracy"] < 1.0
    if res[5]["correct"] == 0:
        assert res[6] is None and res[8] is None


def test_sorting_kinds_keep_their_contract():
    kinds = {k: v for k, v in registered_kinds().items() if k.startswith("sorting.")}
    assert len(kinds) >= 13
    for name, info in kinds.items():
        module = build_kind(name, info.example_config)
        sizes = {"b": 3, "n": 5, **info.sizes}
        inputs = {}
        for port, t in module.inputs.items():
            shape = [sizes[a] if isinstance(a, str) else a for a in t.axes]
            x = torch.rand(shape)
            if t.is_distribution:
                x = torch.nn.functional.one_hot(x.argmax(-1), shape[-1]).float()
            inputs[port] = x
        out = module.call_ports(**inputs)
        for port, t in module.outputs.items():
            assert t.check(out[port]) == "", (name, port, t.check(out[port]))
        folder = tempfile.mkdtemp()
        save_module(module, folder)
        assert load_module(folder).fingerprint() == module.fingerprint()
    assert "Pointer" in known_types()
