"""Default losses and scores chosen from a port's neural data type.

Example:
    >>> import torch
    >>> from brickwork.types import Probs
    >>> p = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    >>> round(float(type_loss(Probs("b k"), p, torch.tensor([0, 1]))), 3)
    0.164
    >>> type_score(Probs("b k"), p, torch.tensor([0, 1]))
    1.0
    >>> resolve_callable("torch.nn.functional:mse_loss") is torch.nn.functional.mse_loss
    True
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Collection
from typing import Any

import torch
import torch.nn.functional as F

from brickwork.errors import TrainingError
from brickwork.types import NeuralType


def type_loss(
    t: NeuralType, pred: torch.Tensor, target: torch.Tensor, pos_weight: float | None = None
) -> torch.Tensor:
    """The natural loss for a prediction of type ``t`` against ``target``.

    Chosen by the type's declared family: distributions (``t.is_distribution``):
    negative log-likelihood (class indices) or cross-entropy (soft targets); logits
    (``t.is_logits``): cross-entropy; masks/booleans (``t.is_mask``): binary
    cross-entropy (optional ``pos_weight`` for rare positives); everything else: mean
    squared error.
    """
    if t.is_categorical:
        logp = (
            torch.log(pred.clamp_min(1e-8))
            if t.is_distribution
            else torch.log_softmax(pred, dim=-1)
        )
        if not target.is_floating_point():
            return F.nll_loss(logp.reshape(-1, logp.shape[-1]), target.reshape(-1))
        return -(target * logp).sum(-1).mean()
    if t.is_mask:
        p = pred.clamp(1e-6, 1 - 1e-6)
        target = target.to(p.dtype)
        w = None
        if pos_weight is not None:
            w = torch.where(target > 0.5, torch.full_like(p, pos_weight), torch.ones_like(p))
        return F.binary_cross_entropy(p, target, weight=w)
    return F.mse_loss(pred, target.to(pred.dtype))


@torch.no_grad()
def type_score(t: NeuralType, pred: torch.Tensor, target: torch.Tensor) -> float:
    """A higher-is-better score: accuracy for classes and masks, minus MSE otherwise."""
    if t.is_categorical:
        labels = target if not target.is_floating_point() else target.argmax(-1)
        return float((pred.argmax(-1) == labels).float().mean())
    if t.is_mask:
        return float(((pred > 0.5) == (target > 0.5)).float().mean())
    return -float(F.mse_loss(pred, target.to(pred.dtype)))


_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def resolve_callable(
    name: str, *, allowed_modules: Collection[str] | None = None, where: str = ""
) -> Callable[..., Any]:
    """The function an importable name points to: ``"pkg.mod:fn"`` or ``"pkg.mod.fn"``.

    This is how plan files name custom losses and metrics. ``"pkg.mod:Obj.attr"`` reaches
    attributes of module-level objects. With the dotted form the longest importable
    module prefix is used.

    Args:
        name: the importable name.
        allowed_modules: when given, the module must be one of these (or inside one of
            them, e.g. ``"mypkg"`` allows ``"mypkg.losses"``), or a ``brickwork`` module;
            anything else is refused before it is imported.
        where: prefix for error messages (e.g. ``"plan.json, module 'find'"``).

    Raises:
        TrainingError: the name is malformed, not allowed, its module does not import,
            it has no such attribute, or the object is not callable.

    Example:
        >>> resolve_callable("torch.nn.functional.l1_loss").__name__
        'l1_loss'
        >>> resolve_callable("math:nope")
        Traceback (most recent call last):
        ...
        brickwork.errors.TrainingError: 'math:nope': module 'math' has no attribute 'nope';
        expected an importable function such as 'mypkg.losses:my_loss'
    """
    prefix = f"{where}: " if where else ""
    hint = "expected an importable function such as 'mypkg.losses:my_loss'"
    if not isinstance(name, str):
        raise TrainingError(
            f"{prefix}{name!r} is not a function name (got {type(name).__name__}); {hint}"
        )
    text = name.strip()
    if ":" in text:
        mod_name, _, attr = text.partition(":")
        candidates = [(mod_name, attr)]
    else:
        parts = text.split(".")
        candidates = [
            (".".join(parts[:i]), ".".join(parts[i:])) for i in range(len(parts) - 1, 0, -1)
        ]
    if not candidates or not all(
        _DOTTED.fullmatch(m) and _DOTTED.fullmatch(a) for m, a in candidates
    ):
        raise TrainingError(f"{prefix}{name!r} is not an importable name; {hint}")

    def allowed(module: str) -> bool:
        if allowed_modules is None or module == "brickwork" or module.startswith("brickwork."):
            return True
        return any(module == a or module.startswith(a + ".") for a in allowed_modules)

    last_error = ""
    for mod_name, attr in candidates:
        if not allowed(mod_name):
            raise TrainingError(
                f"{prefix}{name!r}: module {mod_name!r} is not in the allowed "
                f"imports {sorted(allowed_modules or ())}; add it (e.g. "
                f"--import {mod_name} / imports=[{mod_name!r}])"
            )
        try:
            obj: Any = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:
            if (
                exc.name is not None
                and mod_name != exc.name
                and not mod_name.startswith(exc.name + ".")
            ):
                raise TrainingError(
                    f"{prefix}{name!r}: importing {mod_name!r} failed: {exc}; "
                    "install the missing package"
                ) from None
            last_error = f"no module named {mod_name!r}"
            continue
        except Exception as exc:
            raise TrainingError(
                f"{prefix}{name!r}: importing {mod_name!r} failed: {type(exc).__name__}: {exc}"
            ) from None
        for i, part in enumerate(attr.split(".")):
            if not hasattr(obj, part):
                where_attr = ".".join([mod_name, *attr.split(".")[:i]])
                raise TrainingError(
                    f"{prefix}{name!r}: module {where_attr!r} has no attribute {part!r}; {hint}"
                ) from None
            obj = getattr(obj, part)
        if not callable(obj):
            raise TrainingError(
                f"{prefix}{name!r} is a {type(obj).__name__}, not a function; {hint}"
            )
        found: Callable[..., Any] = obj
        return found
    raise TrainingError(f"{prefix}{name!r}: {last_error}; {hint}")
