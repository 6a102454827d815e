"""Score what was trained: run a family over samples and report per-output metrics.

:func:`predict` runs every sample's own layout through the autobatched
:class:`~brickwork.layouts.Runner`; :func:`evaluate` compares the outputs with the target
columns of the same names: accuracy for class-like outputs (``Probs``, ``Logits``,
``OneHot``, ``Pointer``) and masks/booleans (threshold 0.5), mean squared error for
everything else, overall and per layout.

Example:
    >>> from brickwork.training.fixtures import nmn_kinds, nmn_family, nmn_data
    >>> kinds = nmn_kinds(); family = nmn_family(kinds)
    >>> data = nmn_data(64, len(family))
    >>> report = evaluate(family, kinds, data)
    >>> report.outputs["answer"]["metric"], report.outputs["answer"]["count"]
    ('accuracy', 64)
    >>> sorted(report.outputs["answer"]["by_layout"])[0]
    'describe[what](0)'
    >>> predict(family, kinds, data)["answer"].shape
    torch.Size([64, 5])
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, final

import torch

from brickwork.errors import DataError
from brickwork.layouts import Kinds, Layout, Runner
from brickwork.training.samples import Samples
from brickwork.types import NeuralType


def check_layout_column(
    data: Mapping[str, torch.Tensor],
    family_size: int,
    layout_column: str = "layout",
    where: str = "data",
) -> torch.Tensor:
    """The layout column as a 1-D int64 tensor, checked to index ``family_size`` layouts.

    Raises:
        DataError: the column is missing, not integer, or a value is negative or out of
            range (the message names the first bad row and the valid range).

    Example:
        >>> check_layout_column({"layout": torch.tensor([0, 2])}, 2)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        brickwork.errors.DataError: data: column 'layout', row 1: layout index 2 is out of range;
        ...
    """
    if layout_column not in set(data):
        raise DataError(
            f"{where}: column {layout_column!r} (each sample's layout index) is "
            f"missing; columns: {sorted(data)}"
        )
    col = data[layout_column]
    if col.is_floating_point() or col.is_complex() or col.dtype == torch.bool:
        raise DataError(
            f"{where}: column {layout_column!r} holds {col.dtype}; expected integer "
            f"layout indices 0..{family_size - 1}"
        )
    if col.dim() == 0 or col.numel() != col.shape[0]:
        raise DataError(
            f"{where}: column {layout_column!r} has shape {list(col.shape)}; "
            "expected one layout index per sample"
        )
    col = col.reshape(-1)
    bad = torch.nonzero((col < 0) | (col >= family_size)).flatten()
    if len(bad):
        row = int(bad[0])
        raise DataError(
            f"{where}: column {layout_column!r}, row {row}: layout index "
            f"{int(col[row])} is out of range; expected 0..{family_size - 1} (the "
            f"family has {family_size} layouts; {len(bad)} bad rows in all)"
        )
    return col.to(torch.int64)


def _per_row(
    t: NeuralType | None, pred: torch.Tensor, target: torch.Tensor
) -> tuple[str, torch.Tensor]:
    """``(metric, value per row)``: accuracy or squared error, averaged inside each row."""
    target = target.to(pred.device)
    n = pred.shape[0]
    if t is not None and t.is_categorical:
        labels = target if not target.is_floating_point() else target.argmax(-1)
        hit = (pred.argmax(-1) == labels.reshape(pred.shape[:-1])).float()
        return "accuracy", hit.reshape(n, -1).mean(1)
    if t is not None and t.is_mask:
        hit = ((pred > 0.5) == (target.reshape(pred.shape) > 0.5)).float()
        return "accuracy", hit.reshape(n, -1).mean(1)
    err = (pred.float() - target.reshape(pred.shape).float()) ** 2
    return "mse", err.reshape(n, -1).mean(1)


def _layout_names(family: Sequence[Layout]) -> list[str]:
    seen: dict[str, int] = {}
    names = []
    for lay in family:
        seen[lay.name] = seen.get(lay.name, 0) + 1
    count: dict[str, int] = {}
    for i, lay in enumerate(family):
        if seen[lay.name] > 1:
            count[lay.name] = count.get(lay.name, 0) + 1
            names.append(f"{lay.name}#{i}")
        else:
            names.append(lay.name)
    return names


@final
@dataclass(frozen=True)
class EvaluationReport:
    """Per-output metrics of a family over samples.

    Attributes:
        outputs: output name -> ``{"metric": "accuracy"|"mse", "value": float,
            "count": int, "by_layout": {layout name: {"value", "count"}}}``.
        samples: how many samples were scored.
        extra: what produced the report (split, run folder, ...).
    """

    outputs: Mapping[str, Mapping[str, Any]]
    samples: int
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(
            json.dumps({"outputs": self.outputs, "samples": self.samples, **dict(self.extra)})
        )
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EvaluationReport:
        extra = {k: v for k, v in data.items() if k not in ("outputs", "samples")}
        return cls(dict(data["outputs"]), int(data["samples"]), extra)

    def table(self) -> str:
        """A text table: one row per output, then one per output and layout."""
        lines = [f"{'output':<14} {'layout':<28} {'metric':<9} {'value':>8} {'samples':>8}"]
        lines.append("-" * len(lines[0]))
        for name, o in self.outputs.items():
            lines.append(
                f"{name:<14} {'(all)':<28} {o['metric']:<9} {o['value']:>8.4f} {o['count']:>8}"
            )
            for lay, b in o["by_layout"].items():
                lines.append(
                    f"{'':<14} {lay[:28]:<28} {o['metric']:<9} {b['value']:>8.4f} {b['count']:>8}"
                )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _run(
    family: Sequence[Layout],
    kinds: Kinds,
    samples: Samples,
    outputs: Sequence[str] | None,
    device: str | torch.device | None,
    layout_column: str,
    batch_size: int,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
    """Predictions per output, the sample rows each covers, and the layout column."""
    if not family:
        raise DataError("evaluate: the family is empty")
    if batch_size < 1:
        raise DataError(f"evaluate: batch_size must be >= 1, got {batch_size}")
    idx = check_layout_column(samples, len(family), layout_column)
    used = sorted(set(idx.tolist()))
    names = (
        list(outputs)
        if outputs is not None
        else sorted(set().union(*[set(family[i].outputs) for i in used]) if used else set())
    )
    for name in names:
        if not any(name in family[i].outputs for i in used):
            raise DataError(
                f"evaluate: no layout used by the samples has an output {name!r}; "
                f"outputs: {sorted(set().union(*[set(family[i].outputs) for i in used]))}"
            )
    dev = torch.device(device) if device is not None else None
    if dev is not None:
        kinds.to(dev)
    runner = Runner(kinds)
    inputs = sorted(set().union(*[set(family[i].inputs) for i in used])) if used else []
    missing = [k for k in inputs if k not in set(samples)]
    if missing:
        raise DataError(
            f"evaluate: the samples lack the layouts' inputs {missing}; columns: {sorted(samples)}"
        )
    preds: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    rows: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    was_training = kinds.training
    kinds.eval()
    try:
        with torch.no_grad():
            for name in names:
                have = torch.tensor([name in lay.outputs for lay in family])
                sel = torch.nonzero(have[idx]).flatten()
                for start in range(0, len(sel), batch_size):
                    part = sel[start : start + batch_size]
                    lays = [family[i] for i in idx[part].tolist()]
                    need = sorted(set().union(*[set(lay.inputs) for lay in lays]))
                    batch = {k: samples[k][part] for k in need}
                    if dev is not None:
                        batch = {k: v.to(dev) for k, v in batch.items()}
                    preds[name].append(runner(lays, batch, outputs=[name])[name])
                    rows[name].append(part)
    finally:
        kinds.train(was_training)
    out = {n: torch.cat(v) if v else torch.empty(0) for n, v in preds.items()}
    at = {n: torch.cat(v) if v else torch.empty(0, dtype=torch.int64) for n, v in rows.items()}
    return out, at, idx


def predict(
    family: Sequence[Layout],
    kinds: Kinds,
    samples: Samples,
    *,
    outputs: Sequence[str] | None = None,
    device: str | torch.device | None = None,
    layout_column: str = "layout",
    batch_size: int = 256,
) -> dict[str, torch.Tensor]:
    """Run each sample's layout (``family[samples[layout_column][i]]``) and return the
    outputs, row ``i`` for sample ``i`` (on ``device``; default: where the modules are).

    Args:
        family: the layouts; ``kinds``: their trained vocabulary (moved to ``device``).
        samples: the layouts' inputs and the layout column.
        outputs: output names (default: every output of the layouts the samples use).
            An output that some used layout lacks gets NaN rows there.
        batch_size: samples per runner call.

    Raises:
        DataError: a bad layout column, missing input columns, an unknown output.
    """
    out, rows, _ = _run(family, kinds, samples, outputs, device, layout_column, batch_size)
    full: dict[str, torch.Tensor] = {}
    for name, pred in out.items():
        if len(rows[name]) == len(samples):
            res = torch.empty_like(pred)
        else:
            res = (
                torch.full(
                    (len(samples), *pred.shape[1:]),
                    float("nan"),
                    dtype=pred.dtype,
                    device=pred.device,
                )
                if pred.is_floating_point()
                else torch.zeros(
                    (len(samples), *pred.shape[1:]), dtype=pred.dtype, device=pred.device
                )
            )
        res[rows[name].to(pred.device)] = pred
        full[name] = res
    return full


def evaluate(
    family: Sequence[Layout],
    kinds: Kinds,
    samples: Samples,
    *,
    targets: Sequence[str] | None = None,
    device: str | torch.device | None = None,
    layout_column: str = "layout",
    batch_size: int = 256,
) -> EvaluationReport:
    """Score the family's outputs against the samples' target columns.

    Args:
        family: the layouts; ``kinds``: their trained vocabulary (moved to ``device``).
        samples: inputs, targets (columns named like the outputs) and the layout column.
        targets: outputs to score (default: every layout output that is a column).
        device: where the modules run.
        batch_size: samples per runner call.

    Returns:
        An :class:`EvaluationReport`: accuracy for class-like and mask outputs, MSE for
        the rest; overall and per layout.

    Raises:
        DataError: no output to score, a bad layout column, missing columns.
    """
    idx = check_layout_column(samples, len(family), layout_column)
    used = sorted(set(idx.tolist()))
    if targets is None:
        produced = set().union(*[set(family[i].outputs) for i in used]) if used else set()
        targets = sorted(t for t in produced if t in set(samples))
        if not targets:
            raise DataError(
                f"evaluate: no layout output has a target column (outputs: "
                f"{sorted(produced)}, columns: {sorted(samples)}); pass targets="
            )
    missing = [t for t in targets if t not in set(samples)]
    if missing:
        raise DataError(
            f"evaluate: target columns {missing} are not in the samples (columns: "
            f"{sorted(samples)})"
        )
    out, rows, idx = _run(family, kinds, samples, targets, device, layout_column, batch_size)
    lay_names = _layout_names(family)
    report: dict[str, dict[str, Any]] = {}
    for name in targets:
        r = rows[name]
        if len(r) == 0:
            continue
        types = [family[i].output_types[name] for i in idx[r[:1]].tolist()]
        metric, per = _per_row(types[0], out[name], samples[name][r])
        per = per.detach().cpu()
        li = idx[r]
        by_layout = {}
        for i in sorted(set(li.tolist())):
            m = li == i
            by_layout[lay_names[i]] = {"value": float(per[m].mean()), "count": int(m.sum())}
        report[name] = {
            "metric": metric,
            "value": float(per.mean()),
            "count": int(len(r)),
            "by_layout": by_layout,
        }
    return EvaluationReport(report, len(samples))
