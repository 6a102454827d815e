"""The transducer program generator: reading order, the alignment lattice (checked
against brute-force enumeration of every alignment), beam decoding, word-covering
selection of the questions to label."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from brickwork.errors import DataError
from brickwork.studies.clevr.data import generate_questions, generate_scene
from brickwork.studies.clevr.nmn import nmn_kinds, program_layout
from brickwork.studies.clevr.parse.grammar import (
    ALLOWED,
    TOKEN_INDEX,
    from_prefix,
    port_sequence,
    prefix_tokens,
)
from brickwork.studies.clevr.parse.model import ProgramGenerator
from brickwork.studies.clevr.parse.train import labelled_indices, vocabulary
from brickwork.studies.clevr.parse.transducer import (
    _done_tail,
    _joint,
    _lexicon,
    _state,
    canonical_order,
    reading_order,
)


def _questions(n: int = 4, per: int = 8, hi: int = 10) -> list:
    qs = []
    for i in range(n):
        qs += generate_questions(
            generate_scene(i, seed=3), per, min_depth=1, max_depth=hi, seed=3, phrasing="v2"
        )
    return qs


def test_reading_order_is_the_words_order_and_canonical_order_inverts_it() -> None:
    for q in _questions():
        toks = prefix_tokens(q.program)
        read = reading_order(toks)
        assert sorted(read) == sorted(toks) and canonical_order(read) == toks
        assert from_prefix(canonical_order(read)) == q.program
    # "large red cube": the filters in the order of the words
    p = ["count", "filter_shape[cube]", "filter_color[red]", "filter_size[large]", "scene"]
    assert reading_order(p)[1:4] == [
        "filter_size[large]",
        "filter_color[red]",
        "filter_shape[cube]",
    ]


def _brute_force(gen: ProgramGenerator, text: str, target: list[str]) -> float:
    """log P(target) by enumerating every monotone alignment of the body tokens."""
    return _brute_force_paths(gen, text, target)[0]


def _brute_force_paths(
    gen: ProgramGenerator, text: str, target: list[str]
) -> tuple[float, list[tuple[int, float]]]:
    """log P(target) and every alignment as (word of the last emission, log-prob)."""
    ids, _ = gen.encode_text(text)
    enc = gen.encode(ids[None])
    h = enc["h"][0]
    n = h.shape[0]
    word, lexw = gen.heads.word(h), _lexicon(gen, enc)[0]
    tgt = [TOKEN_INDEX[t] for t in target]
    ports = port_sequence(target)
    from brickwork.studies.clevr.parse.transducer import _root_logits

    root = torch.log_softmax(_root_logits(gen, enc)[0].masked_fill(~ALLOWED[0], -1e4), -1)
    total = float(root[tgt[0]])
    m = len(tgt) - 1
    # per body token j and freshness (1: its previous token was emitted at this word):
    # (log emit [n], log advance [n], token log-prob [n])
    rows: list[dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = []
    for j in range(m):
        kind, _, arg = ports[j + 1]
        rows.append({})
        st = gen.heads.state(
            _state(gen, torch.tensor([tgt[j]]), torch.tensor([kind]), torch.tensor([arg]))
        )
        for fresh in (0, 1):
            emit, logits = _joint(gen, word, lexw, st, torch.tensor([fresh]))
            lp = torch.log_softmax(logits.masked_fill(~ALLOWED[kind], -1e4), -1)[:, tgt[j + 1]]
            e = torch.nn.functional.logsigmoid(emit)
            e[n - 1] = 0.0
            rows[j][fresh] = (e, torch.nn.functional.logsigmoid(-emit), lp)
    paths = []
    for align in itertools.combinations_with_replacement(range(n), m):
        s, pos = 0.0, 0
        for j, a in enumerate(align):
            if a == pos:  # no advance since the previous token: a fresh decision
                e, _, lp = rows[j][1]
            else:  # the first advance is the fresh state's, the rest and the emission stale
                s += float(rows[j][1][1][pos])
                e, adv, lp = rows[j][0]
                s += float(adv[pos + 1 : a].sum())
            s += float(e[a] + lp[a])
            pos = a
        s += _done_tail(gen, word, lexw, tgt[-1], pos, n - 1)
        paths.append((pos, s))
    return total + math.log(sum(math.exp(p) for _, p in paths)), paths


def _teacher_args(
    gen: ProgramGenerator, text: str, target: list[str]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``teacher_forced``'s arguments for one question: word ids, target ids, kind,
    parent and argument of each target's port."""
    ids, _ = gen.encode_text(text)
    t = torch.tensor([[TOKEN_INDEX[x] for x in target]])
    ports = torch.tensor(port_sequence(target)).T[None]
    return ids[None], t, ports[:, 0], ports[:, 1], ports[:, 2]


@pytest.mark.parametrize(("lookahead", "fresh"), [(0, False), (3, False), (0, True)])
def test_lattice_log_prob_equals_the_sum_over_every_alignment(lookahead: int, fresh: bool) -> None:
    torch.manual_seed(0)
    text = "how many red cubes are there"
    gen = ProgramGenerator(
        vocabulary([text]),
        dim=8,
        arch="transducer",
        dropout=0.0,
        lookahead=lookahead,
        fresh_state=fresh,
    )
    if fresh:  # the fresh and stale decisions must differ for the test to tell them apart
        assert gen.heads.fresh is not None
        with torch.no_grad():
            gen.heads.fresh.weight.normal_(0.0, 1.0)
    gen.eval()
    target = reading_order(["count", "filter_shape[cube]", "filter_color[red]", "scene"])
    with torch.no_grad():
        lattice = float(gen.teacher_forced(*_teacher_args(gen, text, target)))
        assert lattice == pytest.approx(_brute_force(gen, text, target), rel=2e-5)


def test_lookahead_adds_the_best_vote_of_the_next_words_to_same_and_query_tokens() -> None:
    torch.manual_seed(0)
    text = "how many things have the same size as the ball"
    gen = ProgramGenerator(vocabulary([text]), dim=8, arch="transducer", lookahead=3)
    gen.eval()
    ids, _ = gen.encode_text(text)
    assert gen.heads.ahead is not None
    with torch.no_grad():
        enc = gen.encode(ids[None])
        got = _lexicon(gen, enc)[0]
        votes = gen.heads.ahead(enc["x"][0])
        lex = gen.heads.lex(enc["x"][0])
    n = votes.shape[0]
    same = TOKEN_INDEX["same_size"]
    for i in range(n):
        ahead = votes[i + 1 : i + 4, same].max() if i + 1 < n else torch.tensor(0.0)
        assert float(got[i, same]) == pytest.approx(float(lex[i, same] + ahead), abs=1e-5)
    # a filter token gets no lookahead: its word names it where it stands
    red = TOKEN_INDEX["filter_color[red]"]
    assert torch.allclose(got[:, red], lex[:, red])


def test_done_contrast_penalises_the_done_state_before_the_program_is_complete() -> None:
    """The objective adds, for every word k before the last, P(the program is not yet
    complete at k) x log P(the done state refuses to skip k); checked against the
    brute-force enumeration of the alignments."""
    torch.manual_seed(1)
    text = "is there a red cube that is left of the ball"
    gen = ProgramGenerator(vocabulary([text]), dim=8, arch="transducer", dropout=0.0)
    gen.eval()
    target = reading_order(
        ["exist", "filter_color[red]", "filter_shape[cube]", "relate[left]", "unique"]
        + ["filter_shape[sphere]", "scene"]
    )
    args = _teacher_args(gen, text, target)
    ids, t = args[0], args[1]
    with torch.no_grad():
        plain = float(gen.teacher_forced(*args))
        assert float(gen.teacher_forced(*args, objective=True)) == plain  # weight 0
        gen.done_contrast = 2.0
        objective = float(gen.teacher_forced(*args, objective=True))
        _, paths = _brute_force_paths(gen, text, target)
        z = math.log(sum(math.exp(p) for _, p in paths))
        enc = gen.encode(ids)
        word, lexw = gen.heads.word(enc["h"][0]), gen.heads.lex(enc["x"][0])
        done = gen.heads.state(gen.prev_embed(t[:, -1]) + gen.heads.done)
        emit_d, _ = _joint(gen, word, lexw, done)
        n = word.shape[0]
        expected = 0.0
        for k in range(n - 1):
            open_at_k = sum(math.exp(p - z) for pos, p in paths if pos > k)
            expected += open_at_k * float(torch.nn.functional.logsigmoid(emit_d[k]))
    assert expected < 0.0
    assert objective == pytest.approx(plain + 2.0 * expected, rel=1e-5)
    # and its gradient trains the done state to refuse: one step raises its emit score
    # at the words before the relation (the program is incomplete there)
    gen.train()
    gen.drop.p = 0.0
    opt = torch.optim.SGD([gen.heads.done], lr=0.5)
    before = float(emit_d[:6].mean())
    (-gen.teacher_forced(*args, objective=True)).sum().backward()
    opt.step()
    with torch.no_grad():
        done = gen.heads.state(gen.prev_embed(t[:, -1]) + gen.heads.done)
        after = float(_joint(gen, word, lexw, done)[0][:6].mean())
    assert after > before


def test_transducer_decodes_are_valid_layouts_greedy_beam_and_sampled() -> None:
    torch.manual_seed(0)
    qs = _questions(2, 6, hi=8)
    gen = ProgramGenerator(vocabulary([q.question for q in qs]), dim=16, arch="transducer")
    gen.eval()
    kinds = nmn_kinds("typed", channels=4)
    toks = gen.encode_texts([q.question for q in qs])
    for beam, sample in ((1, False), (4, False), (1, True)):
        dec = gen.decode(toks, sample=sample, beam=beam, generator=torch.Generator().manual_seed(1))
        assert len(dec.tokens) == len(qs) and torch.isfinite(dec.log_prob).all()
        for row in dec.tokens:
            assert program_layout(from_prefix(row), kinds).nodes


def test_covering_selection_labels_the_rare_words() -> None:
    texts = ["how many red things"] * 40 + ["what is behind the cube"] + ["is it red"] * 9
    pick = labelled_indices(len(texts), 3, 0, select="cover", texts=texts)
    assert 40 in pick and pick == sorted(set(pick)) and len(pick) == 3
    rand = labelled_indices(len(texts), 3, 0)
    assert rand == labelled_indices(len(texts), 3, 0)  # seeded
    mixed = labelled_indices(len(texts), 4, 1, select="mixed", texts=texts)
    assert len(set(mixed)) == 4 and 40 in mixed
    with pytest.raises(DataError, match="needs the 50 questions' texts"):
        labelled_indices(len(texts), 3, 0, select="cover")
    with pytest.raises(DataError, match="expected one of"):
        labelled_indices(len(texts), 3, 0, select="best")


def test_beam_respects_the_node_budget_and_says_when_it_bent_a_choice() -> None:
    torch.manual_seed(0)
    gen = ProgramGenerator(["are", "there", "any", "red", "cubes"], dim=8, arch="transducer")
    gen.eval()
    ids, _ = gen.encode_text("are there any red cubes")
    free = gen.decode(ids[None])
    cut = gen.decode(ids[None], max_nodes=[2])
    assert len(cut.tokens[0]) == 2 and from_prefix(cut.tokens[0]).depth == 1
    # the untrained model wants more than two nodes here: the cut decode says so
    assert len(free.tokens[0]) > 2 and cut.forced[0]


def test_wide_values_score_a_forced_query_against_every_attribute() -> None:
    """Under ``equal_size`` the constraint leaves one query (``query_size``), free under
    the type-allowed softmax; with ``wide_values`` it is scored against every value
    kind's query, so a program pays for a query its words do not say."""
    torch.manual_seed(0)
    text = "is the red cube the same size as the ball"
    gen = ProgramGenerator(vocabulary([text]), dim=8, arch="transducer", dropout=0.0)
    gen.eval()
    prog = ["equal_size", "query_size", "unique", "filter_color[red]", "filter_shape[cube]"]
    prog += ["scene", "query_size", "unique", "filter_shape[sphere]", "scene"]
    target = reading_order(prog)
    args = _teacher_args(gen, text, target)
    ids = args[0]
    with torch.no_grad():
        narrow = float(gen.teacher_forced(*args))
        gen.wide_values = True
        wide = float(gen.teacher_forced(*args))
        assert wide < narrow  # the two forced queries now cost something
        dec = gen.decode(ids, beam=4)
    kinds = nmn_kinds("typed", channels=4)
    assert program_layout(from_prefix(dec.tokens[0]), kinds).nodes  # still valid


def test_attr_pool_max_reads_the_strongest_vote_not_how_many_words_vote() -> None:
    from brickwork.studies.clevr.parse.transducer import _root_logits

    torch.manual_seed(0)
    one = "is the red cube the same size as the ball"
    many = "is the red cube that is the same color as the same color ball the same size as the ball"
    gen = ProgramGenerator(
        vocabulary([one, many]), dim=8, arch="transducer", root_lexical=True, attr_pool="max"
    )
    gen.eval()
    with torch.no_grad():
        for text in (one, many):
            ids, _ = gen.encode_text(text)
            enc = gen.encode(ids[None])
            got = _root_logits(gen, enc)
            gen.attr_pool = "lse"
            lse = _root_logits(gen, enc)
            gen.attr_pool = "max"
            # the same operation part; the attribute part pooled by max is never above lse
            assert (got <= lse + 1e-5).all() and not torch.allclose(got, lse)
    with pytest.raises(DataError, match="attr_pool"):
        ProgramGenerator(["a"], arch="transducer", attr_pool="mean")


def test_a_uniform_attr_gate_changes_nothing_a_word_dependent_one_does() -> None:
    """The gate shifts every attribute's vote of a word alike, so only its differences
    across words matter: one gate for every word leaves the family's distribution as it
    was without a gate; a gate read from the words changes it."""
    from brickwork.studies.clevr.parse.transducer import _root_logits

    torch.manual_seed(0)
    text = "is the red cube that has the same size as the ball the same color as the cube"
    words = vocabulary([text])
    plain = ProgramGenerator(words, dim=8, arch="transducer", root_lexical=True).eval()
    gated = ProgramGenerator(words, dim=8, arch="transducer", root_lexical=True, attr_gate=2)
    gated.load_state_dict(plain.state_dict(), strict=False)
    gated.eval()
    conv = gated.heads.attr_gate
    assert conv is not None and conv.kernel_size == (5,)
    ids, _ = plain.encode_text(text)

    def family(gen: ProgramGenerator) -> torch.Tensor:
        with torch.no_grad():
            return torch.log_softmax(_root_logits(gen, gen.encode(ids[None])), -1)

    assert conv.bias is not None
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.fill_(-3.0)
    assert torch.allclose(family(gated), family(plain), atol=1e-5)
    with torch.no_grad():
        conv.weight.normal_(0.0, 1.0)
    assert not torch.allclose(family(gated), family(plain), atol=1e-3)
    with pytest.raises(DataError, match="attr_gate"):
        ProgramGenerator(["a"], arch="transducer", attr_gate=-1)
