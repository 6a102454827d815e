"""The program generator: question words → prefix program tokens, decoded under the
type constraint of :mod:`~brickwork.studies.clevr.parse.grammar`.

Three architectures share one module kind (``arch`` in the config):

- ``"transducer"`` (the default since the study's third run): a monotone transducer
  that walks the words once, emitting the program in reading order; its decisions are
  local, so deeper questions are more of the same decisions
  (:mod:`~brickwork.studies.clevr.parse.transducer`, where the reasons are given).

- ``"pointer"`` (the previous default): a **local** encoder (word embeddings and two
  convolutions, each word sees ±4 words) and a **Markov** decoder. A step's query is a
  function of the previous token, the previous attended context, the open port (its
  kind, parent token and argument position) — nothing that grows with the question —
  and its attention adds to the content score a location score over the *offset* from
  the previous attention (offsets −6…6 one by one, farther ones in two buckets), so the
  pointer learns to step along the sentence ("the big red cube that is left of …":
  ``unique`` at *the*, ``filter_shape[cube]`` at *cube*, back over the adjectives,
  then on to *left*). Nothing in it depends on the position in the sentence or on the
  number of steps taken: a depth-12 question is the same local steps as a depth-4 one,
  which is why it reads questions deeper than any it was trained on.
- ``"seq2seq"``: the plain baseline: a bidirectional GRU encoder and a GRU decoder with
  attention and input feeding, whose recurrent state carries the whole history.

Example:
    >>> gen = ProgramGenerator(words=["how", "many", "red", "things", "are", "there"])
    >>> ids, unknown = gen.encode_text("How many red cubes are there?")
    >>> unknown
    ['cubes']
    >>> out = gen.decode(ids.unsqueeze(0))  # untrained: some valid program
    >>> from brickwork.studies.clevr.parse.grammar import from_prefix
    >>> from_prefix(out.tokens[0]).answers_question
    True
"""

from __future__ import annotations

import math
import re
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from brickwork.errors import DataError
from brickwork.modules import Module, register_kind
from brickwork.studies.clevr.data import Program
from brickwork.studies.clevr.parse.grammar import (
    ALLOWED,
    ANSWER_KIND,
    CUE_TOKENS,
    KINDS,
    TOKEN_INDEX,
    TOKENS,
    PortStack,
    constrained_choice,
    prefix_tokens,
)
from brickwork.studies.clevr.parse.transducer import (
    TransducerHeads,
    reading_order,
    transducer_beam,
    transducer_decode,
    transducer_log_prob,
    transducer_objective,
)
from brickwork.types import Features

PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")
_WORD = re.compile(r"[a-z]+|\d+")
#: default location window: offsets -WINDOW..WINDOW one by one, then far left / far right
WINDOW = 6
EDGE = 10
#: log-probability the transducer's beam charges per filter word a program leaves
#: without its filter (:meth:`ProgramGenerator.set_filter_words`), and per cue word
#: it leaves unread (:meth:`ProgramGenerator.set_cue_words`): a hard rule in effect
FILTER_PENALTY = 20.0
ARCHS = ("pointer", "seq2seq", "transducer")
CONTEXTS = ("right", "both", "near")
ROOT_KIND = KINDS.index(ANSWER_KIND)


def words_of(text: str) -> list[str]:
    """The question's words as the generator reads them (lower case, no punctuation).

    Example:
        >>> words_of("There is a big ball; what color is it?")
        ['there', 'is', 'a', 'big', 'ball', 'what', 'color', 'is', 'it']
    """
    return _WORD.findall(text.lower())


#: the token a plural's "s" becomes when the singular is a known word ("balls" -> "ball" +
#: PLURAL): singular and plural share one embedding
PLURAL = "-s"


def split_plurals(words: Sequence[str], known: Container[str]) -> list[str]:
    """``words`` with every plural of a known singular split into singular + :data:`PLURAL`
    (words of 4 letters or more ending in "s"; "is", "as", "its" stay whole).

    Example:
        >>> split_plurals(["how", "many", "balls", "is"], {"ball", "i"})
        ['how', 'many', 'ball', '-s', 'is']
    """
    out: list[str] = []
    for w in words:
        if len(w) >= 4 and w.endswith("s") and w[:-1] in known:
            out += [w[:-1], PLURAL]
        else:
            out.append(w)
    return out


def _buckets(n: int, device: torch.device, window: int = WINDOW) -> torch.Tensor:
    pos = torch.arange(n, device=device)
    off = pos[:, None] - pos[None, :]  # [i, j] = i - j
    b = off.clamp(-window, window) + window
    b = torch.where(off < -window, torch.full_like(b, 2 * window + 1), b)
    return torch.where(off > window, torch.full_like(b, 2 * window + 2), b)


@dataclass
class Decoded:
    """A batch of decodes: prefix tokens, summed log-probabilities (with gradients when
    sampled for training), and whether the node budget cut a decode short."""

    tokens: list[list[str]]
    log_prob: torch.Tensor
    min_prob: list[float]
    forced: list[bool]


@register_kind(
    "clevr_program_generator",
    example_config={"words": ["how", "many", "things"], "dim": 16},
    sizes={"b": 2, "t": 6},
)
class ProgramGenerator(Module):
    """Question tokens → a CLEVR program in prefix order, under the type constraint.

    Args:
        words: the word vocabulary (ids 4…; 0 padding, 1 unknown, 2/3 sentence start/end).
        dim: width of embeddings and states.
        arch: ``"pointer"`` (local encoder, Markov location-aware decoder) or
            ``"seq2seq"`` (BiGRU encoder, GRU decoder with attention).

    Example:
        >>> gen = ProgramGenerator(words=["are", "there", "any", "cubes"], dim=16)
        >>> ids, _ = gen.encode_text("Are there any cubes?")
        >>> gen(ids.unsqueeze(0)).shape[0]
        1
    """

    manual_config = True

    def __init__(
        self,
        words: Sequence[str] = (),
        dim: int = 64,
        arch: str = "pointer",
        dropout: float = 0.1,
        lexical: bool = True,
        context: str = "both",
        root_pool: bool = True,
        split_plural: bool = True,
        prev_dropout: float = 0.0,
        root_lexical: bool = False,
        done_contrast: float = 0.0,
        lookahead: int = 0,
        wide_values: bool = False,
        attr_pool: str = "lse",
        attr_gate: int = 0,
        filter_words: Mapping[str, str] | None = None,
        fresh_state: bool = False,
        cue_words: Mapping[str, str] | None = None,
    ):
        super().__init__()
        if arch not in ARCHS:
            raise DataError(f"ProgramGenerator: arch {arch!r}; expected one of {ARCHS}")
        self._bw_config = {
            "words": list(words),
            "dim": dim,
            "arch": arch,
            "dropout": dropout,
            "lexical": lexical,
            "context": context,
            "root_pool": root_pool,
            "split_plural": split_plural,
            "prev_dropout": prev_dropout,
            "root_lexical": root_lexical,
            "done_contrast": done_contrast,
            "lookahead": lookahead,
            "wide_values": wide_values,
            "attr_pool": attr_pool,
            "attr_gate": attr_gate,
            "filter_words": dict(filter_words or {}),
            "fresh_state": fresh_state,
            "cue_words": dict(cue_words or {}),
        }
        #: transducer: probability of hiding the previous token in training
        self.prev_dropout = prev_dropout
        #: transducer: weight of the done state's contrast in the training objective
        #: (:func:`~brickwork.studies.clevr.parse.transducer.transducer_objective`)
        self.done_contrast = done_contrast
        #: transducer: how many following words vote for same_* / query_* tokens
        self.lookahead = lookahead
        #: transducer: a value port's forced query is scored against every attribute's
        self.wide_values = wide_values
        #: transducer: how the family's attribute votes are pooled ("lse" or "max")
        if attr_pool not in ("lse", "max"):
            raise DataError(f"ProgramGenerator: attr_pool {attr_pool!r}; expected 'lse' or 'max'")
        self.attr_pool = attr_pool
        #: transducer: half-width of the window the family attribute's gate reads (0: none)
        if attr_gate < 0:
            raise DataError(f"ProgramGenerator: attr_gate {attr_gate}; expected 0 or more words")
        self.attr_gate = attr_gate
        #: beam width of the transducer's decoding (1: greedy)
        self.beam = 4
        #: the transducer's beam merges the alignments of the same tokens (sums them)
        self.merge_paths = True
        self.window = WINDOW  # 12 measured no better (docs/clevr-parse.md)
        #: transducer: log-probability the beam charges per filter word a program leaves
        #: without its filter (:meth:`set_filter_words`) or cue word it leaves
        #: unread (:meth:`set_cue_words`)
        self.filter_penalty = FILTER_PENALTY
        self.split_plural = split_plural
        if context not in CONTEXTS:
            raise DataError(f"ProgramGenerator: context {context!r}; expected one of {CONTEXTS}")
        self.context = context
        self.drop = nn.Dropout(dropout)
        self.lexical = lexical
        self.words = list(words)
        self.index = {w: i + len(SPECIALS) for i, w in enumerate(self.words)}
        self.set_filter_words(filter_words or {})
        self.set_cue_words(cue_words or {})
        self.arch = arch
        self.dim = dim
        self.inputs = {"tokens": Features("b t", dtype=torch.long)}
        self.outputs = {"program": Features("b s", dtype=torch.long)}
        v, p, d = len(self.words) + len(SPECIALS), len(TOKENS), dim
        self.embed = nn.Embedding(v, d, padding_idx=PAD)
        self.prev_embed = nn.Embedding(p, d)
        self.kind_embed = nn.Embedding(len(KINDS), d)
        self.parent_embed = nn.Embedding(p, d)
        self.arg_embed = nn.Embedding(3, d)
        if arch in ("pointer", "transducer"):
            # "right": each word sees itself and the next 4 words only (two width-3
            # convolutions padded on the right); "both": ±4 words (two width-5 ones);
            # "near": ±2 words (two width-3 ones)
            width = 5 if context == "both" else 3
            self.convs = nn.ModuleList([nn.Conv1d(d, d, width) for _ in range(2)])
        if arch == "transducer":
            self.heads = TransducerHeads(d, p, root_lexical, lookahead > 0, attr_gate, fresh_state)
        elif arch == "pointer":
            self.query = nn.Sequential(nn.Linear(5 * d, 2 * d), nn.Tanh(), nn.Linear(2 * d, d))
            self.key = nn.Linear(d, d)
            self.loc = nn.Linear(d, 2 * WINDOW + 3)
            # distance from the sentence's start and end (0..EDGE-1, then "far"):
            # "There is a … ; what color is it?" jumps to the end and back to the start
            self.edge = nn.Linear(d, 2 * (EDGE + 1))
        if arch == "seq2seq":
            self.rnn = nn.GRU(d, d // 2, batch_first=True, bidirectional=True)
            self.cell = nn.GRUCell(5 * d, d)
            self.key = nn.Linear(d, d)
        if arch != "transducer":
            self.out = nn.Sequential(nn.Linear(2 * d, d), nn.Tanh(), nn.Linear(d, p))
        # the attended words' own embeddings vote for tokens (a lexicon: "ball" ->
        # filter_shape[sphere] wherever it stands)
        self.lex = nn.Linear(d, p) if lexical and arch != "transducer" else None
        # the root token (the question family) also reads the max over the sentence of
        # the local features: "less than" anywhere in a long question, not only where
        # the one attention head lands; a max over local features does not grow with
        # the question's length
        self.root = nn.Linear(d, p) if root_pool and arch == "pointer" else None

    # ------------------------------------------------------------------ text
    def set_filter_words(self, words: Mapping[str, str]) -> None:
        """Words that always name one filter (``{"matte": "filter_material[rubber]",
        "balls": "filter_shape[sphere]"}``; learned from the labelled questions by
        :class:`~brickwork.studies.clevr.parse.checks.LabelChecks`). The transducer's
        beam charges :attr:`filter_penalty` for each filter word a program leaves
        without its filter: one it walks past without having emitted the filter (one
        word of slack: "red cube" may emit both filters at "cube"), one left unread
        after the program is complete, and each missing at the end.

        Why: once the program is complete the pointer walks to the end of the sentence
        in the *done state*, and the likelihood only ever trains that walk to be cheap
        (depth ≤ 5 questions end with "are there?", "have the same color?"). In deep
        questions the beam then completed the program early and skipped the rest, "or a
        thing that is both a rubber thing and a big item", for a fraction of a nat: 61
        of the bench's 125 wrong programs at depth 11-20 ended four or more words before
        the right one; in held-out frames "… equal to the number of red objects" lost
        its ``filter_color[red]``. No labelled question has a filter word without its
        filter. Plural forms count as their singular. Recorded in :attr:`config`.

        Example:
            >>> gen = ProgramGenerator(["is", "there", "a", "ball"], arch="transducer")
            >>> gen.set_filter_words({"balls": "filter_shape[sphere]"})
            >>> gen.config["filter_words"], gen.filter_ids
            ({'balls': 'filter_shape[sphere]'}, {7: 19})
        """
        ids: dict[int, int] = {}
        for w, tok in sorted(words.items()):
            if tok not in TOKEN_INDEX or not tok.startswith("filter_"):
                raise DataError(
                    f"filter word {w!r} names {tok!r}, which is not a filter token; "
                    "expected one such as 'filter_color[red]'"
                )
            known = self._word_id(w)
            if known is not None:
                ids[known] = TOKEN_INDEX[tok]
        #: word id -> the filter token id it names (singular and plural share the id)
        self.filter_ids = ids
        self._bw_config["filter_words"] = dict(sorted(words.items()))

    def set_cue_words(self, words: Mapping[str, str]) -> None:
        """Words that always cue one attribute, set operation or relation (``{"color":
        "color", "made": "material", "either": "union", "left": "relate[left]"}``: keys
        of :data:`~brickwork.studies.clevr.parse.grammar.CUE_TOKENS`; learned from the
        labelled questions by :class:`~brickwork.studies.clevr.parse.checks.LabelChecks`).
        The transducer's beam charges :attr:`filter_penalty` for each occurrence of such
        a word the program has no token of its cue for (for an attribute a ``same_*``,
        ``query_*`` or ``equal_*`` token of it), as for :meth:`set_filter_words` — but
        each word counted on its own: "made of the same material" asks for one
        material token, "either … or" for one ``union``.

        Why: in the bench's N = 270 generator 18 of the 19 depth-11-20 questions with
        "… with the same color as …" were read as ``same_size`` (log-probability -0.3
        against -2.3 for the right program): the labelled questions say "with the same
        size as" five times and "with the same color as" twice, and the lexicon of
        "with", where the token is emitted, learned to say *size*. And most of the
        rest were nested "… either an item that is either …" read with one ``union``
        too few, or a chain of relations cut short. No labelled question has a cue
        word without its cue's tokens. Recorded in :attr:`config`.

        Example:
            >>> gen = ProgramGenerator(["what", "color", "is", "it"], arch="transducer")
            >>> gen.set_cue_words({"color": "color"})
            >>> gen.config["cue_words"], gen.cue_ids
            ({'color': 'color'}, {5: 'color'})
        """
        ids: dict[int, str] = {}
        for w, cue in sorted(words.items()):
            if cue not in CUE_TOKENS:
                raise DataError(
                    f"cue word {w!r} names {cue!r}, which is not a cue; expected an "
                    f"attribute, a set operation or a relation: one of {sorted(CUE_TOKENS)}"
                )
            known = self._word_id(w)
            if known is not None:
                ids[known] = cue
        #: word id -> the cue it names (singular and plural share the id)
        self.cue_ids = ids
        self._bw_config["cue_words"] = dict(sorted(words.items()))

    def encode_text(self, text: str, length: int | None = None) -> tuple[torch.Tensor, list[str]]:
        """Word ids ``<bos> words <eos>`` (padded to ``length``) and the unknown words."""
        ws = words_of(text)
        unknown = [w for w in ws if w not in self.index and not self._plural_of_known(w)]
        if self.split_plural:
            ws = split_plurals(ws, self.index)
        ids = [BOS, *(self.index.get(w, UNK) for w in ws), EOS]
        if length is not None:
            ids = ids[:length] + [PAD] * max(0, length - len(ids))
        return torch.tensor(ids, dtype=torch.long), unknown

    def _word_id(self, word: str) -> int | None:
        """The id ``word`` is read as (a known plural as its singular), or ``None``."""
        if word in self.index:
            return self.index[word]
        return self.index[word[:-1]] if self._plural_of_known(word) else None

    def _plural_of_known(self, word: str) -> bool:
        return (
            self.split_plural and len(word) >= 4 and word.endswith("s") and word[:-1] in self.index
        )

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Padded word ids of several questions, ``[n, longest + 2]``."""
        rows = [self.encode_text(t)[0] for t in texts]
        n = max((len(r) for r in rows), default=2)
        return torch.stack([torch.cat([r, r.new_zeros(n - len(r))]) for r in rows])

    # ------------------------------------------------------------------ network
    def encode(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        tokens = tokens.long().clamp(0, self.embed.num_embeddings - 1)
        mask = tokens != PAD
        x = self.drop(self.embed(tokens))
        if self.arch in ("pointer", "transducer"):
            h = x
            pad = {"right": (0, 2), "both": (2, 2), "near": (1, 1)}[self.context]
            for conv in self.convs:
                y = conv(nn.functional.pad(h.transpose(1, 2), pad)).transpose(1, 2)
                h = (h + torch.tanh(y)) * mask.unsqueeze(-1)
            if self.arch == "transducer":
                return {"h": h, "mask": mask, "x": x}
            enc = {"h": h, "mask": mask, "keys": self.key(h), "x": x}
            if self.root is not None:
                pooled = h.masked_fill(~mask.unsqueeze(-1), -1e4).max(1).values
                enc["root"] = self.root(pooled)
            enc["buckets"] = _buckets(tokens.shape[1], tokens.device, self.window)
            pos = torch.arange(tokens.shape[1], device=tokens.device).expand_as(tokens)
            last = mask.sum(1, keepdim=True) - 1
            enc["edges"] = torch.stack(
                [pos.clamp(max=EDGE), (last - pos).clamp(0, EDGE) + EDGE + 1], -1
            )
            return enc
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(
            x, lengths, batch_first=True, enforce_sorted=False
        )
        out, last = self.rnn(packed)
        h, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        h0 = torch.cat([last[0], last[1]], -1)
        return {"h": h, "mask": mask, "keys": self.key(h), "h0": h0, "x": x}

    def start(self, enc: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        h = enc["h"]
        b, n, _ = h.shape
        if self.arch == "pointer":
            alpha = h.new_zeros(b, n)
            alpha[:, 0] = 1.0
            return {"alpha": alpha, "ctx": h[:, 0]}
        return {"hid": enc["h0"], "ctx": h.new_zeros(b, self.dim)}

    def step(
        self,
        enc: dict[str, torch.Tensor],
        state: dict[str, torch.Tensor],
        prev: torch.Tensor,
        kind: torch.Tensor,
        parent: torch.Tensor,
        arg: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One decoding step: logits over program tokens (before the constraint)."""
        h, mask = enc["h"], enc["mask"]
        feats = torch.cat(
            [
                self.prev_embed(prev),
                state["ctx"],
                self.kind_embed(kind),
                self.parent_embed(parent),
                self.arg_embed(arg),
            ],
            -1,
        )
        if self.arch == "pointer":
            q = self.query(feats)
            kern = self.loc(q)  # [b, buckets]
            loc = kern[:, enc["buckets"]]  # [b, i, j]
            bias = torch.einsum("bij,bj->bi", loc, state["alpha"])
            edge = self.edge(q)  # [b, 2 * (EDGE + 1)]
            bias = (
                bias + edge.gather(1, enc["edges"][..., 0]) + edge.gather(1, enc["edges"][..., 1])
            )
            score = torch.einsum("bld,bd->bl", enc["keys"], q) / math.sqrt(self.dim) + bias
            score = score.masked_fill(~mask, -1e9)
            alpha = torch.softmax(score, -1)
            ctx = torch.einsum("bl,bld->bd", alpha, h)
            logits = self.out(self.drop(torch.cat([ctx, q], -1)))
            if self.lex is not None:
                logits = logits + self.lex(torch.einsum("bl,bld->bd", alpha, enc["x"]))
            if "root" in enc:
                is_root = (kind == ROOT_KIND).unsqueeze(-1)
                logits = logits + torch.where(is_root, enc["root"], torch.zeros_like(logits))
            return logits, {"alpha": alpha, "ctx": ctx}
        hid = self.cell(feats, state["hid"])
        score = torch.einsum("bld,bd->bl", enc["keys"], hid) / math.sqrt(self.dim)
        alpha = torch.softmax(score.masked_fill(~mask, -1e9), -1)
        ctx = torch.einsum("bl,bld->bd", alpha, h)
        return self.out(self.drop(torch.cat([ctx, hid], -1))), {"hid": hid, "ctx": ctx}

    def teacher_forced(
        self,
        tokens: torch.Tensor,
        targets: torch.Tensor,
        kind: torch.Tensor,
        parent: torch.Tensor,
        arg: torch.Tensor,
        objective: bool = False,
    ) -> torch.Tensor:
        """Log-probability ``[b]`` of the target prefix programs (under the constraint).

        ``targets`` ``[b, s]`` token ids (0 after the end); ``kind``/``parent``/``arg``
        the port each target fills (:func:`~brickwork.studies.clevr.parse.grammar.
        port_sequence`); for ``arch="transducer"`` in reading order
        (:meth:`target_tokens`), summed over the alignments to the words.
        ``objective=True``: the training objective instead, which for the transducer
        adds the done state's contrast (``done_contrast``,
        :func:`~brickwork.studies.clevr.parse.transducer.transducer_objective`).
        """
        if self.arch == "transducer":
            if objective and self.done_contrast > 0:
                return transducer_objective(self, tokens, targets, kind, arg, self.done_contrast)
            return transducer_log_prob(self, tokens, targets, kind, arg)
        enc = self.encode(tokens)
        state = self.start(enc)
        allowed = ALLOWED.to(tokens.device)
        prev = torch.zeros_like(targets[:, 0])
        total = tokens.new_zeros(tokens.shape[0], dtype=torch.float)
        for t in range(targets.shape[1]):
            logits, state = self.step(enc, state, prev, kind[:, t], parent[:, t], arg[:, t])
            logits = logits.masked_fill(~allowed[kind[:, t]], -1e9)
            lp = torch.log_softmax(logits, -1).gather(1, targets[:, t : t + 1]).squeeze(1)
            total = total + torch.where(targets[:, t] > 0, lp, torch.zeros_like(lp))
            prev = targets[:, t]
        return total

    def decode(
        self,
        tokens: torch.Tensor,
        *,
        max_nodes: Sequence[int] | None = None,
        sample: bool = False,
        generator: torch.Generator | None = None,
        beam: int | None = None,
    ) -> Decoded:
        """Decode programs in prefix order; every step allows only the tokens the open
        port's kind accepts and whose cheapest completion fits ``max_nodes`` (default:
        twice the number of words plus 8).

        ``sample=True`` draws each token from the model's distribution (training by
        REINFORCE; ``log_prob`` keeps its gradient); otherwise the most likely allowed
        token is taken.
        """
        b = tokens.shape[0]
        n_words = (tokens != PAD).sum(1).tolist()
        budget = list(max_nodes) if max_nodes is not None else [2 * n + 8 for n in n_words]
        if self.arch == "transducer":
            width = self.beam if beam is None else beam
            if not sample and width > 1:
                return transducer_beam(self, tokens, budget, width)
            return transducer_decode(self, tokens, budget, sample, generator)
        stacks = [PortStack.start(m) for m in budget]
        enc = self.encode(tokens)
        state = self.start(enc)
        dev = tokens.device
        prev = torch.zeros(b, dtype=torch.long, device=dev)
        total = torch.zeros(b, device=dev)
        out: list[list[str]] = [[] for _ in range(b)]
        min_prob = [1.0] * b
        forced = [False] * b
        while not all(s.done for s in stacks):
            kind = torch.tensor([s.kind() for s in stacks], device=dev)
            par = torch.tensor([s.parent() for s in stacks], device=dev).reshape(b, 2)
            logits, state = self.step(enc, state, prev, kind, par[:, 0], par[:, 1])
            active = torch.tensor([not s.done for s in stacks], device=dev)
            choice, step_lp, bent = constrained_choice(
                logits, stacks, sample=sample, generator=generator
            )
            forced = [f or c for f, c in zip(forced, bent)]
            total = total + torch.where(active, step_lp, torch.zeros_like(step_lp))
            probs = step_lp.detach().exp().tolist()
            chosen = choice.tolist()
            for i, s in enumerate(stacks):
                if not s.done:
                    tok = TOKENS[chosen[i]]
                    out[i].append(tok)
                    s.push(tok)
                    min_prob[i] = min(min_prob[i], probs[i])
            prev = choice
        return Decoded(out, total, min_prob, forced)

    def target_tokens(self, program: Program) -> list[str]:
        """The token sequence this generator is trained to emit for ``program``: prefix
        order (:func:`~brickwork.studies.clevr.parse.grammar.prefix_tokens`), with
        filter chains in reading order for ``arch="transducer"``."""
        toks = prefix_tokens(program)
        return reading_order(toks) if self.arch == "transducer" else toks

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Greedy constrained decodes as token ids ``[b, longest]`` (0 after the end)."""
        dec = self.decode(tokens)
        n = max(len(t) for t in dec.tokens)
        return torch.tensor(
            [[TOKEN_INDEX[t] for t in row] + [0] * (n - len(row)) for row in dec.tokens],
            dtype=torch.long,
            device=tokens.device,
        )

    def describe(self) -> dict[str, Any]:
        return {"arch": self.arch, "dim": self.dim, "words": len(self.words)}
