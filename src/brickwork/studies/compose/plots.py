"""The benchmark's figure: test RMSE vs data fraction (composition and baselines)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from brickwork.modules import atomic_write_figure


def plot_rmse_by_fraction(summary: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Plot ``summary["rmse_by_fraction"]`` (mean test RMSE on count/sum tasks, lists of
    2–5) for composition, standalone, transfer and CNN+LSTM; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = summary["rmse_by_fraction"]
    fractions = sorted(table, key=float)
    xs = [100 * float(f) for f in fractions]
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for who, style in (
        ("composition", "o-"),
        ("standalone", "s--"),
        ("transfer", "^--"),
        ("lstm", "x:"),
    ):
        ys = [table[f].get(who) for f in fractions]
        if any(y is not None for y in ys):
            ax.plot(xs, [y if y is not None else float("nan") for y in ys], style, label=who)
    ax.set_xscale("log")
    ax.set_xlabel("training data (% of the full set)")
    ax.set_ylabel("test RMSE (count / sum, lists of 2-5)")
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return atomic_write_figure(fig, path)
