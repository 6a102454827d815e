"""Training the program generator: N labelled programs, then answers only (REINFORCE).

Stage 1 (*supervised*): maximum likelihood of the N labelled prefix programs (teacher
forcing, the constraint applied to every step's distribution). Stage 2 (*answers*):
the other training questions have only their answer; the generator samples programs
under the constraint, the **symbolic executor** runs them on the question's scene, and
the reward is 1 for the right answer (0 for a wrong or ill-posed program). The loss is
REINFORCE with a leave-one-out baseline over ``rl_samples`` samples per question, plus
the supervised loss on a labelled batch (so the N programs stay anchored). Between
them, for the transducer, the *recombined* stage: questions made from the labelled
ones (:mod:`~brickwork.studies.clevr.parse.recombine`), trained on with them, and kept
in stage 2's anchor batches. After them, the *self-trained* stage: the answers-only
questions whose decoded program the executor answers right become labelled
(:func:`pseudo_labelled`), donors of recombination and rows of more supervised steps,
in rounds. Every stage runs through :func:`brickwork.training.fit`, seeded.

Example:
    >>> cfg = ParseConfig(n_programs=4, sup_steps=2, rl_steps=0, dim=8)
    >>> cfg.n_programs, cfg.arch
    (4, 'transducer')
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch

from brickwork.errors import DataError
from brickwork.studies.clevr.data import Question, Scene, execute
from brickwork.studies.clevr.parse.checks import CHECKS, LabelChecks
from brickwork.studies.clevr.parse.grammar import (
    TOKEN_INDEX,
    from_prefix,
    port_sequence,
    prefix_tokens,
)
from brickwork.studies.clevr.parse.model import PLURAL, ProgramGenerator, split_plurals, words_of
from brickwork.training import FitConfig, Samples, fit

log = logging.getLogger(__name__)

#: depth buckets of the reports: seen in training (≤ 5) and two unseen ranges
BUCKETS: tuple[tuple[str, int, int], ...] = (("1-5", 1, 5), ("6-10", 6, 10), ("11-20", 11, 20))


def depth_bucket(depth: int) -> str:
    """``"1-5"``, ``"6-10"``, ``"11-20"`` or ``">20"``.

    Example:
        >>> depth_bucket(3), depth_bucket(12)
        ('1-5', '11-20')
    """
    for name, lo, hi in BUCKETS:
        if lo <= depth <= hi:
            return name
    return ">20"


@dataclass(frozen=True)
class ParseConfig:
    """Architecture, budgets and seed of one program-generator training.

    ``n_programs``: labelled programs (``None``: every training question's); the
    other training questions are used answers-only in stage 2 (``rl_steps`` > 0).
    ``select``: how the labelled questions are chosen (:func:`labelled_indices`).
    ``prev_dropout``: the transducer's previous-token dropout (ignored by the others).
    ``recombine``: questions made by recombining the labelled ones (transducer only),
    trained on with the labelled ones for ``recombine_steps`` after stage 1, about
    ``recombine_share`` of the rows recombined (the smaller part repeated).
    ``root_lexical``: the transducer's family classifier also takes every word's own
    (context-free) vote.
    ``done_contrast``: weight of the transducer's done-state contrast in every
    supervised loss (:func:`~brickwork.studies.clevr.parse.transducer.transducer_objective`:
    the words before the program is complete must not be skippable once it is).
    ``lookahead``: how many following words vote for the transducer's ``same_*`` and
    ``query_*`` tokens (their attribute is often named after the word they are emitted
    at); 0 for none. ``wide_values``: the transducer scores the query a value port
    forces (``query_size`` under ``equal_size``) against the queries of every attribute,
    so the body's words weigh in on the family's attribute. ``attr_pool``: how the
    transducer pools the words' votes for the family's attribute (``"lse"``, or
    ``"max"``, which does not grow with the clauses that name an attribute).
    ``attr_gate``: half-width of the window of words a gate on those votes reads (a
    word of a body clause, "… that has the same size as …", is not the frame's); 0 for
    none. ``filter_words``: the transducer's beam may not leave a word that names a
    filter in the labelled questions without that filter
    (:meth:`~brickwork.studies.clevr.parse.model.ProgramGenerator.set_filter_words`);
    ``cue_words``: nor a word that cues an attribute, a set operation or a relation
    without a token of it
    (:meth:`~brickwork.studies.clevr.parse.model.ProgramGenerator.set_cue_words`).
    ``fresh_state``: the transducer's decisions also know whether the previous token
    was emitted at the word under the pointer.
    ``self_train``: after stage 2, the *self-trained* stage: the answers-only questions
    whose decoded program the executor answers right become labelled
    (:func:`pseudo_labelled`; ``self_min_prob``: and whose least likely decision had at
    least that probability), are recombined with the labelled ones (transducer, with
    ``recombine`` > 0) and trained on for ``self_steps``; ``self_rounds`` times, each
    round labelling again with the generator the previous one left; ``self_check``: a
    label must also pass :class:`~brickwork.studies.clevr.parse.checks.LabelChecks`
    built from the labelled questions. ``self_nest``: the
    rounds' recombination's ``nest`` (:func:`~brickwork.studies.clevr.parse.recombine.recombine`).
    """

    n_programs: int | None = 270
    arch: str = "transducer"
    dim: int = 64
    dropout: float = 0.3
    prev_dropout: float = 0.3
    lexical: bool = True
    context: str = "near"
    root_pool: bool = True
    split_plural: bool = True
    seed: int = 0
    select: str = "mixed"
    sup_steps: int = 1600
    batch_size: int = 32
    lr: float = 3e-3
    root_lexical: bool = True
    done_contrast: float = 0.0
    lookahead: int = 6
    wide_values: bool = False
    attr_pool: str = "lse"
    attr_gate: int = 4
    filter_words: bool = True
    cue_words: bool = True
    fresh_state: bool = False
    recombine: int = 2000
    recombine_share: float = 0.75
    recombine_steps: int = 800
    rl_steps: int = 300
    rl_batch: int = 32
    rl_samples: int = 4
    rl_lr: float = 5e-4
    rl_supervised_weight: float = 1.0
    self_train: bool = True
    self_rounds: int = 3
    self_steps: int = 800
    self_min_prob: float = 0.0
    self_check: bool = True
    self_nest: float = 0.0
    max_train_seconds: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def vocabulary(texts: Sequence[str], split_plural: bool = True) -> list[str]:
    """The words of ``texts`` in order of first occurrence (with ``split_plural``, a
    plural whose singular occurs is replaced by the singular and the plural token).

    Example:
        >>> vocabulary(["How many cubes?", "How big is the cube?"])
        ['how', 'many', 'cube', '-s', 'big', 'is', 'the']
    """
    words: dict[str, None] = {}
    for t in texts:
        for w in words_of(t):
            words.setdefault(w, None)
    if not split_plural:
        return list(words)
    return list(dict.fromkeys(split_plurals(list(words), words)))


def data_digest(questions: Sequence[Question]) -> str:
    """sha256 (16 hex) of the questions' text, programs and answers."""
    h = hashlib.sha256()
    for q in questions:
        h.update(
            json.dumps([q.question, q.program.to_clevr_json(), q.answer], sort_keys=True).encode()
        )
    return h.hexdigest()[:16]


SELECTIONS = ("random", "cover", "mixed")


def labelled_indices(
    n_questions: int,
    n: int | None,
    seed: int,
    *,
    select: str = "random",
    texts: Sequence[str] = (),
) -> list[int]:
    """Which training questions keep their program.

    ``select="random"``: a seeded random choice. ``"cover"``: the questions to label
    are chosen **from their text alone** so that every word is seen labelled as often
    as the budget allows: greedily, the question whose words are least covered so far
    (each word type scores ``1 / (1 + times labelled)``), ties broken at random. At
    depth ≤ 5 relations are rare (about 3 % of the questions), so a random 270 holds a
    handful of them; covering the words ("behind", "same", "both") labels a few dozen.

    Example:
        >>> 3 in labelled_indices(6, 2, 0, select="cover",
        ...                  texts=["red", "red", "red", "blue cube", "red", "red"])
        True
    """
    idx = list(range(n_questions))
    if n is None or n >= n_questions:
        return idx
    if select not in SELECTIONS:
        raise DataError(f"labelled_indices: select {select!r}; expected one of {SELECTIONS}")
    rng = random.Random(f"brickwork-clevr-parse-labelled:{seed}")
    if select == "random":
        return sorted(rng.sample(idx, n))
    first = sorted(rng.sample(idx, n // 2)) if select == "mixed" else []
    if len(texts) != n_questions:
        raise DataError(
            f"labelled_indices: select='cover' needs the {n_questions} questions' texts, "
            f"got {len(texts)}"
        )
    vocab: dict[str, int] = {}
    rows = [{vocab.setdefault(w, len(vocab)) for w in words_of(t)} for t in texts]
    inc = torch.zeros(n_questions, len(vocab))
    for i, r in enumerate(rows):
        inc[i, list(r)] = 1.0
    counts = torch.zeros(len(vocab))
    tie = torch.tensor([rng.random() for _ in idx]) * 1e-3
    taken = torch.zeros(n_questions, dtype=torch.bool)
    chosen = list(first)
    for i in first:
        taken[i] = True
        counts += inc[i]
    for _ in range(n - len(first)):
        score = (inc @ (1.0 / (1.0 + counts)) + tie).masked_fill(taken, -1.0)
        pick = int(score.argmax())
        chosen.append(pick)
        taken[pick] = True
        counts += inc[pick]
    return sorted(chosen)


def supervised_samples(gen: ProgramGenerator, questions: Sequence[Question]) -> Samples:
    """Word ids, target prefix ids and each target's port, as :class:`Samples`."""
    tokens = gen.encode_texts([q.question for q in questions])
    return _target_samples(tokens, [gen.target_tokens(q.program) for q in questions])


def _target_samples(tokens: torch.Tensor, prefixes: Sequence[Sequence[str]]) -> Samples:
    """Samples of padded word ids ``tokens`` and their target token sequences."""
    n = max(len(p) for p in prefixes)
    tgt = torch.zeros(len(prefixes), n, dtype=torch.long)
    kind = torch.zeros_like(tgt)
    par = torch.zeros_like(tgt)
    arg = torch.zeros_like(tgt)
    for i, p in enumerate(prefixes):
        tgt[i, : len(p)] = torch.tensor([TOKEN_INDEX[t] for t in p])
        ports = torch.tensor(port_sequence(p))
        kind[i, : len(p)], par[i, : len(p)], arg[i, : len(p)] = ports.T
    return Samples({"tokens": tokens, "targets": tgt, "kind": kind, "parent": par, "arg": arg})


def recombined_samples(
    gen: ProgramGenerator, labelled: Sequence[Question], n: int, seed: int, nest: float = 0.0
) -> tuple[Samples, dict[str, Any]]:
    """``n`` labelled questions made from ``labelled`` by recombination
    (:mod:`~brickwork.studies.clevr.parse.recombine`), with the spans read from the
    trained transducer's alignment of ``labelled``; and a report (questions made,
    phrases and clause phrases found, the nouns learned, the made programs' median
    length in tokens)."""
    from brickwork.studies.clevr.parse.recombine import Phrasal, nouns_of, object_phrases
    from brickwork.studies.clevr.parse.recombine import recombine as _recombine
    from brickwork.studies.clevr.parse.transducer import transducer_alignment

    base = supervised_samples(gen, labelled)
    was = gen.training
    gen.eval()
    align = torch.cat(
        [
            transducer_alignment(
                gen, *(base[c][i : i + 256] for c in ("tokens", "targets", "kind", "arg"))
            )
            for i in range(0, len(base), 256)
        ]
    )
    gen.train(was)
    plural = frozenset({gen.index[PLURAL]}) if PLURAL in gen.index else frozenset()
    rows = []
    for r in range(len(labelled)):
        w = tuple(int(t) for t in base["tokens"][r] if int(t) != 0)
        toks = tuple(gen.target_tokens(labelled[r].program))
        rows.append(Phrasal(w, toks, tuple(align[r, : len(toks)].tolist()), plural))
    nouns = nouns_of(rows)
    rows = [replace(x, nouns=nouns) for x in rows]
    made = _recombine(rows, n, seed, nest=nest)
    phrases = [sp for x in rows for sp in object_phrases(x)]
    report: dict[str, Any] = {
        "questions": len(made),
        "phrases": len(phrases),
        "relative_phrases": sum(sp.relative for sp in phrases),
        "nouns": sorted(w for w, i in gen.index.items() if i in nouns),
        "tokens_median": sorted(len(x.tokens) for x in made)[len(made) // 2] if made else 0,
    }
    if not made:
        return base.select(torch.zeros(0, dtype=torch.long)), report
    width = max(len(x.words) for x in made)
    ids = torch.zeros(len(made), width, dtype=torch.long)
    for r, x in enumerate(made):
        ids[r, : len(x.words)] = torch.tensor(x.words)
    return _target_samples(ids, [list(x.tokens) for x in made]), report


def _pad_cat(parts: Sequence[Samples]) -> Samples:
    """Rows of several :class:`Samples` with the same columns, padded to one width."""
    cols: dict[str, torch.Tensor] = {}
    for name in parts[0]:
        width = max(p[name].shape[1] for p in parts)
        cols[name] = torch.cat(
            [torch.nn.functional.pad(p[name], (0, width - p[name].shape[1])) for p in parts]
        )
    return Samples(cols)


def _mixture(labelled: Samples, made: Samples, share: float) -> Samples | None:
    """Labelled and recombined rows, about ``share`` of them recombined: the smaller
    part repeated (so 270 labelled programs are not drowned by 2,000 made ones, and
    10,000 do not drown them)."""
    if not len(made):
        return None
    lab, rec = len(labelled), len(made)
    if rec / (lab + rec) > share:
        return _pad_cat([labelled] * max(1, round(rec * (1 - share) / (share * lab))) + [made])
    return _pad_cat([labelled] + [made] * max(1, round(share * lab / ((1 - share) * rec))))


def _supervised_loss(gen: ProgramGenerator, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    # the rows are padded to the longest of the whole set (a recombined question of 80
    # words); the batch is cut to its own longest, so the lattice is no larger than it
    words = int((batch["tokens"] != 0).sum(1).max())
    steps = int((batch["targets"] != 0).sum(1).max())
    lp = gen.teacher_forced(
        batch["tokens"][:, :words],
        batch["targets"][:, :steps],
        batch["kind"][:, :steps],
        batch["parent"][:, :steps],
        batch["arg"][:, :steps],
        objective=True,
    )
    return -lp.mean()


def _answer_of(program_tokens: Sequence[str], scene: Scene) -> str | None:
    try:
        return execute(from_prefix(program_tokens), scene)
    except DataError:
        return None  # ill-posed on this scene (unique of a non-singleton set)


def train_supervised(
    gen: ProgramGenerator, labelled: Sequence[Question], cfg: ParseConfig
) -> dict[str, Any]:
    """Stage 1: maximum likelihood of the labelled programs (through ``fit``)."""
    return _fit_supervised(gen, supervised_samples(gen, labelled), cfg, cfg.sup_steps)


def _fit_supervised(
    gen: ProgramGenerator, data: Samples, cfg: ParseConfig, steps: int
) -> dict[str, Any]:
    per_epoch = max(1, math.ceil(len(data) / cfg.batch_size))
    epochs = max(1, math.ceil(steps / per_epoch))
    res = fit(
        gen,
        _supervised_loss,
        data,
        config=FitConfig(
            epochs=epochs,
            batch_size=cfg.batch_size,
            lr=cfg.lr,
            seed=cfg.seed,
            max_steps=steps,
            grad_clip=1.0,
            scheduler="cosine",
            max_train_time=cfg.max_train_seconds,
        ),
    )
    return {
        "steps": res.steps,
        "seconds": res.wall_time,
        "final_loss": res.history[-1]["train_loss"] if res.history else None,
    }


def train_reinforce(
    gen: ProgramGenerator,
    unlabelled: Sequence[Question],
    scenes: Mapping[int, Scene],
    labelled: Sequence[Question],
    cfg: ParseConfig,
    *,
    anchor: Samples | None = None,
) -> dict[str, Any]:
    """Stage 2: REINFORCE on answers-only questions, reward from the symbolic executor.

    The supervised anchor batches come from ``labelled`` (or ``anchor`` when given:
    the labelled and recombined questions' samples)."""
    if cfg.rl_steps <= 0 or not unlabelled:
        return {"steps": 0, "seconds": 0.0}
    tokens = gen.encode_texts([q.question for q in unlabelled])
    data = Samples({"tokens": tokens})
    sup = anchor if anchor is not None else supervised_samples(gen, labelled) if labelled else None
    gen_rng = torch.Generator().manual_seed(cfg.seed + 17)
    pick = random.Random(cfg.seed + 29)
    rewards: list[float] = []

    def loss(model: ProgramGenerator, batch: Samples) -> torch.Tensor:
        ids = batch.ids.tolist()
        k = cfg.rl_samples
        toks = batch["tokens"].repeat_interleave(k, 0)
        # drop the padding columns this batch does not use
        width = int((toks != 0).sum(1).max())
        dec = model.decode(toks[:, :width], sample=True, generator=gen_rng)
        r = torch.tensor(
            [
                float(
                    _answer_of(dec.tokens[j], scenes[unlabelled[ids[j // k]].image_index])
                    == unlabelled[ids[j // k]].answer
                )
                for j in range(len(dec.tokens))
            ]
        ).reshape(-1, k)
        rewards.append(float(r.mean()))
        base = (r.sum(1, keepdim=True) - r) / max(1, k - 1)  # leave-one-out
        adv = (r - base).reshape(-1).to(dec.log_prob.device)
        out = -(adv * dec.log_prob).mean()
        if sup is not None and cfg.rl_supervised_weight > 0:
            rows = torch.tensor([pick.randrange(len(sup)) for _ in range(cfg.batch_size)])
            out = out + cfg.rl_supervised_weight * _supervised_loss(
                model, {name: sup[name][rows] for name in sup}
            )
        return out

    per_epoch = max(1, math.ceil(len(unlabelled) / cfg.rl_batch))
    res = fit(
        gen,
        loss,
        data,
        config=FitConfig(
            epochs=max(1, math.ceil(cfg.rl_steps / per_epoch)),
            batch_size=cfg.rl_batch,
            lr=cfg.rl_lr,
            seed=cfg.seed + 1,
            max_steps=cfg.rl_steps,
            grad_clip=1.0,
            max_train_time=cfg.max_train_seconds,
        ),
    )
    tail = rewards[-max(1, len(rewards) // 5) :]
    return {
        "steps": res.steps,
        "seconds": res.wall_time,
        "reward_first": rewards[0] if rewards else None,
        "reward_last": sum(tail) / len(tail) if tail else None,
    }


def pseudo_labelled(
    gen: ProgramGenerator,
    questions: Sequence[Question],
    scenes: Mapping[int, Scene],
    *,
    min_prob: float = 0.0,
    checks: LabelChecks | None = None,
    batch: int = 256,
) -> tuple[list[Question], dict[str, Any]]:
    """The answers-only ``questions`` whose decoded program (beam search, under the
    constraint) the symbolic executor answers right on their scene, each with that
    program in place of its own: labels the generator gave itself, checked by the
    answer. ``min_prob``: keep only decodes whose least likely decision had at least
    that probability; ``checks``: and that pass what the labelled questions fix from the
    words (:class:`~brickwork.studies.clevr.parse.checks.LabelChecks`: the filters the
    words name, the family the opening words allow). Returns them and a report
    (questions decoded, kept, rejected by each check, seconds).

    The question's own program is never read: a question file without programs works
    the same (a yes/no answer right by chance keeps a wrong program; the report of a
    study that has the programs says how often, see the docs).

    Example:
        >>> from brickwork.studies.clevr.parse.model import ProgramGenerator
        >>> gen = ProgramGenerator(["how", "many", "things"], dim=8)
        >>> pseudo_labelled(gen, [], {})[1]["kept"]
        0
    """
    t0 = time.perf_counter()
    was = gen.training
    gen.eval()
    kept: list[Question] = []
    rejected = dict.fromkeys(CHECKS, 0)
    with torch.no_grad():
        for a in range(0, len(questions), batch):
            qs = questions[a : a + batch]
            dec = gen.decode(gen.encode_texts([q.question for q in qs]))
            for q, toks, p in zip(qs, dec.tokens, dec.min_prob):
                if p < min_prob or q.answer is None or q.image_index not in scenes:
                    continue
                if _answer_of(toks, scenes[q.image_index]) != q.answer:
                    continue
                failed = checks.check(q.question, toks)[0] if checks is not None else None
                if failed is not None:
                    rejected[failed] += 1
                    continue
                kept.append(replace(q, program=from_prefix(toks)))
    gen.train(was)
    report = {
        "decoded": len(questions),
        "kept": len(kept),
        "rejected": rejected,
        "min_prob": min_prob,
        "seconds": time.perf_counter() - t0,
    }
    return kept, report


def evaluate_programs(
    gen: ProgramGenerator,
    questions: Sequence[Question],
    scenes: Mapping[int, Scene] | None = None,
    batch: int = 256,
) -> dict[str, Any]:
    """Exact-program accuracy overall and by depth bucket (and executor answer accuracy
    of the generated programs when ``scenes`` are given)."""
    gen.eval()
    hits: dict[str, list[int]] = defaultdict(list)
    answers: list[int] = []
    with torch.no_grad():
        for a in range(0, len(questions), batch):
            qs = questions[a : a + batch]
            dec = gen.decode(gen.encode_texts([q.question for q in qs]))
            for q, toks in zip(qs, dec.tokens):
                ok = int(toks == prefix_tokens(q.program))
                hits["all"].append(ok)
                hits[depth_bucket(q.depth)].append(ok)
                if scenes is not None:
                    answers.append(int(_answer_of(toks, scenes[q.image_index]) == q.answer))
    out: dict[str, Any] = {k: sum(v) / len(v) for k, v in hits.items() if v}
    out["n"] = {k: len(v) for k, v in hits.items()}
    if answers:
        out["executor_answer_accuracy"] = sum(answers) / len(answers)
    return out


def _label_checks(labelled: Sequence[Question], min_count: int = 3) -> LabelChecks:
    """:class:`~brickwork.studies.clevr.parse.checks.LabelChecks` of the labelled
    questions (their words and programs)."""
    pairs = ((q.question, prefix_tokens(q.program)) for q in labelled)
    return LabelChecks.from_labelled(pairs, min_count=min_count)


def _train_self(
    gen: ProgramGenerator,
    labelled: Sequence[Question],
    unlabelled: Sequence[Question],
    scenes: Mapping[int, Scene],
    cfg: ParseConfig,
) -> dict[str, Any]:
    """The self-trained stage: ``self_rounds`` rounds of pseudo-labels, recombined with
    the labelled questions, and ``self_steps`` supervised steps on the mixture.

    Each round's report also says how many of the kept programs are the dataset's own
    (``precision``): measured for the report only, the labels are never read."""
    t0 = time.perf_counter()
    rounds: list[dict[str, Any]] = []
    own = {(q.image_index, q.question): q.program for q in unlabelled}
    checks = _label_checks(labelled) if cfg.self_check else None
    for r in range(cfg.self_rounds):
        t1 = time.perf_counter()
        pseudo, rep = pseudo_labelled(
            gen, unlabelled, scenes, min_prob=cfg.self_min_prob, checks=checks
        )
        same = sum(own.get((q.image_index, q.question)) == q.program for q in pseudo)
        rep["precision"] = same / len(pseudo) if pseudo else None
        pool = [*labelled, *pseudo]
        data = supervised_samples(gen, pool)
        if cfg.recombine > 0 and cfg.arch == "transducer":
            made, rec = recombined_samples(
                gen, pool, cfg.recombine, cfg.seed + 43 + r, nest=cfg.self_nest
            )
            rep["recombined"] = rec
            data = _mixture(data, made, cfg.recombine_share) or data
        gen.train()
        rep.update(_fit_supervised(gen, data, cfg, cfg.self_steps))
        rep["seconds"] = time.perf_counter() - t1
        rounds.append(rep)
        log.info(
            "self-trained round %d: %d of %d answers-only questions kept (%.1f s)",
            r + 1,
            rep["kept"],
            rep["decoded"],
            rep["seconds"],
        )
    return {
        "rounds": rounds,
        "kept": rounds[-1]["kept"] if rounds else 0,
        "steps": sum(x["steps"] for x in rounds),
        "seconds": time.perf_counter() - t0,
    }


def train_program_generator(
    train: Sequence[Question],
    scenes: Mapping[int, Scene],
    cfg: ParseConfig,
    *,
    val: tuple[Sequence[Question], Mapping[int, Scene]] | None = None,
    val_deep: Sequence[Question] = (),
) -> tuple[ProgramGenerator, dict[str, Any]]:
    """Train a generator on ``train`` (N labelled, the rest answers-only); ``scenes``
    are the training questions' scenes by image index, ``val`` optional validation
    questions with theirs, ``val_deep`` deeper questions scored by exact program only
    (``val_deep`` in each stage's report).

    Returns the generator and a report: config, data digest, labelled/answers-only
    counts, and per stage its steps, seconds and (with ``val``) exact-program accuracy.
    """
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    gen = ProgramGenerator(
        vocabulary([q.question for q in train], cfg.split_plural),
        dim=cfg.dim,
        arch=cfg.arch,
        dropout=cfg.dropout,
        lexical=cfg.lexical and cfg.arch != "seq2seq",
        context=cfg.context,
        root_pool=cfg.root_pool,
        split_plural=cfg.split_plural,
        prev_dropout=cfg.prev_dropout if cfg.arch == "transducer" else 0.0,
        root_lexical=cfg.root_lexical and cfg.arch == "transducer",
        done_contrast=cfg.done_contrast if cfg.arch == "transducer" else 0.0,
        lookahead=cfg.lookahead if cfg.arch == "transducer" else 0,
        wide_values=cfg.wide_values and cfg.arch == "transducer",
        attr_pool=cfg.attr_pool,
        attr_gate=cfg.attr_gate if cfg.arch == "transducer" else 0,
        fresh_state=cfg.fresh_state and cfg.arch == "transducer",
    )
    lab_idx = set(
        labelled_indices(
            len(train),
            cfg.n_programs,
            cfg.seed,
            select=cfg.select,
            texts=[q.question for q in train],
        )
    )
    labelled = [q for i, q in enumerate(train) if i in lab_idx]
    unlabelled = [q for i, q in enumerate(train) if i not in lab_idx]
    if cfg.arch == "transducer" and (cfg.filter_words or cfg.cue_words):
        # words in five labelled questions, not three as for the self-labels' filter
        # check: the beam's rules are hard, and three questions of 50 can share a
        # filter by chance
        words = _label_checks(labelled, min_count=5)
        gen.set_filter_words(words.filter_words if cfg.filter_words else {})
        gen.set_cue_words(words.cue_words if cfg.cue_words else {})
    report: dict[str, Any] = {
        "config": cfg.to_json(),
        "data_digest": data_digest(train),
        "labelled": len(labelled),
        "answers_only": len(unlabelled),
        "labelled_words": len(vocabulary([q.question for q in labelled], cfg.split_plural)),
        "words": len(gen.words),
        "filter_words": gen.config.get("filter_words", {}),
        "cue_words": gen.config.get("cue_words", {}),
    }
    report["supervised"] = train_supervised(gen, labelled, cfg)
    if val:
        report["supervised"]["val"] = evaluate_programs(gen, *val)
    if val_deep:
        report["supervised"]["val_deep"] = evaluate_programs(gen, val_deep)
    anchor = None
    if cfg.recombine > 0 and cfg.arch == "transducer" and labelled:
        t1 = time.perf_counter()
        made, rec = recombined_samples(gen, labelled, cfg.recombine, cfg.seed + 41)
        anchor = _mixture(supervised_samples(gen, labelled), made, cfg.recombine_share)
        if anchor is not None:
            gen.train()
            rec.update(_fit_supervised(gen, anchor, cfg, cfg.recombine_steps))
        rec["seconds"] = time.perf_counter() - t1
        report["recombined"] = rec
        if val:
            rec["val"] = evaluate_programs(gen, *val)
        if val_deep:
            rec["val_deep"] = evaluate_programs(gen, val_deep)
    if cfg.rl_steps > 0 and unlabelled:
        gen.train()
        report["answers"] = train_reinforce(gen, unlabelled, scenes, labelled, cfg, anchor=anchor)
        if val:
            report["answers"]["val"] = evaluate_programs(gen, *val)
        if val_deep:
            report["answers"]["val_deep"] = evaluate_programs(gen, val_deep)
    if cfg.self_train and cfg.self_rounds > 0 and unlabelled:
        report["self"] = _train_self(gen, labelled, unlabelled, scenes, cfg)
        if val:
            report["self"]["val"] = evaluate_programs(gen, *val)
        if val_deep:
            report["self"]["val_deep"] = evaluate_programs(gen, val_deep)
    report["seconds"] = time.perf_counter() - t0
    gen.eval()
    return gen, report


__all__ = [
    "BUCKETS",
    "SELECTIONS",
    "ParseConfig",
    "data_digest",
    "depth_bucket",
    "evaluate_programs",
    "labelled_indices",
    "pseudo_labelled",
    "recombined_samples",
    "supervised_samples",
    "train_program_generator",
    "train_reinforce",
    "train_supervised",
    "vocabulary",
]
