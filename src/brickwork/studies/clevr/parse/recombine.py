"""Recombination: deeper labelled questions made from the labelled ones (no new labels).

Questions of depth ≤ 5 never show some configurations that deeper ones are made of: a
branch of "either … or …" that goes on with "that is behind …", a relation after an
object that is itself inside a relation chain three levels down. A model trained on
them has no evidence for those decisions, however local its features (with all 10,000
labelled programs the transducer still scores 0.72 at depth 6–10). CLEVR's language is
compositional, so the labelled questions already hold the parts: recombination swaps an
object phrase of one labelled question ("a cube", under a ``union``) for an object
phrase with a relative clause from another ("cube that is made of the same material as
the yellow metal object"), the words and the program subtree together, and repeats on
its own results, which gives labelled questions deeper than any labelled one. It is the
"good-enough compositional augmentation" of Andreas (ACL 2020) with the spans taken from
the generator's own alignment of tokens to words (:func:`~brickwork.studies.clevr.
parse.transducer.transducer_alignment`) instead of from shared contexts.

An object phrase is a chain of filters over its base, in reading order:

* *bare*: ``filter… scene`` — words from the first filter's word to the noun (the
  shape filter's word, else the word after the last filter), plus the plural mark;
* *relative*: ``filter… relate[r]|same_a unique <object phrase>`` — words from the
  first filter's word to the end of the inner phrase;
* *either/both*: ``filter… union|intersect <object phrase> <object phrase>`` — words
  from the first filter's word to the end of the second branch.

With no filter (``relate`` or ``union`` straight under ``count``: "things that are
left of …"), a phrase starts at its noun, the last noun before the relation's word;
the nouns are learned as the words that end bare phrases.

A bare phrase may be replaced by a relative or either/both one of the same number
(singular or plural). A phrase is only used when no token outside it is aligned inside
its words (``scene`` and ``unique``, which have no words of their own, are not
counted).

Example (word ids: 1 ``<bos>``, 2 ``<eos>``, 10 how, 11 many, 12 red, 13 cube, 14 the
plural mark, 20 left, 21 of, 22 the):

    >>> a = Phrasal((1, 10, 11, 12, 13, 14, 2),
    ...     ("count", "filter_color[red]", "filter_shape[cube]", "scene"),
    ...     (-1, 3, 4, 5), plural={14})
    >>> [(s.tokens, s.words, s.relative, s.plural) for s in object_phrases(a)]
    [((1, 4), (3, 5), False, True)]
"""

from __future__ import annotations

import random
from collections.abc import Container, Sequence
from dataclasses import dataclass

from brickwork.studies.clevr.parse.grammar import SIGNATURES


@dataclass(frozen=True)
class Phrasal:
    """A labelled question as the transducer reads it: word ids (``<bos>`` … ``<eos>``),
    reading-order program tokens (the root first) and each token's word position
    (-1 for the root); ``plural`` holds the id(s) of the plural mark."""

    words: tuple[int, ...]
    tokens: tuple[str, ...]
    align: tuple[int, ...]
    plural: Container[int]
    nouns: Container[int] = frozenset()


@dataclass(frozen=True)
class Span:
    """An object phrase: token range ``[start, end)``, word range ``[first, last]``,
    whether it has a clause (``relative``: a relation or either/both — a donor) and
    whether its noun is plural."""

    tokens: tuple[int, int]
    words: tuple[int, int]
    relative: bool
    plural: bool


_WORDLESS = frozenset({"scene", "unique"})
_SET_OPS = frozenset({"union", "intersect"})


def _is_filter(t: str) -> bool:
    return t.startswith("filter_")


def _is_relation(t: str) -> bool:
    return t.startswith("relate[") or t.startswith("same_")


def subtree_end(tokens: Sequence[str], i: int) -> int:
    """The end (exclusive) of the prefix-order subtree rooted at ``tokens[i]``."""
    need, j = 1, i
    while need:
        need += len(SIGNATURES[tokens[j]][0]) - 1
        j += 1
    return j


def _phrase(ex: Phrasal, i: int) -> Span | None:
    """The object phrase whose filter chain starts at token ``i`` (or None)."""
    t = ex.tokens
    c = i
    while c < len(t) and _is_filter(t[c]):
        c += 1
    if c >= len(t):
        return None
    first = ex.align[i] if c > i else _noun_before(ex, c)
    noun = _noun(ex, c) if c > i else first
    if first is None or noun is None:
        return None
    plural = noun + 1 < len(ex.words) and ex.words[noun + 1] in ex.plural
    if t[c] == "scene":
        if c == i:
            return None  # a phrase with no filter: no word says where it starts
        return Span((i, c + 1), (first, noun + 1 if plural else noun), False, plural)
    if _is_relation(t[c]) and c + 1 < len(t) and t[c + 1] == "unique":
        inner = _phrase(ex, c + 2)
        if inner is None or inner.tokens[0] != c + 2:
            return None
        return Span((i, inner.tokens[1]), (first, inner.words[1]), True, plural)
    if t[c] in _SET_OPS:  # "… that are either <phrase> or <phrase>"
        left = _phrase(ex, c + 1)
        right = _phrase(ex, left.tokens[1]) if left and left.tokens[0] == c + 1 else None
        if right is None or right.tokens[0] != subtree_end(t, c + 1):
            return None
        return Span((i, right.tokens[1]), (first, right.words[1]), True, plural)
    return None


def _noun(ex: Phrasal, c: int) -> int | None:
    """The position of the noun that ends the filter chain before token ``c``: the
    shape filter's word, else the word after the last filter (None past the words)."""
    shape = ex.tokens[c - 1].startswith("filter_shape")
    noun = ex.align[c - 1] + (0 if shape else 1)
    return noun if noun < len(ex.words) - 1 else None


def _noun_before(ex: Phrasal, c: int) -> int | None:
    """The position of the noun of a phrase with no filter ("things that are left of
    …"): the last noun before the word of token ``c`` and after every word of the
    tokens before it."""
    floor = max(
        (p for k, p in enumerate(ex.align[:c]) if k > 0 and ex.tokens[k] not in _WORDLESS),
        default=0,
    )
    for pos in range(ex.align[c] - 1, floor, -1):
        if ex.words[pos] in ex.nouns:
            return pos
    return None


def object_phrases(ex: Phrasal) -> list[Span]:
    """Every object phrase of ``ex`` whose words hold no token from outside it."""
    out = []
    for i, tok in enumerate(ex.tokens):
        if i == 0 or _is_filter(ex.tokens[i - 1]):
            continue
        if not (_is_filter(tok) or ((_is_relation(tok) or tok in _SET_OPS) and ex.nouns)):
            continue
        span = _phrase(ex, i)
        if span is None:
            continue
        (s, e), (a, b) = span.tokens, span.words
        if not 0 < a <= b < len(ex.words) - 1:
            continue
        # ``scene`` and ``unique`` have no words of their own: where they are emitted
        # says nothing about the phrase's extent
        lexical = [k > 0 and ex.tokens[k] not in _WORDLESS for k in range(len(ex.tokens))]
        inside = [ex.align[k] for k in range(s, e) if lexical[k]]
        outside = [p for k, p in enumerate(ex.align) if not s <= k < e and lexical[k]]
        if all(a <= p <= b for p in inside) and not any(a <= p <= b for p in outside):
            out.append(span)
    return out


def substitute(a: Phrasal, at: Span, b: Phrasal, donor: Span) -> Phrasal:
    """``a`` with its phrase ``at`` replaced by ``b``'s phrase ``donor`` (words, tokens
    and alignment; the donor's positions shifted to where its words now are)."""
    (s, e), (wa, wb) = at.tokens, at.words
    (ds, de), (da, db) = donor.tokens, donor.words
    words = (*a.words[:wa], *b.words[da : db + 1], *a.words[wb + 1 :])
    shift_in = wa - da
    shift_after = (db - da) - (wb - wa)
    align_a = [p + shift_after if p > wb else p for p in a.align]
    tokens = (*a.tokens[:s], *b.tokens[ds:de], *a.tokens[e:])
    align = (*align_a[:s], *(p + shift_in for p in b.align[ds:de]), *align_a[e:])
    return Phrasal(words, tokens, align, a.plural, a.nouns)


def nouns_of(examples: Sequence[Phrasal]) -> frozenset[int]:
    """The nouns of the questions: the words that end their bare object phrases (the
    shape filter's word, or the word after the last filter)."""
    found: set[int] = set()
    for ex in examples:
        for sp in object_phrases(ex):
            if not sp.relative:
                found.add(ex.words[sp.words[1] - 1 if sp.plural else sp.words[1]])
    return frozenset(found)


def recombine(
    examples: Sequence[Phrasal],
    n: int,
    seed: int,
    *,
    max_words: int = 80,
    max_tokens: int = 60,
    nest: float = 0.0,
) -> list[Phrasal]:
    """``n`` new questions, each one bare object phrase of a question replaced by a
    relative phrase of the same number from another; the questions it starts from are
    the labelled ones and the new ones made so far, so phrases nest deeper and deeper.

    ``nest``: the probability that a question is made from one made before rather than
    from any (with many labelled questions, 10,000 against 2,000 made, the made ones
    are otherwise rarely recombined again and stay one clause deeper than the
    labelled ones).

    Example ("how many red cubes" and "how many cubes left of the red cube"):
        >>> a = Phrasal((1, 10, 11, 12, 13, 14, 2),
        ...     ("count", "filter_color[red]", "filter_shape[cube]", "scene"),
        ...     (-1, 3, 4, 5), plural={14})
        >>> b = Phrasal((1, 10, 11, 13, 14, 20, 21, 22, 12, 13, 2),
        ...     ("count", "filter_shape[cube]", "relate[left]", "unique",
        ...      "filter_color[red]", "filter_shape[cube]", "scene"),
        ...     (-1, 3, 5, 7, 8, 9, 10), plural={14})
        >>> made = recombine([a, b], 1, seed=0)[0]
        >>> made.words
        (1, 10, 11, 13, 14, 20, 21, 22, 12, 13, 2)
    """
    rng = random.Random(seed)
    pool = list(examples)
    phrases = [object_phrases(ex) for ex in pool]
    donors = [(k, sp) for k, spans in enumerate(phrases) for sp in spans if sp.relative]
    if not donors:
        return []
    out: list[Phrasal] = []
    tries = 0
    while len(out) < n and tries < 50 * n:
        tries += 1
        if out and nest > 0 and rng.random() < nest:
            k = len(examples) + rng.randrange(len(out))
        else:
            k = rng.randrange(len(pool))
        sites = [sp for sp in phrases[k] if not sp.relative]
        if not sites:
            continue
        at = rng.choice(sites)
        dk, donor = donors[rng.randrange(len(donors))]
        if donor.plural != at.plural:
            continue
        new = substitute(pool[k], at, pool[dk], donor)
        if len(new.words) > max_words or len(new.tokens) > max_tokens:
            continue
        out.append(new)
        pool.append(new)
        spans = object_phrases(new)
        phrases.append(spans)
        donors += [(len(pool) - 1, sp) for sp in spans if sp.relative]
    return out


__all__ = [
    "Phrasal",
    "Span",
    "nouns_of",
    "object_phrases",
    "recombine",
    "subtree_end",
    "substitute",
]
