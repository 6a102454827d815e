"""Question generator with controlled program depth, balanced answers, English text.

Programs are built compositionally from a small grammar and executed while they are
built, so every ``unique`` gets exactly one object and every answer is valid:

- *set* of depth d: a *base* of depth ``d - k`` followed by k filters (0–4, distinct
  attributes, CLEVR's order size, colour, material, shape);
- *base*: ``scene`` (depth 0); ``relate[r](object)`` or ``same_<attr>(object)`` (≥ 3);
  ``union``/``intersect`` of two sets (≥ 2; the second branch stays shallow, so the
  program size grows linearly with depth);
- *object* of depth d: ``unique(set of depth d - 1)`` whose filters are chosen to
  isolate one object of the base set.

Families (``question_family_index``) are the template shapes of :data:`FAMILIES`. A
question's depth is drawn uniformly from ``[min_depth, max_depth]``, then a family
among those possible at that depth; answers are balanced by drawing a target answer
(yes/no, or a count) first and sampling programs until one has it (a few tries, then
any valid answer is kept). Questions are unique per scene.

Example:
    >>> from brickwork.studies.clevr.data.scene import generate_scene
    >>> from brickwork.studies.clevr.data.executor import execute
    >>> scene = generate_scene(3, seed=0)
    >>> qs = generate_questions(scene, 5, min_depth=6, max_depth=6, seed=0)
    >>> [q.depth for q in qs], all(execute(q.program, scene) == q.answer for q in qs)
    ([6, 6, 6, 6, 6], True)
"""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from brickwork.studies.clevr.data.executor import SceneIndex
from brickwork.studies.clevr.data.phrasing import PHRASINGS, render_question, template_ids
from brickwork.studies.clevr.data.program import Program, ProgramNode
from brickwork.studies.clevr.data.question import Question
from brickwork.studies.clevr.data.scene import Scene
from brickwork.studies.clevr.data.vocabulary import ATTRIBUTES, RELATIONS, format_answer

logger = logging.getLogger(__name__)

_ATTRS: Final = tuple(ATTRIBUTES)  # size, color, material, shape
_QUERY_ATTRS: Final = ("color", "shape", "size", "material")

#: question families: index -> name (the top of the program's template)
FAMILIES: Final[tuple[str, ...]] = (
    "exist",
    "count",
    *(f"query_{a}" for a in _QUERY_ATTRS),
    *(f"equal_{a}" for a in _QUERY_ATTRS),
    "equal_integer",
    "less_than",
    "greater_than",
)


#: deepest program the generator reaches: its per-question search budget (400 steps)
#: builds every question asked up to depth 60 (measured on 8 scenes: 32 of 32 at depth
#: 60, 28 of 32 at 70, 10 of 32 at 90, each question slower); deeper requests are refused.
MAX_DEPTH: Final = 60


def family_min_depth(family: str) -> int:
    """Smallest program depth a family can have."""
    if family in ("exist", "count"):
        return 1
    if family.startswith("query_") or family in ("equal_integer", "less_than", "greater_than"):
        return 3
    return 4  # equal_<attr>


@dataclass(slots=True)
class _E:
    fn: str
    val: str | None
    kids: tuple[_E, ...]
    out: Any
    depth: int


_REL_TEXT: Final = {
    "left": "left of",
    "right": "right of",
    "front": "in front of",
    "behind": "behind",
}


def _a(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _set_text(e: _E, plural: bool) -> str:
    filters: dict[str, str] = {}
    while e.fn.startswith("filter_"):
        filters[e.fn[7:]] = e.val or ""
        e = e.kids[0]
    adjs = [filters[a] for a in ("size", "color", "material") if a in filters]
    noun = filters.get("shape", "thing")
    head = " ".join([*adjs, noun + ("s" if plural else "")])
    be, have = ("are", "have") if plural else ("is", "has")
    if e.fn == "scene":
        return head
    if e.fn == "relate":
        return f"{head} that {be} {_REL_TEXT[e.val or '']} {_obj_text(e.kids[0])}"
    if e.fn.startswith("same_"):
        other = "other " if plural else ""
        return f"{other}{head} that {have} the same {e.fn[5:]} as {_obj_text(e.kids[0])}"
    a, b = (_set_text(k, plural) for k in e.kids)
    if not plural:
        a, b = _a(a), _a(b)
    if e.fn == "union":
        return f"{head} that {be} either {a} or {b}"
    return f"{head} that {be} both {a} and {b}"


def _obj_text(e: _E) -> str:
    return "the " + _set_text(e.kids[0], plural=False)


def _question_text(family: str, root: _E, rng: random.Random) -> str:
    if family == "exist":
        e = root.kids[0]
        text = rng.choice(
            [f"Are there any {_set_text(e, True)}?", f"Is there {_a(_set_text(e, False))}?"]
        )
    elif family == "count":
        s = _set_text(root.kids[0], True)
        text = rng.choice([f"How many {s} are there?", f"What number of {s} are there?"])
    elif family.startswith("query_"):
        attr, o = family[6:], _obj_text(root.kids[0])
        text = rng.choice(
            {
                "color": [f"What color is {o}?", f"What is the color of {o}?"],
                "shape": [f"What shape is {o}?", f"What is the shape of {o}?"],
                "size": [f"What size is {o}?", f"How big is {o}?"],
                "material": [f"What material is {o}?", f"What is {o} made of?"],
            }[attr]
        )
    elif family.startswith("equal_") and family != "equal_integer":
        attr = family[6:]
        o1, o2 = (_obj_text(q.kids[0]) for q in root.kids)
        if attr == "material":
            text = rng.choice(
                [
                    f"Is {o1} made of the same material as {o2}?",
                    f"Do {o1} and {o2} have the same material?",
                ]
            )
        else:
            text = rng.choice(
                [f"Is {o1} the same {attr} as {o2}?", f"Do {o1} and {o2} have the same {attr}?"]
            )
    else:
        a, b = (_set_text(c.kids[0], True) for c in root.kids)
        text = rng.choice(
            {
                "equal_integer": [
                    f"Are there the same number of {a} and {b}?",
                    f"Is the number of {a} the same as the number of {b}?",
                ],
                "less_than": [
                    f"Are there fewer {a} than {b}?",
                    f"Is the number of {a} less than the number of {b}?",
                ],
                "greater_than": [
                    f"Are there more {a} than {b}?",
                    f"Is the number of {a} greater than the number of {b}?",
                ],
            }[family]
        )
    return text[0].upper() + text[1:]


def _linearize(root: _E) -> list[ProgramNode]:
    nodes: list[ProgramNode] = []

    def emit(e: _E) -> int:
        kids = tuple(emit(k) for k in e.kids)
        nodes.append(ProgramNode(e.fn, kids, (e.val,) if e.val is not None else ()))
        return len(nodes) - 1

    emit(root)
    return nodes


class _Builder:
    """Builds executed expression trees on one scene."""

    def __init__(
        self, ix: SceneIndex, rng: random.Random, tries: int = 4, budget: int = 400
    ) -> None:
        self.ix = ix
        self.rng = rng
        self.tries = tries
        # Failed attempts retry at every level of the recursion, so without a bound a
        # hard scene costs tries ** levels; each question attempt gets `budget` steps.
        self.budget = budget
        self.left = budget

    def _spend(self) -> bool:
        self.left -= 1
        return self.left >= 0

    def _members(self, mask: int) -> list[int]:
        return [i for i in range(self.ix.n) if mask >> i & 1]

    def _filters(self, base: _E, attrs: Sequence[str], values: Sequence[str]) -> _E:
        e = base
        for a, v in sorted(zip(attrs, values), key=lambda av: _ATTRS.index(av[0])):
            e = _E(f"filter_{a}", v, (e,), e.out & self.ix.filters[(a, v)], e.depth + 1)
        return e

    def base(self, b: int) -> _E | None:
        if b == 0:
            return _E("scene", None, (), self.ix.all, 0)
        if b < 2:
            return None
        rng = self.rng
        for _ in range(self.tries):
            if not self._spend():
                return None
            forms = ["union", "intersect"] + (["relate"] * 5 + ["same"] * 2 if b >= 3 else [])
            form = rng.choice(forms)
            if form == "relate" or form == "same":
                o = self.obj(b - 1)
                if o is None:
                    continue
                if form == "relate":
                    rel = rng.choice(RELATIONS)
                    return _E("relate", rel, (o,), self.ix.relate[rel][o.out], b)
                attr = rng.choice(_ATTRS)
                return _E(f"same_{attr}", None, (o,), self.ix.same[attr][o.out], b)
            first = self.set(b - 1, "nonempty")
            second = self.set(rng.randint(1, min(b - 1, 3)), "nonempty")
            if first is None or second is None or first.out == second.out:
                continue
            kids = (first, second) if rng.random() < 0.5 else (second, first)
            out = first.out | second.out if form == "union" else first.out & second.out
            return _E(form, None, kids, out, b)
        return None

    def _ks(self, d: int) -> list[int]:
        return [k for k in range(0, min(4, d) + 1) if d - k == 0 or d - k >= 2]

    def set(self, d: int, mode: str = "any") -> _E | None:
        """A set expression of depth d; mode 'any', 'nonempty' or 'single'."""
        rng = self.rng
        ks = self._ks(d)
        if not ks:
            return None
        for _ in range(self.tries):
            if not self._spend():
                return None
            # prefer few filters after deep bases, as CLEVR does
            k = rng.choice(ks) if rng.random() < 0.5 else min(ks, key=lambda x: abs(x - 1))
            base = self.base(d - k)
            if base is None or (mode != "any" and base.out == 0):
                continue
            members = self._members(base.out)
            if mode == "single":
                found = self._isolate(base, members, k)
                if found is not None:
                    return found
                continue
            attrs = rng.sample(_ATTRS, k)
            if members and rng.random() < 0.75:
                t = rng.choice(members)
                values = [self.ix.attr[a][t] for a in attrs]
            else:
                values = [rng.choice(ATTRIBUTES[a]) for a in attrs]
            e = self._filters(base, attrs, values)
            if mode == "nonempty" and e.out == 0:
                continue
            return e
        return None

    def _isolate(self, base: _E, members: list[int], k: int) -> _E | None:
        rng = self.rng
        rng.shuffle(members)
        combos = list(itertools.combinations(_ATTRS, k))
        rng.shuffle(combos)
        for t in members[:4]:
            for attrs in combos:
                m = base.out
                for a in attrs:
                    m &= self.ix.filters[(a, self.ix.attr[a][t])]
                if m == 1 << t:
                    return self._filters(base, attrs, [self.ix.attr[a][t] for a in attrs])
        return None

    def obj(self, d: int) -> _E | None:
        if d < 2:
            return None
        s = self.set(d - 1, "single")
        if s is None:
            return None
        return _E("unique", None, (s,), s.out.bit_length() - 1, d)

    def question(self, family: str, d: int) -> _E | None:
        self.left = self.budget
        rng = self.rng
        if family in ("exist", "count"):
            s = self.set(d - 1)
            if s is None:
                return None
            out = s.out != 0 if family == "exist" else s.out.bit_count()
            return _E(family, None, (s,), out, d)
        if family.startswith("query_"):
            o = self.obj(d - 1)
            if o is None:
                return None
            attr = family[6:]
            return _E(family, None, (o,), self.ix.attr[attr][o.out], d)
        if family in ("equal_integer", "less_than", "greater_than"):
            a = self.set(d - 2)
            b = self.set(rng.randint(0, d - 2))
            if a is None or b is None or _linearize(a) == _linearize(b):
                return None
            ca = _E("count", None, (a,), a.out.bit_count(), a.depth + 1)
            cb = _E("count", None, (b,), b.out.bit_count(), b.depth + 1)
            kids = (ca, cb) if rng.random() < 0.5 else (cb, ca)
            x, y = kids[0].out, kids[1].out
            out = (
                x == y if family == "equal_integer" else (x < y if family == "less_than" else x > y)
            )
            return _E(family, None, kids, out, d)
        # equal_<attr>: two different objects
        attr = family[6:]
        o1 = self.obj(d - 2)
        o2 = self.obj(rng.randint(2, d - 2))
        if o1 is None or o2 is None or o1.out == o2.out:
            return None
        q1 = _E(f"query_{attr}", None, (o1,), self.ix.attr[attr][o1.out], o1.depth + 1)
        q2 = _E(f"query_{attr}", None, (o2,), self.ix.attr[attr][o2.out], o2.depth + 1)
        kids = (q1, q2) if rng.random() < 0.5 else (q2, q1)
        return _E(family, None, kids, q1.out == q2.out, d)


def _target(family: str, n_objects: int, rng: random.Random) -> Any:
    if family == "count":
        return rng.randint(0, min(n_objects, 6))
    if family.startswith("query_"):
        return None  # attribute answers are balanced by the scene distribution
    return rng.random() < 0.5


def generate_questions(
    scene: Scene,
    n: int,
    *,
    min_depth: int = 1,
    max_depth: int = 10,
    families: Sequence[str] | None = None,
    seed: int = 0,
    first_question_index: int = 0,
    balance_tries: int = 12,
    phrasing: str = "v1",
    templates: Sequence[str] | None = None,
) -> list[Question]:
    """Generate ``n`` well-posed, distinct questions about one scene.

    Args:
        scene: the scene.
        n: how many questions (fewer only if the scene admits no more).
        min_depth: smallest program depth (≥ 1).
        max_depth: largest program depth; depths are drawn uniformly in between.
        families: family names to use (:data:`FAMILIES` by default).
        seed: dataset seed; questions depend only on (seed, scene.image_index).
        first_question_index: ``question_index`` of the first question.
        balance_tries: programs sampled per question to hit a drawn target answer.
        phrasing: ``"v1"`` (default: the original sentences, byte for byte) or ``"v2"``
            (:mod:`~brickwork.studies.clevr.data.phrasing`: synonyms, several templates
            per family; the same programs, and each question records ``template_id``).
        templates: with ``"v2"``, the template ids to draw from (``None``: all); a
            family left without any is not generated.

    Raises:
        ValueError: on an unknown family, a negative ``n``, or a depth range no family
            can reach (``max_depth`` above :data:`MAX_DEPTH` included).
    """
    fams = tuple(families) if families is not None else FAMILIES
    for f in fams:
        if f not in FAMILIES:
            raise ValueError(
                f"unknown question family {f!r}; expected one of {', '.join(FAMILIES)}"
            )
    if n < 0:
        raise ValueError(f"the number of questions must be 0 or more, got {n}")
    if not 1 <= min_depth <= max_depth:
        raise ValueError(f"need 1 <= min_depth <= max_depth, got {min_depth}, {max_depth}")
    if max_depth > MAX_DEPTH:
        raise ValueError(
            f"max_depth {max_depth} is deeper than the question generator reaches; "
            f"the reachable maximum is {MAX_DEPTH}"
        )
    if phrasing not in PHRASINGS:
        raise ValueError(f"unknown phrasing {phrasing!r}; expected one of {', '.join(PHRASINGS)}")
    frames: dict[str, list[int]] = {}
    if phrasing == "v2":
        allowed = set(template_ids()) if templates is None else set(templates)
        unknown = sorted(allowed - set(template_ids()))
        if unknown:
            raise ValueError(
                f"unknown template id(s) {', '.join(unknown)}; expected ids like 'count:2' "
                f"(family:index), e.g. {', '.join(template_ids('count'))}"
            )
        frames = {f: [int(t.split(":")[1]) for t in template_ids(f) if t in allowed] for f in fams}
        fams = tuple(f for f in fams if frames[f])
        if not fams:
            raise ValueError("no family has a template left among the templates given")
    elif templates is not None:
        raise ValueError("templates= needs phrasing='v2' (v1 has fixed sentences)")
    depths = [
        d for d in range(min_depth, max_depth + 1) if any(family_min_depth(f) <= d for f in fams)
    ]
    if not depths:
        raise ValueError(f"no family among {fams} reaches a depth in [{min_depth}, {max_depth}]")
    rng = random.Random(f"brickwork-clevr-questions:{seed}:{scene.image_index}")
    ix = SceneIndex(scene)
    builder = _Builder(ix, rng)
    seen: set[tuple[ProgramNode, ...]] = set()
    out: list[Question] = []
    misses = 0
    while len(out) < n and misses < 20 * n + 20:
        d = rng.choice(depths)
        family = rng.choice([f for f in fams if family_min_depth(f) <= d])
        target = _target(family, ix.n, rng)
        chosen: _E | None = None
        for _ in range(balance_tries):
            root = builder.question(family, d)
            if root is None:
                continue
            if tuple(_linearize(root)) in seen:
                continue
            chosen = root
            if target is None or root.out == target:
                break
        if chosen is None:
            misses += 1
            continue
        nodes = _linearize(chosen)
        seen.add(tuple(nodes))
        text = _question_text(family, chosen, rng)  # v1; also keeps v2's programs the same
        extra: dict[str, Any] = {}
        if phrasing == "v2":
            trng = random.Random(f"brickwork-clevr-text:{seed}:{scene.image_index}:{len(out)}")
            k = trng.choice(frames[family])
            text = render_question(family, chosen, k, trng)
            extra = {"template_id": f"{family}:{k}"}
        out.append(
            Question(
                image_index=scene.image_index,
                image_filename=scene.image_filename,
                question=text,
                program=Program(nodes),
                answer=format_answer(chosen.out),
                question_family_index=FAMILIES.index(family),
                question_index=first_question_index + len(out),
                split=scene.split,
                extra=extra,
            )
        )
    if len(out) < n:
        logger.debug("scene %d: generated %d of %d questions", scene.image_index, len(out), n)
    return out


__all__ = ["FAMILIES", "MAX_DEPTH", "family_min_depth", "generate_questions"]
