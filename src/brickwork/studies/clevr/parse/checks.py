"""Checks a self-given label must pass besides the answer, read off the labelled questions.

The self-trained stage keeps a program the generator gave an answers-only question when
the symbolic executor answers the question right with it. A yes/no answer is right by
chance half the time, and a redundant filter left out changes no answer, so the answer
alone lets through two kinds of wrong labels that then come back as errors on deeper
questions (measured on the bench's N = 270 generator: 129 of 197 wrong labels among
9,694 kept were "Is the X the same shape as Y?" read as ``exist``, 66 left out a
filter the words name). Three checks, all learned from the N labelled questions, none
from the answers-only ones' programs:

- **Filter words.** A word that names a filter value in (almost) every labelled question
  it occurs in — *matte* -> ``filter_material[rubber]``, *balls* ->
  ``filter_shape[sphere]`` — must have that filter in the program, as many times as
  such words occur.
- **Cue words.** A word that, in (almost) every labelled question it occurs in, comes
  with as many tokens of one cue as it occurs (:data:`~brickwork.studies.clevr.parse.
  grammar.CUE_TOKENS`: an attribute, read by ``same_color``, ``query_color`` or
  ``equal_color``; a set operation; a relation) — *color*, *made* (of the same
  material), *either*, *both*, *left* — must have them in the program.
- **Frames.** The family must be one the labelled questions show after the same first
  words ("is the" opens ``equal_size`` and ``less_than``, never ``exist``); first words
  no labelled question starts with are not checked.

On the bench's data neither rejects the dataset's own program of any of the 9,730
answers-only questions with the filter check, and 65 with the frame check (frames whose
opening the 270 labelled questions never show with that family).

Example:
    >>> from brickwork.studies.clevr.parse.checks import LabelChecks
    >>> checks = LabelChecks(
    ...     filters={"matte": ("filter_material[rubber]", 40, 40)},
    ...     frames={("is", "there"): frozenset({"exist"})})
    >>> checks.reason("Is there a matte ball?", ["exist", "filter_shape[sphere]", "scene"])
    "'matte' names filter_material[rubber] (40 of 40 labelled questions); the program has 0 of 1"
    >>> checks.reason("Is there a matte ball?", ["count", "filter_material[rubber]",
    ...     "filter_shape[sphere]", "scene"])
    "family count never follows 'is there' in the labelled questions (seen: exist)"
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from brickwork.studies.clevr.parse.grammar import CUE_TOKENS
from brickwork.studies.clevr.parse.model import words_of

#: the checks' names, as they appear in reports
CHECKS = ("filter", "cue", "frame")


@dataclass(frozen=True)
class LabelChecks:
    """What the labelled questions fix about a program from its words alone.

    ``filters``: word -> the filter token it names, with the (labelled questions with the
    filter, labelled questions with the word) counts; ``cues``: word -> the cue it
    names (a key of :data:`~brickwork.studies.clevr.parse.grammar.CUE_TOKENS`), with
    the (labelled questions with as many tokens of it as the word occurs, labelled
    questions with the word) counts; ``frames``: the first ``opening`` words -> the
    families seen after them.

    Example:
        >>> q = ("How many red cubes are there?", ["count", "filter_color[red]",
        ...      "filter_shape[cube]", "scene"])
        >>> r = ("Are there any cubes?", ["exist", "filter_shape[cube]", "scene"])
        >>> b = ("Is there a red ball?", ["exist", "filter_color[red]",
        ...      "filter_shape[sphere]", "scene"])
        >>> checks = LabelChecks.from_labelled([q, r, b] * 3)
        >>> checks.filters["red"][0], sorted(checks.frames[("how", "many")])
        ('filter_color[red]', ['count'])
        >>> checks.check("How many red cubes are there?", ["count", "scene"])[0]
        'filter'
        >>> s = ("Are there cubes with the same color as the ball?", ["exist",
        ...      "filter_shape[cube]", "same_color", "unique", "filter_shape[sphere]", "scene"])
        >>> t = ("Are there red things with the same color as the cylinder?", ["exist",
        ...      "filter_color[red]", "same_color", "unique", "filter_shape[cylinder]", "scene"])
        >>> checks = LabelChecks.from_labelled([q, r, b, s, t] * 3)
        >>> checks.cues["color"]
        ('color', 6, 6)
        >>> checks.check("Are there balls with the same color as the cube?", ["exist",
        ...      "filter_shape[sphere]", "same_size", "unique", "filter_shape[cube]", "scene"])[0]
        'cue'
    """

    filters: Mapping[str, tuple[str, int, int]] = field(default_factory=dict)
    frames: Mapping[tuple[str, ...], frozenset[str]] = field(default_factory=dict)
    opening: int = 2
    cues: Mapping[str, tuple[str, int, int]] = field(default_factory=dict)

    @classmethod
    def from_labelled(
        cls,
        labelled: Iterable[tuple[str, Sequence[str]]],
        *,
        min_count: int = 3,
        min_share: float = 0.95,
        opening: int = 2,
        cue_min_count: int = 5,
    ) -> LabelChecks:
        """Checks from labelled (question text, prefix tokens) pairs: a word names a
        filter when it occurs in at least ``min_count`` labelled questions and the
        filter is in at least ``min_share`` of their programs; a word in at least
        ``cue_min_count`` labelled questions names a cue when, in at least
        ``min_share`` of them, the program has as many tokens of the cue as the word
        occurs (a filter word names no cue). Five, not three: with 90 labelled
        questions, "equal" came with a ``union`` in all three it was in."""
        seen: Counter[str] = Counter()
        with_filter: defaultdict[str, Counter[str]] = defaultdict(Counter)
        with_cue: defaultdict[str, Counter[str]] = defaultdict(Counter)
        frames: defaultdict[tuple[str, ...], set[str]] = defaultdict(set)
        for text, tokens in labelled:
            words = words_of(text)
            if not tokens:
                continue
            frames[tuple(words[:opening])].add(tokens[0])
            filters = {t for t in tokens if t.startswith("filter_")}
            reads = {c: sum(t in ts for t in tokens) for c, ts in CUE_TOKENS.items()}
            for w, k in Counter(words).items():
                seen[w] += 1
                with_filter[w].update(filters)
                with_cue[w].update(c for c, r in reads.items() if r >= k)
        named: dict[str, tuple[str, int, int]] = {}
        cues: dict[str, tuple[str, int, int]] = {}
        for w, n in seen.items():
            if n < min_count:
                continue
            best = with_filter[w].most_common(1)
            if best and best[0][1] >= min_share * n:
                named[w] = (best[0][0], best[0][1], n)
                continue
            top = with_cue[w].most_common(2)
            # one cue only: a word every question of which has two ("same" of "the
            # same size as … the same color as") names neither
            one = len(top) == 1 or (len(top) > 1 and top[1][1] < top[0][1])
            if n >= cue_min_count and top and top[0][1] >= min_share * n and one:
                cues[w] = (top[0][0], top[0][1], n)
        return cls(named, {k: frozenset(v) for k, v in frames.items()}, opening, cues)

    @property
    def filter_words(self) -> dict[str, str]:
        """Word -> the filter token it names (what
        :meth:`~brickwork.studies.clevr.parse.model.ProgramGenerator.set_filter_words`
        takes)."""
        return {w: token for w, (token, _, _) in self.filters.items()}

    @property
    def cue_words(self) -> dict[str, str]:
        """Word -> the cue it names (what
        :meth:`~brickwork.studies.clevr.parse.model.ProgramGenerator.set_cue_words`
        takes)."""
        return {w: cue for w, (cue, _, _) in self.cues.items()}

    def reason(self, text: str, tokens: Sequence[str]) -> str | None:
        """Why ``tokens`` cannot be the program of ``text`` (``None``: it passes)."""
        return self.check(text, tokens)[1]

    def check(self, text: str, tokens: Sequence[str]) -> tuple[str | None, str | None]:
        """The name of the first check ``tokens`` fails (:data:`CHECKS`) and why, or
        ``(None, None)``."""
        words = words_of(text)
        need: Counter[str] = Counter()
        first: dict[str, str] = {}
        for w in words:
            if w in self.filters:
                token = self.filters[w][0]
                need[token] += 1
                first.setdefault(token, w)
        have = Counter(tokens)
        for token, n in need.items():
            if have[token] < n:
                w = first[token]
                _, k, m = self.filters[w]
                return "filter", (
                    f"{w!r} names {token} ({k} of {m} labelled questions); "
                    f"the program has {have[token]} of {n}"
                )
        counts = Counter(words)
        for w, n in counts.items():
            if w not in self.cues:
                continue
            cue, k, m = self.cues[w]
            reads = sum(t in CUE_TOKENS[cue] for t in tokens)
            if reads < n:
                return "cue", (
                    f"{w!r} cues {cue} ({k} of {m} labelled questions); "
                    f"the program has {reads} of the {n} it needs"
                )
        families = self.frames.get(tuple(words[: self.opening]))
        if tokens and families is not None and tokens[0] not in families:
            opening = " ".join(words[: self.opening])
            return "frame", (
                f"family {tokens[0]} never follows {opening!r} in the labelled questions "
                f"(seen: {', '.join(sorted(families))})"
            )
        return None, None


__all__ = ["CHECKS", "LabelChecks"]
