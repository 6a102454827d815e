"""PNG figures of the study (matplotlib, Agg backend): Fig. 3.6–3.10 of the thesis."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from brickwork.modules import atomic_write_figure  # noqa: E402


def _save(fig: Any, path: Path) -> str:
    return atomic_write_figure(fig, path, dpi=110).name


def _curves(
    histories: Mapping[str, Mapping[str, list]], key: str, ylabel: str, title: str, path: Path
) -> str:
    """One log-log curve of ``h[key]`` against iterations per history that has it."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name, h in histories.items():
        if h.get(key):
            ax.plot(h["it"], h[key], label=name, lw=0.8)
    ax.set_xscale("symlog")
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=6, ncol=2)
    ax.set_title(title)
    return _save(fig, path)


def plot_all(
    out: Path,
    histories: Mapping[str, Mapping[str, list]],
    times: Mapping[str, float],
    variants: Mapping[str, Mapping[str, Any]],
    lengths: list[int],
    max_train: int,
) -> list[str]:
    """Write the five figures into ``out``; returns their file names.

    ``histories``: name -> training history (``it``, ``seconds``, ``loss``, ``grad``,
    ``val_it``, ``val_seconds``, ``val_error``); ``times``: bar label -> seconds;
    ``variants``: name -> summary with ``accuracy_by_length``.
    """
    out.mkdir(parents=True, exist_ok=True)
    names = []
    # Fig. 3.6: training time to criterion
    fig, ax = plt.subplots(figsize=(7, 3.5))
    labels = list(times)
    ax.bar(
        range(len(labels)),
        [max(times[k], 1e-2) for k in labels],
        color=["tab:red" if "monolithic" in k else "tab:blue" for k in labels],
    )
    ax.set_xticks(range(len(labels)), labels, rotation=40, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("seconds to criterion (log)")
    ax.set_title("Training time: modular units vs monolithic")
    names.append(_save(fig, out / "fig_training_time.png"))
    # Fig. 3.7: error rate by time and by iteration
    fig, axes = plt.subplots(2, 1, figsize=(7, 6))
    for name, h in histories.items():
        if h.get("val_error"):
            axes[0].plot(h["val_seconds"], h["val_error"], label=name, lw=1)
            axes[1].plot(h["val_it"], h["val_error"], label=name, lw=1)
    for ax, xl in zip(axes, ("seconds", "iterations")):
        ax.set_xscale("symlog")
        ax.set_yscale("symlog", linthresh=0.01)
        ax.set_xlabel(xl)
        ax.set_ylabel("validation error")
    axes[0].legend(fontsize=6, ncol=2)
    axes[0].set_title("Error rate during training")
    names.append(_save(fig, out / "fig_error_curves.png"))
    # Fig. 3.8: mean absolute gradient per parameter
    names.append(
        _curves(
            histories,
            "grad",
            "mean |gradient| per parameter",
            "Mean absolute gradient",
            out / "fig_gradients.png",
        )
    )
    # Fig. 3.9: per-operator training loss
    names.append(
        _curves(
            {k: h for k, h in histories.items() if k != "monolithic"},
            "loss",
            "training loss",
            "Training loss per module",
            out / "fig_operator_loss.png",
        )
    )
    # Fig. 3.10: generalization
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(len(variants), 1)
    for i, (name, v) in enumerate(variants.items()):
        acc = v["accuracy_by_length"]
        ys = [acc.get(str(n)) if acc.get(str(n)) is not None else 0.0 for n in lengths]
        ax.bar([j + i * width for j in range(len(lengths))], ys, width=width, label=name)
    ax.axvline(
        lengths.index(max_train) + 0.9 if max_train in lengths else 0, color="k", ls=":", lw=1
    )
    ax.set_xticks([j + 0.4 for j in range(len(lengths))], [str(n) for n in lengths])
    ax.set_xlabel("list length (dotted: longest training length)")
    ax.set_ylabel("exact-match accuracy")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=6, ncol=3, loc="lower left")
    ax.set_title("Generalization to longer lists (closed loop)")
    names.append(_save(fig, out / "fig_generalization.png"))
    return names


__all__ = ["plot_all"]
