"""Behaviour of the agent framework: representations, typed operators, interfaces,
controllers, batched episodes, step limits, hierarchy and recursion."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from brickwork.agent import (
    EOP,
    Agent,
    At,
    Call,
    Controller,
    Field,
    Interface,
    ModuleOperator,
    Recurse,
    Representation,
    Shifted,
    SubInterface,
    TensorEnvironment,
)
from brickwork.errors import AgentError
from brickwork.modules import Adapter, typed
from brickwork.types import Count, Features, Logits, OneHot, Pointer, Probs, SoftMask

X = Count("b 1")


class _Fn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def _op(name, fn, field="x"):
    return ModuleOperator(
        name, typed(_Fn(fn), {"x": X}, {"y": X}), inputs={"x": field}, outputs={"y": field}
    )


class _Concat(nn.Module):
    def forward(self, x):
        return x


class _Rules(nn.Module):
    """A hand-coded policy: a function of (embedding, previous choice index)."""

    def __init__(self, rule, k):
        super().__init__()
        self.rule, self.k = rule, k

    def forward(self, embedding, previous):
        choice = self.rule(embedding, previous.argmax(-1))
        return nn.functional.one_hot(choice, self.k).float()


def _controller(rule, choices, reads=None):
    k = len(choices)
    digestor = typed(_Concat(), {"x": X}, {"e": Features("b 1")})
    policy = typed(
        _Rules(rule, k),
        {"embedding": Features("b 1"), "previous": OneHot(["b", k + 1])},
        {"selection": Probs(["b", k])},
    )
    return Controller(digestor, policy, reads=reads or {"x": "x"}, choices=choices)


def _inc_agent(limit=3):
    # inc while x < limit, then EOP
    ctl = _controller(lambda e, prev: (e[:, 0] >= limit).long(), ["inc", "EOP"])
    return Agent("count", {"x": X}, [_op("inc", lambda x: x + 1), EOP()], ctl)


def _rep(*xs):
    return Representation({"x": X}, {"x": torch.tensor([[float(v)] for v in xs])})


def test_representation_checks_fields_and_batches():
    with pytest.raises(AgentError, match="missing \\['b'\\]"):
        Representation({"a": X, "b": X}, {"a": torch.zeros(2, 1)})
    with pytest.raises(AgentError, match="batch size 3"):
        Representation({"a": X, "b": X}, {"a": torch.zeros(2, 1), "b": torch.zeros(3, 1)})
    r = _rep(1, 2, 3)
    assert r.take(torch.tensor([2]))["x"].item() == 3.0
    r2 = r.put(torch.tensor([0]), _rep(9))
    assert r2["x"].flatten().tolist() == [9.0, 2.0, 3.0]
    assert r["x"].flatten().tolist() == [1.0, 2.0, 3.0]  # values, never modified in place
    with pytest.raises(AgentError, match="no field 'y'"):
        r["y"]


def test_addressed_read_write_and_shift():
    types = {"v": OneHot("b n k"), "p": Pointer("b n")}
    v = torch.nn.functional.one_hot(torch.tensor([[4, 7, 1]]), 10).float()
    rep = Representation(types, {"v": v, "p": torch.tensor([[0.0, 1.0, 0.0]])})
    assert At("v", "p").read(rep).argmax().item() == 7
    written = At("v", "p").write(rep, torch.nn.functional.one_hot(torch.tensor([2]), 10).float())
    assert written["v"].argmax(-1).tolist() == [[4, 2, 1]]
    moved = Shifted("p", "p").write(rep, torch.tensor([[1.0, 0.0, 0.0]]))  # move -1
    assert moved["p"].tolist() == [[1.0, 0.0, 0.0]]
    assert At("v", "p").read_type(types, "t") == OneHot("b k")


def test_operator_type_errors_name_operator_field_found_expected_fix():
    types = {"s": Logits("b n"), "m": SoftMask("b n")}
    op = ModuleOperator("squash", Adapter("sigmoid", "b n"), inputs={"x": "m"}, outputs={"y": "s"})
    with pytest.raises(AgentError) as err:
        op.check(types)
    msg = str(err.value)
    assert "operator 'squash'" in msg and "input port 'x'" in msg and "Field('m')" in msg
    assert "found SoftMask['b n']" in msg and "expected Logits['b n']" in msg and "Fix" in msg
    bad_write = ModuleOperator("w", Adapter("relu", "b n"), inputs={"x": "s"}, outputs={"y": "m"})
    with pytest.raises(AgentError, match="output port 'y' writes Field\\('m'\\): found Heatmap"):
        bad_write.check({"s": Features("b n"), "m": SoftMask("b n")})
    with pytest.raises(AgentError, match="no field 'nope'"):
        ModuleOperator(
            "u", Adapter("sigmoid", "b n"), inputs={"x": "nope"}, outputs={"y": "m"}
        ).check(types)
    with pytest.raises(AgentError, match="missing \\['x'\\]"):
        ModuleOperator("v", Adapter("sigmoid", "b n"), inputs={}, outputs={"y": "m"})


def test_agent_build_checks_operators_controller_and_eop():
    ctl = _controller(lambda e, prev: torch.zeros_like(prev), ["inc", "EOP"])
    with pytest.raises(AgentError, match="do not match the controller's choices"):
        Agent("a", {"x": X}, [EOP(), _op("inc", lambda x: x)], ctl)
    ctl2 = _controller(lambda e, prev: torch.zeros_like(prev), ["inc", "dec"])
    with pytest.raises(AgentError, match="no EOP operator"):
        Agent("a", {"x": X}, [_op("inc", lambda x: x), _op("dec", lambda x: x)], ctl2)
    lx = Logits("b 1")
    inc = ModuleOperator(
        "inc", typed(_Fn(lambda x: x), {"x": lx}, {"y": lx}), inputs={"x": "x"}, outputs={"y": "x"}
    )
    with pytest.raises(
        AgentError,
        match=r"controller digestor .* found Logits\['b 1'\], "
        r"expected Count\['b 1'\]",
    ):
        Agent("a", {"x": lx}, [inc, EOP()], ctl)


def test_batched_episode_counts_steps_and_syncs_environment():
    env = TensorEnvironment({"x": torch.tensor([[0.0], [2.0], [5.0]])})
    ui = Interface(env, {"x": X})
    episode = _inc_agent().run(ui)
    assert episode.all_terminated
    assert episode.steps.tolist() == [4, 2, 1]
    assert env.observe()["x"].flatten().tolist() == [3.0, 3.0, 5.0]
    # environment -> representation
    env.apply({"x": torch.tensor([[1.0], [1.0], [1.0]])})
    assert ui.refresh()["x"].flatten().tolist() == [1.0, 1.0, 1.0]


def test_typed_interface_projects_between_operators():
    types = {"p": Pointer("b n")}
    env = TensorEnvironment({"p": torch.tensor([[1.0, 0.0, 0.0]])})
    soft = typed(
        _Fn(lambda p: 0.6 * p.roll(1, -1) + 0.3 * p), {"x": SoftMask("b n")}, {"y": SoftMask("b n")}
    )
    op = ModuleOperator("move", soft, inputs={"x": "p"}, outputs={"y": "p"})
    digest = typed(_Fn(lambda p: p[:, -1:]), {"x": SoftMask("b n")}, {"e": Features("b 1")})
    policy = typed(
        _Rules(lambda e, prev: (e[:, 0] > 0.5).long(), 2),
        {"embedding": Features("b 1"), "previous": OneHot("b 3")},
        {"selection": Probs("b 2")},
    )
    agent = Agent(
        "walk",
        types,
        [op, EOP()],
        Controller(digest, policy, reads={"x": "p"}, choices=["move", "EOP"]),
    )
    typed_ep = agent.run(Interface(env, types, typed=True))
    assert typed_ep.all_terminated and typed_ep.representation["p"].tolist() == [[0.0, 0.0, 1.0]]
    untyped = agent.run(
        Representation(types, {"p": torch.tensor([[1.0, 0.0, 0.0]])}), typed=False, step_limit=10
    )
    assert not untyped.all_terminated  # the soft pointer decays below 0.5 and never arrives


def test_non_terminating_episode_stops_at_the_limit_with_flag_and_error():
    never = _controller(lambda e, prev: torch.zeros_like(prev), ["inc", "EOP"])
    agent = Agent("forever", {"x": X}, [_op("inc", lambda x: x + 1), EOP()], never, step_limit=7)
    ep = agent.run(_rep(0, 1))
    assert ep.hit_step_limit.tolist() == [True, True]
    assert ep.steps.tolist() == [7, 7]
    assert ep.representation["x"].flatten().tolist() == [7.0, 8.0]
    with pytest.raises(
        AgentError, match="2 of 2 episodes did not select EOP within the step limit 7"
    ):
        agent.run(_rep(0, 1), on_limit="raise")
    per_row = agent.run(_rep(0, 1), step_limit=torch.tensor([2, 3]))
    assert per_row.steps.tolist() == [2, 3]


def test_agent_used_as_an_operator_by_a_higher_agent():
    child = _inc_agent(limit=3)
    double = _op("double", lambda x: 2 * x)
    # parent: call the child, then double, then EOP
    rule = lambda e, prev: torch.where(prev == 3, 0, torch.where(prev == 0, 1, 2))  # noqa: E731
    parent = Agent(
        "parent", {"x": X}, [child, double, EOP()], _controller(rule, ["count", "double", "EOP"])
    )
    child.name = "count"
    ep = parent.run(_rep(0, 1, 4))
    assert ep.representation["x"].flatten().tolist() == [6.0, 6.0, 8.0]
    assert ep.steps.tolist() == [3 + 4, 3 + 3, 3 + 1]  # parent steps + the child's
    # through an explicit sub-interface: the child works on field 'y' of the parent
    sub = SubInterface({"x": X}, reads={"x": "y"}, writes={"x": "y"})
    caller = Agent(
        "caller",
        {"x": X, "y": X},
        [Call("count", child, sub), EOP()],
        _controller(lambda e, prev: (prev == 0).long(), ["count", "EOP"]),
    )
    out = caller.run(
        Representation(
            {"x": X, "y": X}, {"x": torch.zeros(2, 1), "y": torch.tensor([[1.0], [2.0]])}
        )
    )
    assert out.representation["y"].flatten().tolist() == [3.0, 3.0]
    assert out.representation["x"].flatten().tolist() == [0.0, 0.0]


def _triangular_agent(max_depth=256):
    # y += x, then recurse on x - 1 (through the sub-interface), then EOP; stop at x = 0
    types = {"x": X, "y": X}
    add = ModuleOperator(
        "add",
        typed(_Add(), {"x": X, "y": X}, {"out": X}),
        inputs={"x": "x", "y": "y"},
        outputs={"out": "y"},
    )
    dec = _op("dec", lambda x: x - 1)
    sub = SubInterface(types, reads={"x": "x", "y": "y"}, enter=[dec], writes={"y": "y"})
    rule = lambda e, prev: torch.where(prev == 0, 1, torch.where((prev == 3) & (e[:, 0] > 0), 0, 2))  # noqa: E731
    return Agent(
        "triangle",
        types,
        [add, Recurse("again", sub), EOP()],
        _controller(rule, ["add", "again", "EOP"]),
        max_depth=max_depth,
    )


class _Add(nn.Module):
    def forward(self, x, y):
        return x + y


def test_recursion_on_a_sub_problem_is_batched():
    agent = _triangular_agent()
    xs = [0, 1, 3, 5, 12]
    rep = Representation(
        agent.types, {"x": torch.tensor([[float(v)] for v in xs]), "y": torch.zeros(len(xs), 1)}
    )
    ep = agent.run(rep)
    assert ep.all_terminated
    assert ep.representation["y"].flatten().tolist() == [v * (v + 1) / 2 for v in xs]
    assert ep.representation["x"].flatten().tolist() == [float(v) for v in xs]  # caller's x kept
    assert ep.steps.tolist() == [1 + 3 * v for v in xs]
    with pytest.raises(AgentError, match="beyond max_depth 3"):
        _triangular_agent(max_depth=3).run(rep)


def test_recurse_operator_cannot_serve_two_agents():
    agent = _triangular_agent()
    rec = agent.operators[1]
    with pytest.raises(AgentError, match="already bound"):
        Agent("other", agent.types, [agent.operators[0], rec, EOP()], agent.controller)


def test_field_selection_repr():
    assert repr(Field("a")) == "Field('a')"
