"""Cost accounting like the thesis's Fig. 4.9: per-module training time (HPO included),
the sequential sum, the critical path with parallel workers, against end-to-end.

Example:
    >>> cost = CostReport({"encoder": 2.0, "find": 3.0, "describe": 1.0, "measure": 1.5},
    ...                   stages=[["encoder", "find"], ["describe", "measure"]],
    ...                   end_to_end=8.0, workers=2)
    >>> cost.sequential, cost.critical_path
    (7.5, 4.5)
    >>> round(cost.ratio_parallel, 3)
    0.562
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, final


def makespan(times: Sequence[float], workers: int, *, longest_first: bool = True) -> float:
    """Length of a list schedule of independent jobs on ``workers``: each job goes to the
    least loaded worker; the longest first (LPT) unless ``longest_first=False`` (the
    order given, as a pool that submits in that order runs them).

    The one makespan of brickwork (cost reports, the studies' parallel cost).

    Example:
        >>> makespan([3, 2, 2, 1], 2), makespan([1, 2, 2, 3], 2, longest_first=False)
        (4.0, 5.0)
        >>> makespan([], 4)
        0.0
    """
    loads = [0.0] * max(1, workers)
    for t in sorted(times, reverse=True) if longest_first else times:
        i = loads.index(min(loads))
        loads[i] += t
    return max(loads)


@final
class CostReport:
    """Training cost of a plan.

    Args:
        modules: module -> seconds (training including HPO).
        stages: module names per stage.
        end_to_end: seconds of the end-to-end baseline (optional).
        workers: parallel workers for the critical path (``None``: unlimited).
        overhead: seconds per stage spent outside training (intermediate datasets).
    """

    def __init__(
        self,
        modules: Mapping[str, float],
        stages: Sequence[Sequence[str]],
        *,
        end_to_end: float | None = None,
        workers: int | None = None,
        overhead: Sequence[float] = (),
    ):
        self.modules = dict(modules)
        self.stages = [list(s) for s in stages]
        self.end_to_end = end_to_end
        self.workers = workers
        self.overhead = list(overhead) + [0.0] * (len(self.stages) - len(overhead))

    @property
    def sequential(self) -> float:
        """Every module one after the other (plus overheads)."""
        return sum(self.modules.values()) + sum(self.overhead)

    @property
    def critical_path(self) -> float:
        """Stages one after the other, modules of a stage in parallel on ``workers``."""
        total = 0.0
        for stage, extra in zip(self.stages, self.overhead):
            times = [self.modules.get(m, 0.0) for m in stage]
            total += (
                max(times, default=0.0) if self.workers is None else makespan(times, self.workers)
            ) + extra
        return total

    @property
    def ratio_sequential(self) -> float:
        return self.sequential / self.end_to_end if self.end_to_end else float("nan")

    @property
    def ratio_parallel(self) -> float:
        return self.critical_path / self.end_to_end if self.end_to_end else float("nan")

    def to_json(self) -> dict[str, Any]:
        return {
            "modules": self.modules,
            "stages": self.stages,
            "overhead": self.overhead,
            "sequential": self.sequential,
            "critical_path": self.critical_path,
            "workers": self.workers,
            "end_to_end": self.end_to_end,
            "ratio_sequential": self.ratio_sequential,
            "ratio_parallel": self.ratio_parallel,
        }

    def table(self) -> str:
        lines = [f"{'module':<24} {'seconds':>9}"]
        lines += [f"{m:<24} {t:>9.2f}" for m, t in self.modules.items()]
        lines.append(f"{'modular, sequential':<24} {self.sequential:>9.2f}")
        lines.append(f"{'modular, critical path':<24} {self.critical_path:>9.2f}")
        if self.end_to_end is not None:
            lines.append(f"{'end-to-end':<24} {self.end_to_end:>9.2f}")
            lines.append(
                f"ratios to end-to-end: sequential {self.ratio_sequential:.2f}, "
                f"parallel {self.ratio_parallel:.2f}"
            )
        return "\n".join(lines)

    def plot(self, path: str | os.PathLike[str]) -> Path:
        """Bars like Fig. 4.9: each module, modular sum, critical path, end-to-end."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from brickwork.modules import atomic_write_figure

        labels = list(self.modules) + ["modular (sum)", "modular (parallel)"]
        values = list(self.modules.values()) + [self.sequential, self.critical_path]
        if self.end_to_end is not None:
            labels.append("end-to-end")
            values.append(self.end_to_end)
        fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(labels) + 1), 3.5))
        ax.bar(
            range(len(values)),
            values,
            color=["tab:blue"] * len(self.modules)
            + ["tab:orange", "tab:green"]
            + (["tab:red"] if self.end_to_end is not None else []),
        )
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
        ax.set_ylabel("training seconds (incl. HPO)")
        fig.tight_layout()
        return atomic_write_figure(fig, path)
