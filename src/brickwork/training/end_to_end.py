"""End-to-end training of a layout family (the baseline the modular plan is compared to).

Example:
    >>> from brickwork.training.fixtures import nmn_kinds, nmn_family, nmn_data
    >>> kinds = nmn_kinds(); family = nmn_family(kinds)
    >>> data = nmn_data(128, len(family))
    >>> res = train_end_to_end(family, kinds, data, targets=["answer"],
    ...                        config=FitConfig(epochs=2, batch_size=32))
    >>> res.epochs, res.steps
    (2, 8)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from brickwork.errors import TrainingError
from brickwork.layouts import Kinds, Layout, Runner
from brickwork.training.callbacks import Callback
from brickwork.training.evaluate import check_layout_column
from brickwork.training.fit import EvalFn, FitConfig, FitResult, LossFn, fit
from brickwork.training.losses import type_loss, type_score
from brickwork.training.samples import Samples


def family_loss(
    family: Sequence[Layout],
    kinds: Kinds,
    targets: Sequence[str],
    layout_column: str = "layout",
    inputs: Sequence[str] | None = None,
    device: str | torch.device | None = None,
) -> tuple[LossFn[torch.nn.Module], EvalFn[torch.nn.Module]]:
    """``(loss_fn, evaluate)`` over a family: each sample runs its own layout (inputs and
    targets moved to ``device`` when given)."""
    runner = Runner(kinds)
    names = (
        list(inputs)
        if inputs is not None
        else sorted(set().union(*[set(lay.inputs) for lay in family]))
    )
    dev = torch.device(device) if device is not None else None

    def col(batch: Samples, name: str) -> torch.Tensor:
        t = batch[name]
        return t.to(dev) if dev is not None and t.device != dev else t

    def run(batch: Samples) -> tuple[dict[str, torch.Tensor], Layout]:
        idx = batch[layout_column].tolist()
        lays = [family[i] for i in idx]
        out = runner(lays, {k: col(batch, k) for k in names}, outputs=list(targets))
        return out, lays[0]

    def loss_fn(model: torch.nn.Module, batch: Samples) -> torch.Tensor:
        out, lay = run(batch)
        types = lay.output_types
        return sum(type_loss(types[t], out[t], col(batch, t)) for t in targets)  # type: ignore[return-value]

    def evaluate(model: torch.nn.Module, data: Samples) -> dict[str, float]:
        out, lay = run(data)
        types = lay.output_types
        return {f"val_{t}_score": type_score(types[t], out[t], col(data, t)) for t in targets}

    return loss_fn, evaluate


def train_end_to_end(
    family: Sequence[Layout],
    kinds: Kinds,
    data: Samples,
    *,
    targets: Sequence[str],
    val: Samples | None = None,
    config: FitConfig = FitConfig(),
    callbacks: Iterable[Callback] = (),
    trainable: Iterable[str] | None = None,
    layout_column: str = "layout",
    checkpoint_dir: str | None = None,
    resume: bool = False,
    device: str | torch.device | None = None,
) -> FitResult:
    """Train every module of ``family`` jointly on the layouts' supervised outputs.

    Args:
        family: the layouts; sample ``i`` runs ``family[data[layout_column][i]]``.
        kinds: the vocabulary holding the modules (trained in place).
        data: inputs, targets and the layout column.
        targets: supervised output names (data columns of the same names).
        trainable: module names to train (default: all); others stay frozen.
        device: where the modules train (``kinds`` is moved there and stays there).
    """
    if not family:
        raise TrainingError("train_end_to_end: the family is empty")
    for part, where in ((data, "data"), (val, "val")):
        if isinstance(part, Samples):  # a DataLoader is checked batch by batch by the runner
            check_layout_column(part, len(family), layout_column, where=where)
    for lay in family:
        if lay.kinds is not kinds:
            raise TrainingError(
                f"layout '{lay.name}' was built with another Kinds; build every "
                "layout of the family with the vocabulary passed here"
            )
        for name in lay.module_names():
            kinds.module(name)
    params = None
    if trainable is not None:
        keep = set(trainable)
        params = [p for name, m in kinds.items() if name in keep for p in m.parameters()]
        if not params:
            raise TrainingError(f"train_end_to_end: no parameters among {sorted(keep)}")
    if device is not None:
        kinds.to(torch.device(device))
    loss_fn, evaluate = family_loss(family, kinds, targets, layout_column, device=device)
    return fit(
        kinds,
        loss_fn,
        data,
        val=val,
        evaluate=evaluate,
        config=config,
        callbacks=callbacks,
        parameters=params,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        device=device,
    )
