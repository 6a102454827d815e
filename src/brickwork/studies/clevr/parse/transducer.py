"""The monotone transducer architecture of the program generator (``arch="transducer"``).

CLEVR questions are written in the order of their programs: read in *reading order*
(prefix order with each chain of filters in the order its words come: ``filter_size``,
``filter_color``, ``filter_material``, ``filter_shape``), every program token but the
root lines up with the words, left to right::

    What color is the tiny item that is to the right of the big ball behind the cube?
         (root)    unique filter_size[small]  relate[right] unique filter_size[large]
                   filter_shape[sphere] relate[behind] unique filter_shape[cube] scene

The transducer makes that the model. A pointer walks the words once, left to right; at
each word it either **emits** the next program token (under the type constraint of
:mod:`~brickwork.studies.clevr.parse.grammar`) or **advances** to the next word. Both
decisions read only the local features of the word under the pointer (its window of
words) and the token side's local state: the previous token, the kind of the open port
and the argument position — no recurrent state, no position in the sentence, no depth.
A question nested twelve levels deep is therefore the same sequence of local decisions
as one nested three levels deep, which is why it parses questions deeper than any it
was trained on. The root token (the question family, which some templates put last:
"The … is what color?") comes from a classifier over the first and last words, the
maximum of the local features and every word's vote, for the family and for its
operation and attribute apart.

Training marginalises over the alignment of tokens to words (which word emits which
token is never labelled) with the forward algorithm of the emit/advance lattice, in
closed form per token row (:func:`transducer_log_prob`); once the program is complete
the pointer still walks to the last word, so skipped words are paid for. In training
the previous token is hidden at random (``prev_dropout``) so the words carry the
decisions. Decoding is a beam search over the lattice (:func:`transducer_beam`;
greedy or sampled: :func:`transducer_decode`). Filters commute, so the generator emits
each chain in reading order and writes it back in the dataset's canonical order
(:func:`canonical_order`).

Example:
    >>> reading_order(["count", "filter_shape[cube]", "filter_color[red]", "scene"])
    ['count', 'filter_color[red]', 'filter_shape[cube]', 'scene']
    >>> canonical_order(['count', 'filter_color[red]', 'filter_shape[cube]', 'scene'])
    ['count', 'filter_shape[cube]', 'filter_color[red]', 'scene']
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from brickwork.studies.clevr.data import ATTRIBUTES
from brickwork.studies.clevr.parse.grammar import (
    ALLOWED,
    ANSWER_KIND,
    CUE_TOKENS,
    KIND_INDEX,
    TOKENS,
    PortStack,
    allowed_batch,
    constrained_choice,
)

if TYPE_CHECKING:
    from brickwork.studies.clevr.parse.model import Decoded, ProgramGenerator

_ROOT = KIND_INDEX[ANSWER_KIND]
#: words at the start and at the end of the sentence the root classifier reads
ROOT_EDGE = 4
#: the root tokens' operations and attributes (a root token is one of each)
OPS = ("exist", "count", "query", "equal", "less", "greater")
ROOT_ATTRS = ("none", "color", "shape", "size", "material", "number")


def _op_attr(token: str) -> tuple[int, int]:
    if token in ("exist", "count"):
        return OPS.index(token), 0
    if token in ("less_than", "greater_than"):
        return OPS.index(token.partition("_")[0]), ROOT_ATTRS.index("number")
    op, _, attr = token.partition("_")
    attr = "number" if attr == "integer" else attr
    if op in OPS and attr in ROOT_ATTRS:
        return OPS.index(op), ROOT_ATTRS.index(attr)
    return 0, 0  # not a root token: masked out by the type constraint


_OP_OF = torch.tensor([_op_attr(t)[0] for t in TOKENS])
_ATTR_OF = torch.tensor([_op_attr(t)[1] for t in TOKENS])
_NEG = -1e4
_ATTR_RANK = {a: r for r, a in enumerate(ATTRIBUTES)}


def _filter_rank(token: str) -> int | None:
    if not token.startswith("filter_"):
        return None
    return _ATTR_RANK.get(token[7:].partition("[")[0])


def _reorder(tokens: Sequence[str], descending: bool) -> list[str]:
    out: list[str] = []
    run: list[str] = []
    for t in [*tokens, ""]:
        if t and _filter_rank(t) is not None:
            run.append(t)
            continue
        run.sort(key=lambda f: _filter_rank(f) or 0, reverse=descending)
        out += run
        run = []
        if t:
            out.append(t)
    return out


def reading_order(tokens: Sequence[str]) -> list[str]:
    """Prefix tokens with every chain of filters in the order the sentence names them
    (size, color, material, shape) — the order the transducer emits."""
    return _reorder(tokens, descending=False)


def canonical_order(tokens: Sequence[str]) -> list[str]:
    """Prefix tokens with every chain of filters in the dataset's canonical order (the
    filter applied first innermost): the inverse of :func:`reading_order`. Filters
    commute, so the program computes the same thing."""
    return _reorder(tokens, descending=True)


class TransducerHeads(nn.Module):
    """The transducer's parameters: the root classifier and the emit/advance and token
    heads over (word features, token-side state)."""

    def __init__(
        self,
        dim: int,
        n_tokens: int,
        root_lexical: bool = False,
        lookahead: bool = False,
        attr_gate: int = 0,
        fresh_state: bool = False,
    ) -> None:
        super().__init__()
        d = dim
        self.word = nn.Linear(d, 2 * d)
        self.state = nn.Linear(d, 2 * d)
        self.emit = nn.Linear(2 * d, 1)
        self.token = nn.Linear(2 * d, n_tokens)
        self.lex = nn.Linear(d, n_tokens)
        # the next words' own votes for the tokens whose attribute comes after them
        self.ahead = nn.Linear(d, n_tokens) if lookahead else None
        # the family is its operation and its attribute (query_color = query + color,
        # equal_integer = equal + number), read apart: the operation from the sentence's
        # edges and every word's vote, the attribute from the words' votes alone
        self.op_root = nn.Linear((2 * ROOT_EDGE + 1) * d, len(OPS))
        self.op_vote = nn.Linear(d, len(OPS))
        self.attr_vote = nn.Linear(d, len(ROOT_ATTRS))
        # and every word's own embedding votes too, out of context: "equal" says
        # equal wherever it stands ("an equal number of" in training, "… equal to the
        # number of …" in a frame never seen)
        self.op_lex = nn.Linear(d, len(OPS)) if root_lexical else None
        self.attr_lex = nn.Linear(d, len(ROOT_ATTRS)) if root_lexical else None
        # which words may name the family's attribute at all, read from a window of
        # ±attr_gate encoder features: "size" of "… the cube the same size as …" (the
        # frame) and of "… the cube that is the same size as …" (a body clause) look
        # alike within the encoder's ±2 words
        self.attr_gate = nn.Conv1d(d, 1, 2 * attr_gate + 1) if attr_gate > 0 else None
        # whether the previous token was emitted at the word under the pointer or the
        # pointer has moved since: "both" right after the intersect it emitted (go on
        # to the branch's words) and the "both" of a nested "… both a thing that is both
        # …" (emit another intersect) are otherwise the same decision
        # (read by the emit/advance decision only; the token head is shared)
        self.fresh = nn.Embedding(2, 2 * d) if fresh_state else None
        # the token side once the program is complete: the pointer still has to walk
        # to the end of the sentence, and words it skips then ("that is behind …")
        # cost their advance probability, so a decode cannot stop early for free
        self.done = nn.Parameter(torch.randn(d) * 0.1)


#: the value kinds (an ``equal_color`` port takes a color): their one allowed token
#: (``query_color``) is scored, with ``wide_values``, against the queries of every value
#: kind, so that the words still say which attribute the program reads
VALUE_KINDS = ("color", "material", "shape", "size")
_VALUE_ROWS = [KIND_INDEX[k] for k in VALUE_KINDS]
SCORED = ALLOWED.clone()
SCORED[_VALUE_ROWS] = ALLOWED[_VALUE_ROWS].any(0)

#: tokens whose attribute the words after their emission name ("… that has the same
#: *size* as …", "… the same *color* as …"): the lookahead votes only for these
AHEAD_TOKENS = torch.tensor([t.startswith(("same_", "query_")) for t in TOKENS])


def _lexicon(gen: ProgramGenerator, enc: dict[str, torch.Tensor]) -> torch.Tensor:
    """Every word's own vote for tokens ``[b, n, tokens]`` (the lexicon) plus, with
    ``gen.lookahead`` = K, the strongest context-free vote of the next K words for the
    tokens of :data:`AHEAD_TOKENS`.

    Why: the alignment is free to emit ``same_size`` at "that" of "that has the same
    size as", where the ±2 words the token head reads do not reach "size"; in the
    bench's N = 270 generator half the wrong ``same_*`` tokens of deep questions were
    emitted at such a word ("that", "item", "of"). A max over the next K words does not
    grow with the question, and reads the words' own embeddings, not their context."""
    x, mask = enc["x"], enc["mask"]
    lexw = gen.heads.lex(x)
    ahead = gen.heads.ahead
    k = gen.lookahead
    if ahead is None or k <= 0:
        return lexw
    votes = ahead(x).masked_fill(~mask.unsqueeze(-1), _NEG)  # [b, n, T]
    # word i reads words i+1 .. i+k: pad k on the right, drop word 0's own
    shifted = torch.nn.functional.pad(votes.transpose(1, 2)[..., 1:], (0, k), value=_NEG)
    best = torch.nn.functional.max_pool1d(shifted, k, stride=1)[..., : votes.shape[1]]
    best = best.transpose(1, 2)
    best = torch.where(best > _NEG / 2, best, torch.zeros_like(best))  # no word ahead
    best = best * AHEAD_TOKENS.to(x.device).float()
    return lexw + best


def _lse_pool(v: torch.Tensor) -> torch.Tensor:
    return v.logsumexp(1)


def _max_pool(v: torch.Tensor) -> torch.Tensor:
    return v.max(1).values


def _attr_gate(gen: ProgramGenerator, enc: dict[str, torch.Tensor]) -> torch.Tensor:
    """Log-gates ``[b, n, 1]`` on every word's vote for the family's attribute: how
    likely the word belongs to the sentence's frame rather than to a clause of its body,
    read from ±``gen.attr_gate`` words of encoder features (zeros without a gate).

    Why: the frame's "… the same *color* as …" and a body's "… that has the same *size*
    as …" differ only three words before the attribute, beyond the encoder's ±2 words,
    so each body clause that names an attribute voted like the frame; in the bench's
    N = 270 generator the family's attribute was the first wrong token of 55 of the 125
    wrong programs at depth 11-20 (``equal_color`` read as ``equal_size`` where the body
    says "the same size as"). A gate shifts every attribute's vote of a word alike, so
    it decides which words are heard, never which attribute they say; and only the gates'
    differences across words matter, so an unfamiliar frame whose words all gate low is
    read as before."""
    conv = gen.heads.attr_gate
    h = enc["h"]
    if conv is None:
        return h.new_zeros(*h.shape[:2], 1)
    k = (conv.kernel_size[0] - 1) // 2
    g = conv(torch.nn.functional.pad(h.transpose(1, 2), (k, k))).transpose(1, 2)
    return torch.nn.functional.logsigmoid(g)


def _root_logits(gen: ProgramGenerator, enc: dict[str, torch.Tensor]) -> torch.Tensor:
    """Logits ``[b, tokens]`` of the root (the family), read as its operation times its
    attribute (:data:`OPS` x :data:`ROOT_ATTRS`): the operation from the features of
    the first and last :data:`ROOT_EDGE` words, their maximum over the sentence and every
    word's own vote (pooled by log-sum-exp), the attribute from the words' votes alone.
    A frame never seen whole ("Is the size of … the same as the size of …?") is then
    read from its parts: "is … the same as" of ``equal_integer``, "size" of
    ``query_size``. (Adding a reading of the whole family, as one classifier, made
    held-out frames worse: it recognises the seen frame "Is the number of … the same as
    …" and outvotes the parts.)"""
    h, mask = enc["h"], enc["mask"]
    b, n, d = h.shape
    last = mask.sum(1) - 1
    idx = torch.arange(ROOT_EDGE, device=h.device)
    first = idx.clamp(max=n - 1).expand(b, -1)
    end = (last[:, None] - idx.flip(0)[None, :]).clamp(min=0)
    pick = torch.cat([first, end], 1)
    edges = h.gather(1, pick[..., None].expand(-1, -1, d)).reshape(b, -1)
    pooled = h.masked_fill(~mask.unsqueeze(-1), _NEG).max(1).values
    feats = torch.cat([edges, pooled], -1)
    m = ~mask.unsqueeze(-1)
    heads = gen.heads
    op = heads.op_root(feats) + heads.op_vote(h).masked_fill(m, _NEG).logsumexp(1)
    # the attribute's votes pooled by log-sum-exp (a few words' worth of "size" outvote
    # one "color"), or with ``attr_pool="max"`` by their maximum, which does not grow
    # with the number of clauses that name an attribute
    pool = _max_pool if gen.attr_pool == "max" else _lse_pool
    gate = _attr_gate(gen, enc)
    attr = pool((heads.attr_vote(h) + gate).masked_fill(m, _NEG))
    if heads.op_lex is not None and heads.attr_lex is not None:
        x = enc["x"]
        op = op + heads.op_lex(x).masked_fill(m, _NEG).logsumexp(1)
        attr = attr + pool((heads.attr_lex(x) + gate).masked_fill(m, _NEG))
    return op[:, _OP_OF.to(h.device)] + attr[:, _ATTR_OF.to(h.device)]


def _state(
    gen: ProgramGenerator, prev: torch.Tensor, kind: torch.Tensor, arg: torch.Tensor
) -> torch.Tensor:
    """The token side of a decision: previous token, open port's kind and argument.

    In training the previous token is hidden (replaced by padding) with probability
    ``gen.prev_dropout``, so that the words, not the token history, carry the
    decision: at depth ≤ 5 a relation never follows a filtered object of a query, and
    a model that leans on "a filter came last" emits ``scene`` at "behind"."""
    if gen.training and gen.prev_dropout > 0:
        hide = torch.rand(prev.shape, device=prev.device) < gen.prev_dropout
        prev = prev.masked_fill(hide, 0)
    return gen.prev_embed(prev) + gen.kind_embed(kind) + gen.arg_embed(arg)


def _joint(
    gen: ProgramGenerator,
    word: torch.Tensor,
    lexw: torch.Tensor,
    state: torch.Tensor,
    fresh: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Emit logit ``[...]`` and token logits ``[..., tokens]`` of word features ``word``
    (``[..., d]`` after ``heads.word``) under token-side states (after ``heads.state``);
    with ``fresh`` (1 where the previous token was emitted at this word, 0 where the
    pointer has moved since; with ``gen.heads.fresh``) the emit logit also reads it."""
    z = gen.drop(torch.tanh(word + state))
    return _emit(gen, word, state, fresh, z), gen.heads.token(z) + lexw


def _emit(
    gen: ProgramGenerator,
    word: torch.Tensor,
    state: torch.Tensor,
    fresh: torch.Tensor | None,
    z: torch.Tensor | None = None,
) -> torch.Tensor:
    if gen.heads.fresh is None or fresh is None:
        z = gen.drop(torch.tanh(word + state)) if z is None else z
    else:
        z = gen.drop(torch.tanh(word + state + gen.heads.fresh(fresh.long())))
    return gen.heads.emit(z).squeeze(-1)


def transducer_log_prob(
    gen: ProgramGenerator,
    tokens: torch.Tensor,
    targets: torch.Tensor,
    kind: torch.Tensor,
    arg: torch.Tensor,
) -> torch.Tensor:
    """Log-probability ``[b]`` of reading-order target programs, summed over every
    monotone alignment of their tokens to the words (forward algorithm).

    ``targets`` ``[b, s]`` token ids in reading order (0 after the end), ``kind`` /
    ``arg`` the port each fills.
    """
    return _lattice(gen, tokens, targets, kind, arg)[0]


def transducer_objective(
    gen: ProgramGenerator,
    tokens: torch.Tensor,
    targets: torch.Tensor,
    kind: torch.Tensor,
    arg: torch.Tensor,
    done_contrast: float,
) -> torch.Tensor:
    """The training objective ``[b]``: :func:`transducer_log_prob` plus, weighted by
    ``done_contrast``, the log-probability that the *done state* refuses to skip the
    words the program is not complete at.

    Once the program is complete the pointer walks to the end of the sentence in the
    done state, each word paying its advance probability. The likelihood trains that
    probability only up, on the words that follow a complete program ("are there?",
    "what color is it?"); nothing says that "with the same color as …" may not be
    skipped there, and a program cut short at the first noun then costs almost nothing
    more than the right one (measured: log-probability -0.09 against -9.6 for the
    whole "Is there a big ball with the same color as the gray metallic item …?").
    The contrast makes the done state a classifier of its own: every word before the
    word the program is completed at (under the lattice's posterior, not
    differentiated) is a negative — the done state should say "emit" there.

    Example:
        >>> import torch
        >>> from brickwork.studies.clevr.parse.grammar import TOKEN_INDEX, port_sequence
        >>> from brickwork.studies.clevr.parse.model import ProgramGenerator
        >>> gen = ProgramGenerator(["how", "many", "cubes"], dim=8, arch="transducer").eval()
        >>> toks = ["count", "filter_shape[cube]", "scene"]
        >>> ids, _ = gen.encode_text("how many cubes")
        >>> t = torch.tensor([[TOKEN_INDEX[x] for x in toks]])
        >>> kind, _, arg = torch.tensor(port_sequence(toks)).T[:, None]
        >>> lp = transducer_log_prob(gen, ids[None], t, kind, arg)
        >>> bool(transducer_objective(gen, ids[None], t, kind, arg, 1.0) < lp)
        True
    """
    total, _, contrast = _lattice(gen, tokens, targets, kind, arg, contrast=True)
    return total + done_contrast * contrast


def transducer_alignment(
    gen: ProgramGenerator,
    tokens: torch.Tensor,
    targets: torch.Tensor,
    kind: torch.Tensor,
    arg: torch.Tensor,
) -> torch.Tensor:
    """The word each token of reading-order ``targets`` is emitted at, ``[b, s]``
    (word positions as in ``tokens``, ``<bos>`` = 0; -1 for the root and after the
    end): the most probable position under the posterior of the emit/advance lattice
    (the gradient of the log-probability with respect to each emission's score).
    """
    with torch.enable_grad():
        total, emit_score, _ = _lattice(gen, tokens, targets, kind, arg, probe=True)
        (post,) = torch.autograd.grad(total.sum(), emit_score)  # [b, m, n]
    out = torch.full_like(targets, -1)
    out[:, 1:] = post.argmax(-1).masked_fill(targets[:, 1:] == 0, -1)
    return out


def _lattice(
    gen: ProgramGenerator,
    tokens: torch.Tensor,
    targets: torch.Tensor,
    kind: torch.Tensor,
    arg: torch.Tensor,
    probe: bool = False,
    contrast: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The forward algorithm: log-probability ``[b]``, the emission scores
    ``[b, m, n]`` it sums over (a leaf requiring grad when ``probe``) and, with
    ``contrast``, the done state's contrast term ``[b]`` (:func:`transducer_objective`;
    zeros without)."""
    enc = gen.encode(tokens)
    h, mask = enc["h"], enc["mask"]
    dev = h.device
    allowed = ALLOWED.to(dev)
    root = _root_logits(gen, enc).masked_fill(~allowed[_ROOT], _NEG)
    total = torch.log_softmax(root, -1).gather(1, targets[:, :1]).squeeze(1)
    y = targets[:, 1:]
    b, m = y.shape
    n = h.shape[1]
    if m == 0:
        return total, total.new_zeros(b, 0, n), torch.zeros_like(total)
    ylen = (y > 0).sum(1)
    word = gen.heads.word(h)  # [b, n, 2d]
    lexw = _lexicon(gen, enc)  # every word's own vote for tokens (a lexicon)
    pos = torch.arange(n, device=dev)
    last = (mask.sum(1) - 1)[:, None, None]
    at_end = pos[None, None, :] == last
    beyond = pos[None, None, :] > last
    scope = (SCORED.to(dev) if gen.wide_values else allowed)[kind[:, 1:]][:, :, None, :]

    st = gen.heads.state(_state(gen, targets[:, :-1], kind[:, 1:], arg[:, 1:]))  # [b, m, 2d]
    emit, logits = _joint(gen, word[:, None], lexw[:, None], st[:, :, None])
    logits = logits.masked_fill(~scope, _NEG)
    tok_lp = torch.log_softmax(logits, -1).gather(3, y[:, :, None, None].expand(-1, -1, n, 1))
    tok_lp = tok_lp.squeeze(-1)  # [b, m, n]

    def decisions(emit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Emission scores (emitting y_{j+1} at word i from state (j, i)) and advance
        log-probabilities ``[b, m, n]`` of emit logits ``emit``."""
        log_e = torch.nn.functional.logsigmoid(emit)
        log_a = torch.nn.functional.logsigmoid(-emit)
        log_e = torch.where(at_end, torch.zeros_like(log_e), log_e).masked_fill(beyond, _NEG)
        return log_e + tok_lp, log_a.masked_fill(at_end | beyond, _NEG)

    final = torch.full((b, n), _NEG, device=dev)
    arrive = torch.full((b, n), _NEG, device=dev)
    arrive[:, 0] = 0.0
    if gen.heads.fresh is None:
        emit_score, log_a = decisions(emit)
        if probe:
            emit_score = emit_score.detach().requires_grad_()
        for j in range(m):
            # advancing along row j: beta[i] = sum_{i' <= i} arrive[i'] prod_{i'<=k<i} a[k]
            c = torch.cumsum(log_a[:, j], 1) - log_a[:, j]  # exclusive prefix sums
            beta = c + torch.logcumsumexp(arrive - c, 1)
            arrive = beta + emit_score[:, j]
            final = torch.where((ylen == j + 1)[:, None], arrive, final)
    else:
        # two states per (row, word): *fresh* (the row's token was just emitted at this
        # word) and *stale* (the pointer has advanced since); their emit/advance
        # decisions differ, their token choices do not
        ones = torch.ones(b, m, 1, dtype=torch.long, device=dev)
        emit_f, log_a_f = decisions(_emit(gen, word[:, None], st[:, :, None], ones))
        emit_s, log_a_s = decisions(_emit(gen, word[:, None], st[:, :, None], ones * 0))
        emit_score = torch.zeros_like(emit_f)
        if probe:  # the posterior of an emission, fresh or stale, is the gradient here
            emit_score = emit_score.requires_grad_()
        emit_f, emit_s = emit_f + emit_score, emit_s + emit_score
        zero = torch.zeros(b, m, 1, device=dev)
        cs = torch.cat([zero, torch.cumsum(log_a_s, 2)], 2)  # cs[i] = sum_{k<i} log a_s[k]
        neg = torch.full((b, 1), _NEG, device=dev)
        for j in range(m):
            # stale[i] = sum_{i' < i} fresh[i'] a_f[i'] prod_{i'<k<i} a_s[k]
            g = arrive + log_a_f[:, j] - cs[:, j, 1:]
            stale = cs[:, j, :-1] + torch.cat([neg, torch.logcumsumexp(g, 1)[:, :-1]], 1)
            arrive = torch.logaddexp(arrive + emit_f[:, j], stale + emit_s[:, j])
            final = torch.where((ylen == j + 1)[:, None], arrive, final)
    # program complete at word i: advance (in the done state) from i to the last word
    y_last = y.gather(1, (ylen - 1).clamp(min=0)[:, None]).squeeze(1)
    done = gen.heads.state(gen.prev_embed(y_last) + gen.heads.done)  # [b, 2d]
    emit_d, _ = _joint(gen, word, lexw, done[:, None])
    adv_d = torch.nn.functional.logsigmoid(-emit_d).masked_fill(pos[None, :] >= last[:, 0], 0.0)
    tail = adv_d.flip(1).cumsum(1).flip(1)  # sum over k >= i of advancing at k
    complete = final + tail  # the program completed at word i, then walked to the end
    term = torch.zeros_like(total)
    if contrast:
        # P(the done state walks over word k) = P(completed at a word <= k); the words
        # before that are negatives of the done state's advance
        walked = torch.softmax(complete.detach(), 1).cumsum(1)
        before = (1.0 - walked).clamp(min=0.0) * (pos[None, :] < last[:, 0]).float()
        term = (before * torch.nn.functional.logsigmoid(emit_d)).sum(1)
    return total + torch.logsumexp(complete, 1), emit_score, term


def transducer_decode(
    gen: ProgramGenerator,
    tokens: torch.Tensor,
    budget: Sequence[int],
    sample: bool,
    generator: torch.Generator | None,
) -> Decoded:
    """Greedy (or sampled) decodes: the root, then emit/advance along the words."""
    from brickwork.studies.clevr.parse.model import Decoded

    enc = gen.encode(tokens)
    h, mask = enc["h"], enc["mask"]
    dev = h.device
    b = tokens.shape[0]
    stacks = [PortStack.start(m) for m in budget]
    word = gen.heads.word(h)
    lexw = _lexicon(gen, enc)
    last = mask.sum(1) - 1
    out: list[list[str]] = [[] for _ in range(b)]
    min_prob = [1.0] * b
    root, lp_root, forced = constrained_choice(
        _root_logits(gen, enc), stacks, sample=sample, generator=generator
    )
    total = lp_root
    prev = root.clone()
    fresh = torch.ones_like(root)
    for i, r in enumerate(root.tolist()):
        out[i].append(TOKENS[r])
        stacks[i].push(TOKENS[r])
        min_prob[i] = float(lp_root[i].detach().exp())
    ptr = torch.zeros(b, dtype=torch.long, device=dev)
    rows = torch.arange(b, device=dev)
    while not all(s.done for s in stacks):
        kind = torch.tensor([s.kind() for s in stacks], device=dev)
        arg = torch.tensor([s.parent()[1] for s in stacks], device=dev)
        st = gen.heads.state(_state(gen, prev, kind, arg))
        emit, tok_logits = _joint(gen, word[rows, ptr], lexw[rows, ptr], st, fresh)
        p_emit = torch.sigmoid(emit)
        at_end = ptr >= last
        if sample:
            do_emit = torch.bernoulli(p_emit.detach(), generator=generator).bool()
        else:
            do_emit = p_emit > 0.5
        do_emit = do_emit | at_end
        active = torch.tensor([not s.done for s in stacks], device=dev)
        dec_lp = torch.where(
            at_end,
            torch.zeros_like(emit),
            torch.where(
                do_emit,
                torch.nn.functional.logsigmoid(emit),
                torch.nn.functional.logsigmoid(-emit),
            ),
        )
        pick, tok_lp, bent = constrained_choice(
            tok_logits, stacks, sample=sample, generator=generator
        )
        emits = do_emit.tolist()
        forced = [f or (c and e) for f, c, e in zip(forced, bent, emits)]
        step_lp = dec_lp + torch.where(do_emit, tok_lp, torch.zeros_like(tok_lp))
        total = total + torch.where(active, step_lp, torch.zeros_like(step_lp))
        probs = step_lp.detach().exp().tolist()
        chosen = pick.tolist()
        for i, s in enumerate(stacks):
            if s.done:
                continue
            min_prob[i] = min(min_prob[i], probs[i])
            if emits[i]:
                tok = TOKENS[chosen[i]]
                out[i].append(tok)
                s.push(tok)
        prev = torch.where(do_emit & active, pick, prev)
        fresh = torch.where(active, do_emit.long(), fresh)
        ptr = torch.where(do_emit | ~active, ptr, ptr + 1)
    return Decoded([canonical_order(t) for t in out], total, min_prob, forced)


def _clone(stack: PortStack) -> PortStack:
    return PortStack(list(stack.ports), stack.emitted, stack.max_nodes, stack.open_cost)


@dataclass
class _Hyp:
    score: float
    stack: PortStack
    ptr: int
    prev: int
    tokens: list[str]
    min_prob: float
    forced: bool = False  # the node budget overruled the type-allowed best token
    fresh: bool = True  # the previous token was emitted at the word under the pointer


@torch.no_grad()
def transducer_beam(
    gen: ProgramGenerator, tokens: torch.Tensor, budget: Sequence[int], beam: int
) -> Decoded:
    """Beam search over the emit/advance lattice, one question at a time: a complete
    program's score includes walking (in the done state) to the end of the sentence,
    so a hypothesis that stopped before "… that is behind the cube" pays for skipping
    it, and one that read the clause wins; and ``gen.filter_penalty`` for each of the
    generator's filter words (:meth:`~brickwork.studies.clevr.parse.model.ProgramGenerator.
    set_filter_words`) it leaves without its filter, and for each of its cue words
    (:meth:`~brickwork.studies.clevr.parse.model.ProgramGenerator.set_cue_words`) it
    leaves without a token of the cue (:class:`WordNeeds`)."""
    from brickwork.studies.clevr.parse.model import Decoded

    enc = gen.encode(tokens)
    h, mask = enc["h"], enc["mask"]
    dev = h.device
    word_all = gen.heads.word(h)
    lex_all = _lexicon(gen, enc)
    roots = torch.log_softmax(_root_logits(gen, enc), -1)
    scored = SCORED.to(dev)
    results: list[list[str]] = []
    scores: list[float] = []
    min_probs: list[float] = []
    forced: list[bool] = []
    for q in range(tokens.shape[0]):
        last = int(mask[q].sum()) - 1
        word, lexw = word_all[q], lex_all[q]
        needs = WordNeeds.of(tokens[q].tolist(), gen.filter_ids, gen.cue_ids)
        start = PortStack.start(budget[q])
        ok = start.allowed().to(dev)
        r_lp = roots[q].masked_fill(~ok, -float("inf"))
        live: list[_Hyp] = []
        for lp, t in zip(*r_lp.topk(min(beam, int(ok.sum())))):
            st = _clone(start)
            st.push(int(t))
            live.append(_Hyp(float(lp), st, 0, int(t), [TOKENS[int(t)]], float(lp.exp())))
        finished: list[_Hyp] = []
        while live:
            kind = torch.tensor([hy.stack.kind() for hy in live], device=dev)
            arg = torch.tensor([hy.stack.parent()[1] for hy in live], device=dev)
            prev = torch.tensor([hy.prev for hy in live], device=dev)
            ptr = torch.tensor([hy.ptr for hy in live], device=dev)
            fresh = torch.tensor([int(hy.fresh) for hy in live], device=dev)
            st = gen.heads.state(_state(gen, prev, kind, arg))
            emit, logits = _joint(gen, word[ptr], lexw[ptr], st, fresh)
            allowed = allowed_batch([hy.stack for hy in live], dev)
            scope = allowed | scored[kind] if gen.wide_values else allowed
            tok_lp = torch.log_softmax(logits.masked_fill(~scope, _NEG), -1)
            tok_lp = tok_lp.masked_fill(~allowed, _NEG)
            log_e = torch.nn.functional.logsigmoid(emit).tolist()
            log_a = torch.nn.functional.logsigmoid(-emit).tolist()
            by_type = ALLOWED.to(dev)[kind]
            bent = (logits.masked_fill(~by_type, _NEG).argmax(-1) != tok_lp.argmax(-1)).tolist()
            k = min(beam, len(TOKENS) - 1)
            top_lp, top_t = tok_lp.masked_fill(~allowed, -float("inf")).topk(k, -1)
            cands: list[tuple[float, int, int | None, float]] = []  # score, hyp, token, p
            for i, hy in enumerate(live):
                at_end = hy.ptr >= last
                if not at_end:
                    # leaving word ptr: the filter of word ptr - 1 is due (one word of slack)
                    owed = needs.owed(hy.tokens, hy.ptr - 1, hy.ptr - 1)
                    step = log_a[i] - gen.filter_penalty * owed
                    cands.append((hy.score + step, i, None, math.exp(log_a[i])))
                e = 0.0 if at_end else log_e[i]
                for lp_t, t in zip(top_lp[i].tolist(), top_t[i].tolist()):
                    if lp_t > -1e30:
                        cands.append((hy.score + e + lp_t, i, t, math.exp(e + lp_t)))
            if gen.merge_paths:
                cands = _merge_paths(cands, live, fresh=gen.heads.fresh is not None)
            cands.sort(key=lambda c: -c[0])
            nxt: list[_Hyp] = []
            for score, i, t, p in cands[:beam]:
                hy = live[i]
                if t is None:
                    nxt.append(
                        _Hyp(
                            score,
                            hy.stack,
                            hy.ptr + 1,
                            hy.prev,
                            hy.tokens,
                            min(hy.min_prob, p),
                            hy.forced,
                            fresh=False,
                        )
                    )
                    continue
                stack = _clone(hy.stack)
                stack.push(t)
                new = _Hyp(
                    score,
                    stack,
                    hy.ptr,
                    t,
                    [*hy.tokens, TOKENS[t]],
                    min(hy.min_prob, p),
                    hy.forced or bent[i],
                )
                if stack.done:
                    new.score += _done_tail(gen, word, lexw, t, new.ptr, last)
                    owed = needs.owed(new.tokens, max(new.ptr - 1, 0), last)
                    new.score -= gen.filter_penalty * owed
                    same = next((f for f in finished if f.tokens == new.tokens), None)
                    if gen.merge_paths and same is not None:
                        same.score = _logaddexp(same.score, new.score)
                    else:
                        finished.append(new)
                else:
                    nxt.append(new)
            best_done = max((f.score for f in finished), default=-float("inf"))
            live = [hy for hy in nxt if hy.score > best_done]
        best = max(finished, key=lambda f: f.score)
        results.append(canonical_order(best.tokens))
        scores.append(best.score)
        min_probs.append(best.min_prob)
        forced.append(best.forced)
    return Decoded(results, torch.tensor(scores, device=dev), min_probs, forced)


def _logaddexp(a: float, b: float) -> float:
    hi = max(a, b)
    return hi + math.log1p(math.exp(min(a, b) - hi))


def _merge_paths(
    cands: list[tuple[float, int, int | None, float]], live: Sequence[_Hyp], fresh: bool = False
) -> list[tuple[float, int, int | None, float]]:
    """Candidates that reach the same decoding state — the same tokens so far and the
    same word — by different alignments, merged into one whose score is the sum of
    their probabilities (the one with the best path stands for them). The rest of the
    decode depends on that state alone, so they are one hypothesis: the search then
    ranks programs by their probability summed over alignments, as training does,
    and no beam slot is spent on a second alignment of the same tokens."""
    merged: dict[tuple[tuple[str, ...], int, bool], list[Any]] = {}
    for score, i, t, p in cands:
        hy = live[i]
        # an advance leaves a stale state, an emission a fresh one (a different state
        # only where the decisions read the freshness)
        key = (
            (tuple(hy.tokens), hy.ptr + 1, False)
            if t is None
            else ((*hy.tokens, TOKENS[t]), hy.ptr, fresh)
        )
        best = merged.get(key)
        if best is None:
            merged[key] = [score, i, t, p, score]
        else:
            best[0] = _logaddexp(best[0], score)
            if score > best[4]:
                best[1:] = [i, t, p, score]
    return [(c[0], c[1], c[2], c[3]) for c in merged.values()]


@dataclass(frozen=True)
class WordNeeds:
    """What one question's words ask of its program: ``at[i]`` the need the word at
    position ``i`` names (an index into ``names``; ``None``: none), ``names[k]`` the
    tokens any one of which meets need ``k``, ``upto[k][i]`` how many of the words up to
    position ``i`` name need ``k``.

    A filter word's need is its filter token, shared by every word naming that filter
    ("matte" and "rubber"); a cue word's need is any token of its cue
    (:data:`~brickwork.studies.clevr.parse.grammar.CUE_TOKENS`), one need per word
    ("made of the same material" asks for one material token, "either … or" for one
    ``union``).

    Example (word ids 7 "red", 8 "cube", 9 "and", 10 "color"):
        >>> from brickwork.studies.clevr.parse.grammar import TOKEN_INDEX
        >>> red = TOKEN_INDEX["filter_color[red]"]
        >>> needs = WordNeeds.of([2, 7, 8, 9, 7, 3], {7: red})
        >>> needs.upto[needs.at[1]]
        [0, 1, 1, 1, 2, 2]
        >>> needs.owed(["exist", "filter_color[red]"], 0, 5)  # one red filter, two "red"s
        1
        >>> needs.owed(["exist", "filter_color[red]"], 0, 3)  # the first "red" only
        0
        >>> needs = WordNeeds.of([2, 10, 3], {}, {10: "color"})
        >>> needs.owed(["query_size"], 0, 2), needs.owed(["query_color"], 0, 2)
        (1, 0)
    """

    at: tuple[int | None, ...]
    names: tuple[frozenset[str], ...]
    upto: tuple[list[int], ...]

    @classmethod
    def of(
        cls,
        ids: Sequence[int],
        filter_ids: Mapping[int, int],
        cue_ids: Mapping[int, str] | None = None,
    ) -> WordNeeds:
        keys: dict[tuple[str, int], int] = {}
        names: list[frozenset[str]] = []
        at: list[int | None] = []
        cues = cue_ids or {}
        for w in ids:
            if w in filter_ids:
                key, name = ("filter", filter_ids[w]), frozenset({TOKENS[filter_ids[w]]})
            elif w in cues:
                key, name = ("word", w), CUE_TOKENS[cues[w]]
            else:
                at.append(None)
                continue
            if key not in keys:
                keys[key] = len(names)
                names.append(name)
            at.append(keys[key])
        upto: list[list[int]] = []
        for k in range(len(names)):
            run, n = [], 0
            for g in at:
                n += g == k
                run.append(n)
            upto.append(run)
        return cls(tuple(at), tuple(names), tuple(upto))

    def owed(self, program: Sequence[str], first: int, last: int) -> int:
        """How many words at positions ``first`` … ``last`` the program ``program``
        (its tokens so far) has not met the need of: the j-th word naming need ``k``
        is owed while the program has fewer than j tokens of ``names[k]``."""
        if not self.names or first < 0:
            return 0
        have: dict[int, int] = {}
        n = 0
        for i in range(first, min(last, len(self.at) - 1) + 1):
            k = self.at[i]
            if k is None:
                continue
            if k not in have:
                have[k] = sum(t in self.names[k] for t in program)
            n += self.upto[k][i] > have[k]
        return n


def _done_tail(
    gen: ProgramGenerator,
    word: torch.Tensor,
    lexw: torch.Tensor,
    last_token: int,
    ptr: int,
    last: int,
) -> float:
    """Log-probability of advancing from word ``ptr`` to the last word once complete."""
    if ptr >= last:
        return 0.0
    prev = torch.tensor([last_token], device=word.device)
    done = gen.heads.state(gen.prev_embed(prev) + gen.heads.done)
    emit, _ = _joint(gen, word[ptr:last], lexw[ptr:last], done)
    return float(torch.nn.functional.logsigmoid(-emit).sum())


__all__ = [
    "OPS",
    "WordNeeds",
    "ROOT_ATTRS",
    "ROOT_EDGE",
    "TransducerHeads",
    "canonical_order",
    "reading_order",
    "transducer_alignment",
    "transducer_beam",
    "transducer_decode",
    "transducer_log_prob",
    "transducer_objective",
]
