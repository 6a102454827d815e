"""Collection types: a list of a neural type, padded and masked, batched.

A ``ListOf(item)`` value is a :class:`Padded` pair: ``values`` of shape
``[b, n, *item_shape]`` (the item type's axes with ``n`` inserted after the batch axis)
and a boolean ``mask`` of shape ``[b, n]`` (True where an element exists). Lists in one
batch may have different lengths; padded positions hold zeros and are ignored by every
combinator.

Example:
    >>> import torch
    >>> from brickwork.types import Bool
    >>> t = ListOf(Bool("b 1"))
    >>> t
    List[Bool['b 1']]
    >>> p = Padded.from_list([torch.ones(2, 1), torch.zeros(3, 1)])
    >>> p.values.shape, p.mask.sum(1).tolist()
    (torch.Size([2, 3, 1]), [2, 3])
    >>> t.check(p)
    ''
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from brickwork.errors import TypeMismatch
from brickwork.types import NeuralType, format_axes, parse_type, type_from_json


@dataclass(frozen=True)
class Padded:
    """A batch of variable-length lists: ``values[b, n, ...]`` and ``mask[b, n]``.

    Example:
        >>> p = Padded(torch.zeros(2, 4, 1), torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]]).bool())
        >>> p.lengths.tolist()
        [2, 4]
    """

    values: torch.Tensor
    mask: torch.Tensor

    def __post_init__(self) -> None:
        if self.values.dim() < 2 or self.mask.shape != self.values.shape[:2]:
            raise TypeMismatch(
                f"Padded: values {tuple(self.values.shape)} and mask "
                f"{tuple(self.mask.shape)} disagree; expected values [b, n, ...] "
                "and mask [b, n]"
            )
        if self.mask.dtype != torch.bool:
            object.__setattr__(self, "mask", self.mask.bool())

    @property
    def lengths(self) -> torch.Tensor:
        """Number of elements of every list (int64, ``[b]``)."""
        return self.mask.sum(1)

    @classmethod
    def from_list(cls, items: Sequence[torch.Tensor]) -> Padded:
        """Pad a Python list of per-list tensors ``[n_i, ...]`` into one batch."""
        if not items:
            raise TypeMismatch("Padded.from_list: no lists given")
        n = max(int(t.shape[0]) for t in items)
        rest = tuple(items[0].shape[1:])
        values = items[0].new_zeros((len(items), n, *rest))
        mask = torch.zeros(len(items), n, dtype=torch.bool, device=items[0].device)
        for i, t in enumerate(items):
            values[i, : t.shape[0]] = t
            mask[i, : t.shape[0]] = True
        return cls(values, mask)

    def to(self, device: str | torch.device) -> Padded:
        return Padded(self.values.to(device), self.mask.to(device))


@dataclass(frozen=True)
class ListOf:
    """The type of a list whose elements have the neural type ``item``.

    ``item``'s first axis is the batch axis; the padded values add an ``n`` axis after it.

    Example:
        >>> from brickwork.types import Features
        >>> ListOf(Features("b 1 8 8")).padded_axes
        'b n 1 8 8'
    """

    item: Any  # NeuralType or ListOf

    def __post_init__(self) -> None:
        if not isinstance(self.item, (NeuralType, ListOf)):
            raise TypeMismatch(
                f"ListOf: item must be a neural type, got {type(self.item).__name__}"
            )

    def __repr__(self) -> str:
        return f"List[{self.item!r}]"

    @property
    def padded_axes(self) -> str:
        """The axes of the padded values tensor."""
        if isinstance(self.item, ListOf):
            raise TypeMismatch("ListOf: nested lists have no padded axes")
        axes = list(self.item.axes)
        return format_axes([axes[0], "n", *axes[1:]])

    def to_json(self) -> dict[str, Any]:
        return {"kind": "List", "item": type_to_json(self.item)}

    def check(self, x: Any) -> str:
        """``''`` when ``x`` is a :class:`Padded` whose elements have the item type."""
        if not isinstance(x, Padded):
            return f"expected a Padded list, got {type(x).__name__}"
        if isinstance(self.item, ListOf):
            return ""
        flat = x.values[x.mask] if x.mask.any() else x.values.reshape(-1, *x.values.shape[2:])[:0]
        return self.item.check(flat)


CType = NeuralType | ListOf


def type_to_json(t: CType) -> dict[str, Any]:
    """JSON form of a neural or collection type (:func:`ctype_from_json` inverts it)."""
    return t.to_json()


def ctype_from_json(data: dict[str, Any]) -> CType:
    """Rebuild a neural or collection type from its JSON form."""
    if isinstance(data, dict) and data.get("kind") == "List":
        return ListOf(ctype_from_json(data["item"]))
    return type_from_json(data)


def parse_ctype(text: str) -> CType:
    """Parse ``Bool[b 1]`` or ``List[Features[b 1 8 8]]``.

    Example:
        >>> parse_ctype("List[Count[b 1]]")
        List[Count['b 1']]
    """
    text = text.strip()
    if text.startswith("List[") and text.endswith("]"):
        return ListOf(parse_ctype(text[5:-1]))
    return parse_type(text)


def is_list(t: CType) -> bool:
    return isinstance(t, ListOf)


def item_shape(t: NeuralType) -> tuple[Any, ...]:
    """The item's axes without the batch axis (``Bool['b 1']`` → ``(1,)``)."""
    return tuple(t.axes[1:])


def is_image(t: CType) -> bool:
    """An image-like item: 3 axes after the batch axis (channels, height, width)."""
    return isinstance(t, NeuralType) and len(t.axes) == 4


def is_vector(t: CType) -> bool:
    """A vector item: one fixed-size axis after the batch axis."""
    return isinstance(t, NeuralType) and len(t.axes) == 2 and isinstance(t.axes[1], int)


#: value-domain kinds that mark a decision (codes or a simplex), not a feature vector
DECISION_KINDS = frozenset({"Bool", "Count", "Probs", "OneHot", "Pointer", "SoftMask"})
#: decisions that carry one number per item (a new network reading one adds nothing a
#: library function cannot: thresholding, negation, casting)
SCALAR_DECISIONS = frozenset({"Bool", "Count"})
#: decisions that are distributions over classes (a new readout may decode them)
DISTRIBUTIONS = frozenset({"Probs", "OneHot", "Pointer"})
#: fold states with a neutral element (Count 0 for add/max, Bool false/true for or/and)
ACCUMULATORS = frozenset({"Bool", "Count"})
#: state kinds whose value domain is a monoid the standard library folds with (its steps)
MONOIDS: dict[str, tuple[str, ...]] = {"Count": ("add", "max"), "Bool": ("or", "and")}


def is_decision(t: CType) -> bool:
    """Whether ``t`` (or a list's items) is a decision type: ``Bool``, ``Count``,
    ``Probs`` … (not perception: images, ``Features``).

    Example:
        >>> from brickwork.types import Bool, Features
        >>> is_decision(ListOf(Bool("b 1"))), is_decision(Features("b 1 8 8"))
        (True, False)
    """
    if isinstance(t, ListOf):
        return is_decision(t.item)
    return t.kind in DECISION_KINDS


def hole_allowed(
    inputs: CType | tuple[CType, CType],
    output: CType,
    monoids: Collection[str] = frozenset(MONOIDS),
) -> str:
    """Why the typed search gives no new module of these port types (``''``: allowed).

    The value domains prune holes, with one reason each:

    * a unary hole reads perception (an image, ``Features``, a list of them) or a
      distribution (``Probs`` …), never a scalar decision (``Bool``, ``Count``) nor a
      list of decisions — a scalar is combined by library functions and fold steps;
    * a hole reading a distribution reduces it to a scalar decision (``Probs → Bool``,
      ``Probs → Count``): a new map from a distribution to a distribution is a
      relabelling of classes the registry module already separates;
    * a fold step's state is an accumulator with a neutral element (``Count``, ``Bool``):
      ``fold_l`` starts from it, and a distribution has none;
    * no learned fold step for a state whose value domain is a monoid the library folds
      with (``monoids``: the state kinds with a library step; by default ``Count`` —
      ``add``, ``max`` — and ``Bool`` — ``or``, ``and``). A count after one more item
      is the count before plus what that item contributes, ``s' = s + g(item)``: a
      step that extrapolates is ``add ∘ (id, g)``, and ``fold(add) ∘ map(g)`` — the
      same function — is already in the space, with ``g`` a registry module, a library
      function or a per-item hole (likewise ``fold(or) ∘ map(g)`` for "any", ``and``
      for "all"). A generic learned step ``(s, item) → s`` is a recurrent cell: it fits
      the list lengths it is trained on and drifts beyond them (measured: per-element
      error 0.81 and 1.01 at length 80 against 0.055 and 0.024 at 6–8), and validation
      on short lists cannot see it. A state kind with a neutral element but no library
      step (``monoids`` without it) still gets a step hole: there it is the only fold.

    Example:
        >>> from brickwork.types import Bool, Count, Features, Probs
        >>> hole_allowed(Features("b 1 8 8"), Bool("b 1")), hole_allowed(Probs("b 10"), Bool("b 1"))
        ('', '')
        >>> hole_allowed(Bool("b 1"), Count("b 1"))
        'a new module reads perception or a distribution, not the scalar decision Bool'
        >>> hole_allowed((Count("b 1"), Bool("b 1")), Count("b 1"))[:40]
        'a Count state is a monoid the library fo'
        >>> hole_allowed((Count("b 1"), Bool("b 1")), Count("b 1"), monoids=())
        ''
    """
    if isinstance(inputs, tuple):
        state = inputs[0]
        kind = getattr(state, "kind", "")
        if kind not in ACCUMULATORS:
            return f"a fold state needs a neutral element (Count, Bool), not {state!r}"
        if kind in monoids:
            steps = MONOIDS.get(kind, ())
            via = f"fold({steps[0]}) ∘ map(g)" if steps else "a library step over map(g)"
            return (
                f"a {kind} state is a monoid the library folds with "
                f"({', '.join(steps) or 'its steps'}): {via} is the step that extrapolates, "
                "and a learned step does not"
            )
        return ""
    if isinstance(inputs, ListOf):
        if is_decision(inputs):
            return f"a new list module reads perception, not {inputs!r}"
        return ""
    kind = inputs.kind
    if kind in SCALAR_DECISIONS:
        return f"a new module reads perception or a distribution, not the scalar decision {kind}"
    if kind in DISTRIBUTIONS and getattr(output, "kind", "") not in SCALAR_DECISIONS:
        return f"a new module reading the distribution {kind} reduces it to Bool or Count"
    if kind in DECISION_KINDS and kind not in DISTRIBUTIONS:
        return f"a new module does not read the decision {kind}"
    return ""


def vector_size(t: NeuralType) -> int:
    return int(t.axes[1])


# ----- abstractions used to count the search space ------------------------------------
#: a type as the enumerator sees it: a hashable key
TypeKey = Any


def abstract(t: CType, mode: str) -> TypeKey:
    """The key of ``t`` under an abstraction.

    ``typed`` keeps everything (value domain included); ``shape_only`` keeps the
    shape only (HOUDINI's tensor types: ``Bool['b 1']`` and ``Count['b 1']`` are the
    same); ``untyped`` maps every type, list or not, to one key.

    Example:
        >>> from brickwork.types import Bool, Count
        >>> abstract(Bool("b 1"), "shape_only") == abstract(Count("b 1"), "shape_only")
        True
        >>> abstract(Bool("b 1"), "typed") == abstract(Count("b 1"), "typed")
        False
    """
    if mode == "untyped":
        return "T"
    if isinstance(t, ListOf):
        return ("List", abstract(t.item, mode))
    if mode == "shape_only":
        return ("Tensor", item_shape(t))
    if mode == "typed":
        return repr(t)
    raise ValueError(f"unknown abstraction {mode!r}; expected typed, shape_only or untyped")
