"""Varied question text (phrasing ``"v2"``): synonyms, several templates per family,
relative-clause variants and optional words, with each question's template id.

The default phrasing (``"v1"``, :func:`~brickwork.studies.clevr.data.question_generator.
generate_questions`) writes at most two sentences per family and is kept byte for byte;
``"v2"`` draws the same programs (the programs' random draws are unchanged) and writes
their text from :data:`TEMPLATES` with its own random stream, so a dataset's programs
do not depend on its phrasing.

Every ``v1`` sentence is also a ``v2`` sentence (templates ``<family>:0`` and
``<family>:1`` with the plain noun-phrase options), so a model trained on ``v2`` text
reads ``v1`` files.

Template ids are ``"<family>:<k>"`` (``"count:2"``); a question records its id under
``template_id`` and ``template_filename`` (the key CLEVR's release uses for its template
file). :data:`HELD_OUT` names one template per family whose words all occur in other
templates or phrases: train without them (``templates=`` of the generator) to
measure generalization to unseen sentence frames.

Example:
    >>> import random
    >>> from brickwork.studies.clevr.data.phrasing import TEMPLATES, render_question
    >>> len(TEMPLATES["count"]) >= 4
    True
    >>> sorted(HELD_OUT)[:2]
    ['count:3', 'equal_color:3']
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Final

#: phrasing versions of the generator: ``v1`` the original two sentences per family,
#: ``v2`` this module's templates
PHRASINGS: Final = ("v1", "v2")

NOUN: Final[dict[str, tuple[str, ...]]] = {
    "thing": ("thing", "object", "item"),
    "cube": ("cube", "block"),
    "sphere": ("sphere", "ball"),
    "cylinder": ("cylinder",),
}
ADJ: Final[dict[str, tuple[str, ...]]] = {
    "small": ("small", "tiny"),
    "large": ("large", "big"),
    "metal": ("metal", "metallic", "shiny"),
    "rubber": ("rubber", "matte"),
}
REL: Final[dict[str, tuple[str, ...]]] = {
    "left": ("left of", "to the left of", "on the left side of"),
    "right": ("right of", "to the right of", "on the right side of"),
    "front": ("in front of",),
    "behind": ("behind",),
}
_PLURAL: Final = {"thing": "things", "object": "objects", "item": "items", "block": "blocks"}


# ----------------------------------------------------------------------------- templates
# each template: a format string over noun phrases built below (``{O}``: ``{o}``
# capitalised). Index 0 and 1 are the v1 sentences.


def _q_templates(attr: str) -> list[str]:
    if attr in ("color", "shape"):
        pats = [
            f"What {attr} is {{o}}?",
            f"What is the {attr} of {{o}}?",
            f"{{O}} is what {attr}?",
            f"There is {{a}}; what {attr} is it?",
            f"There is {{a}}; what is its {attr}?",
        ]
    elif attr == "size":
        pats = [
            "What size is {o}?",
            "How big is {o}?",
            "What is the size of {o}?",
            "There is {a}; how big is it?",
            "There is {a}; what is its size?",
        ]
    else:
        pats = [
            "What material is {o}?",
            "What is {o} made of?",
            "What is the material of {o}?",
            "There is {a}; what is it made of?",
            "There is {a}; what is its material?",
        ]
    return pats


def _eq_templates(attr: str) -> list[str]:
    if attr == "material":
        same = "made of the same material as"
        return [
            "Is {o1} " + same + " {o2}?",
            "Do {o1} and {o2} have the same material?",
            "Does {o1} have the same material as {o2}?",
            "Is the material of {o1} the same as the material of {o2}?",
            "There is {a1}; is it " + same + " {o2}?",
        ]
    return [
        "Is {o1} the same " + attr + " as {o2}?",
        "Do {o1} and {o2} have the same " + attr + "?",
        "Does {o1} have the same " + attr + " as {o2}?",
        "Is the " + attr + " of {o1} the same as the " + attr + " of {o2}?",
        "There is {a1}; is it the same " + attr + " as {o2}?",
    ]


#: family -> its sentence templates (keyword parts: ``s`` plural set, ``a``/``a1`` an
#: indefinite object, ``o``/``o1``/``o2`` definite objects, ``sa``/``sb`` compared sets)
TEMPLATES: Final[dict[str, list[str]]] = {
    "exist": [
        "Are there any {s}?",
        "Is there {a}?",
        "Are any {s} visible?",
        "Are there {s}?",
        "Is there any {s}?",
    ],
    "count": [
        "How many {s} are there?",
        "What number of {s} are there?",
        "How many {s} are visible?",
        "What number of {s} are visible?",
        "What is the number of {s}?",
    ],
    **{f"query_{a}": _q_templates(a) for a in ("color", "shape", "size", "material")},
    **{f"equal_{a}": _eq_templates(a) for a in ("color", "shape", "size", "material")},
    "equal_integer": [
        "Are there the same number of {sa} and {sb}?",
        "Is the number of {sa} the same as the number of {sb}?",
        "Are there an equal number of {sa} and {sb}?",
        "Is the number of {sa} equal to the number of {sb}?",
        "Are there as many {sa} as {sb}?",
    ],
    "less_than": [
        "Are there fewer {sa} than {sb}?",
        "Is the number of {sa} less than the number of {sb}?",
        "Are there less {sa} than {sb}?",
        "Is the number of {sa} smaller than the number of {sb}?",
        "Are there fewer {sa} than there are {sb}?",
    ],
    "greater_than": [
        "Are there more {sa} than {sb}?",
        "Is the number of {sa} greater than the number of {sb}?",
        "Is the number of {sa} larger than the number of {sb}?",
        "Is the number of {sa} bigger than the number of {sb}?",
        "Are there more {sa} than there are {sb}?",
    ],
}

#: one template per family whose words all occur in the other templates or the noun
#: phrases (a sentence frame to hold out of training; no word of it is new)
HELD_OUT: Final[frozenset[str]] = frozenset(
    {
        "exist:4",
        "count:3",
        "query_color:2",
        "query_shape:2",
        "query_size:2",
        "query_material:2",
        "equal_color:3",
        "equal_shape:3",
        "equal_size:3",
        "equal_material:3",
        "equal_integer:3",
        "less_than:4",
        "greater_than:4",
    }
)


def template_ids(family: str | None = None) -> list[str]:
    """Every template id (of one family).

    Example:
        >>> template_ids("exist")[:2]
        ['exist:0', 'exist:1']
    """
    fams = [family] if family is not None else list(TEMPLATES)
    return [f"{f}:{k}" for f in fams for k in range(len(TEMPLATES[f]))]


# ----------------------------------------------------------------------------- phrases


def _a(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


class Phraser:
    """Writes the text of one executed program tree with random phrasing choices.

    ``plain=True`` makes the v1 choices (the first synonym, ``that is``), which the
    v1 templates ``<family>:0/1`` then reproduce exactly.
    """

    def __init__(self, rng: random.Random, plain: bool = False) -> None:
        self.rng = rng
        self.plain = plain

    def pick(self, options: Sequence[str]) -> str:
        return options[0] if self.plain else self.rng.choice(list(options))

    def head(self, filters: dict[str, str], plural: bool) -> str:
        adjs = []
        for a in ("size", "color", "material"):
            if a in filters:
                v = filters[a]
                adjs.append(self.pick(ADJ.get(v, (v,))))
        noun = self.pick(NOUN[filters.get("shape", "thing")])
        if plural:
            noun = _PLURAL.get(noun, noun + "s")
        return " ".join([*adjs, noun])

    def clause(self, plural: bool) -> str:
        """The words before a relation ("that is ", "which is ", or none)."""
        be = "are" if plural else "is"
        if self.plain:
            return f"that {be} "
        return self.pick([f"that {be} ", f"that {be} ", f"which {be} ", ""])

    def set_text(self, e: Any, plural: bool) -> str:
        filters: dict[str, str] = {}
        while e.fn.startswith("filter_"):
            filters[e.fn[7:]] = e.val or ""
            e = e.kids[0]
        head = self.head(filters, plural)
        be, have = ("are", "have") if plural else ("is", "has")
        if e.fn == "scene":
            return head
        if e.fn == "relate":
            rel = self.pick(REL[e.val or ""])
            return f"{head} {self.clause(plural)}{rel} {self.obj_text(e.kids[0])}"
        if e.fn.startswith("same_"):
            other = "other " if plural else ""
            attr = e.fn[5:]
            if attr == "material" and not self.plain:
                form = self.pick(
                    [
                        f"that {have} the same material as",
                        f"that {be} made of the same material as",
                    ]
                )
            else:
                form = (
                    f"that {have} the same {attr} as"
                    if self.plain
                    else self.pick(
                        [
                            f"that {have} the same {attr} as",
                            f"that {be} the same {attr} as",
                            f"with the same {attr} as",
                        ]
                    )
                )
            return f"{other}{head} {form} {self.obj_text(e.kids[0])}"
        a, b = (self.set_text(k, plural) for k in e.kids)
        if not plural:
            a, b = _a(a), _a(b)
        if e.fn == "union":
            return f"{head} that {be} either {a} or {b}"
        return f"{head} that {be} both {a} and {b}"

    def obj_text(self, e: Any) -> str:
        return "the " + self.set_text(e.kids[0], plural=False)

    def indefinite(self, e: Any) -> str:
        return _a(self.set_text(e.kids[0], plural=False))


def render_question(
    family: str, root: Any, template: int, rng: random.Random, *, plain: bool = False
) -> str:
    """The text of an executed program tree ``root`` of ``family`` with one template.

    ``plain=True`` makes the v1 phrase choices (first synonym, ``that is``).

    Example:
        >>> import random
        >>> from brickwork.studies.clevr.data.question_generator import _E
        >>> scene = _E("scene", None, (), 0, 0)
        >>> red = _E("filter_color", "red", (scene,), 0, 1)
        >>> render_question("count", _E("count", None, (red,), 0, 2), 2, random.Random(0))
        'How many red objects are visible?'
    """
    ph = Phraser(rng, plain)
    sent = TEMPLATES[family][template]
    kw: dict[str, str] = {}
    if family in ("exist", "count"):
        if family == "exist" and template == 1:
            kw["a"] = _a(ph.set_text(root.kids[0], False))
        else:
            kw["s"] = ph.set_text(root.kids[0], True)
    elif family.startswith("query_"):
        if template >= 3:
            kw["a"] = ph.indefinite(root.kids[0])
        else:
            kw["o"] = ph.obj_text(root.kids[0])
    elif family in ("equal_integer", "less_than", "greater_than"):
        kw["sa"], kw["sb"] = (ph.set_text(c.kids[0], True) for c in root.kids)
    else:
        q1, q2 = root.kids
        if template == 4:
            kw["a1"] = ph.indefinite(q1.kids[0])
        else:
            kw["o1"] = ph.obj_text(q1.kids[0])
        kw["o2"] = ph.obj_text(q2.kids[0])
    if "o" in kw:
        kw["O"] = kw["o"][0].upper() + kw["o"][1:]
    text = sent.format(**kw)
    return text[0].upper() + text[1:]


__all__ = ["HELD_OUT", "PHRASINGS", "TEMPLATES", "Phraser", "render_question", "template_ids"]
