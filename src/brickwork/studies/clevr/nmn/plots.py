"""The study's figures (PNG): learning curves, error by depth, the SGM correlation and the cost."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_study(s: dict[str, Any], out: Path) -> list[Path]:
    """The five figures as PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from brickwork.modules import atomic_write_figure

    paths = []

    def save(fig: Any, name: str) -> None:
        paths.append(atomic_write_figure(fig, out / name))

    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = ["e2e_classic", "modular_classic", "modular_typed"]
    ax.bar(
        names,
        [s["accuracy"][n]["mean"] for n in names],
        yerr=[s["accuracy"][n].get("std", 0) for n in names],
    )
    ax.set_ylabel("test accuracy (depth ≤ 5)")
    ax.set_title("Table 4.2 analog")
    save(fig, "1_accuracy.png")

    def curve(
        ax: Any, d: dict[str, Any], label: str, style: str = "-", color: str | None = None
    ) -> None:
        ks = sorted(d, key=int)
        vals = [d[k]["mean"] if isinstance(d[k], dict) else d[k] for k in ks]
        ax.plot([int(k) for k in ks], vals, style, label=label, color=color)

    fig, ax = plt.subplots(figsize=(7, 4))
    for v, color in (("e2e_typed", "C0"), ("e2e_classic", "C3")):
        curve(ax, s["error_by_depth"][v], f"{v} test", "-", color)
        curve(ax, s["train_images_error_by_depth"][v], f"{v} train images", "--", color)
        curve(ax, s["all_depths_error_by_depth"][f"{v}_all_depths"], f"{v} all depths", ":", color)
    ax.axvline(s["config"]["train_max_depth"] + 0.5, color="gray")
    ax.set_xlabel("program depth")
    ax.set_ylabel("error")
    ax.legend(fontsize=7)
    ax.set_title("Fig. 4.12 analog")
    save(fig, "2_depth_typed_vs_classic.png")

    fig, ax = plt.subplots(figsize=(7, 4))
    for v in ("modular_typed", "film", "modular_classic"):
        curve(ax, s["error_by_depth"][v], v)
    ax.axvline(s["config"]["train_max_depth"] + 0.5, color="gray")
    ax.set_xlabel("program depth")
    ax.set_ylabel("error")
    ax.legend()
    ax.set_title("Fig. 4.13 analog")
    save(fig, "3_depth_nmn_vs_film.png")

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
    pts = s["sgm"]["points"]
    a1.scatter([p["sgm_loss"] for p in pts], [p["variance"] for p in pts])
    fr = [pts[i] for i in s["sgm"]["pareto_front"]]
    a1.plot([p["sgm_loss"] for p in fr], [p["variance"] for p in fr], "r-")
    a1.set_xlabel("SGM val loss")
    a1.set_ylabel("MC-dropout variance")
    a1.set_title("Pareto front")
    a2.scatter([p["sgm_loss"] for p in pts], [p["full_loss"] for p in pts])
    a2.set_xlabel("SGM val loss")
    a2.set_ylabel("full-model val loss")
    a2.set_title(f"r = {s['sgm_pearson_r']:.2f}, p = {s['sgm_p_value']:.2g}")
    fig.tight_layout()
    save(fig, "4_sgm.png")

    fig, (a1, ax) = plt.subplots(1, 2, figsize=(12, 3.8), gridspec_kw={"width_ratios": [1, 1.4]})
    jobs = [j for j in s["modular_jobs"] if j.get("hpo")]
    for i, j in enumerate(jobs):
        scores = [v for v in j["hpo"]["scores"] if v is not None]
        a1.scatter([i] * len(scores), scores, s=10, color="gray")
        a1.scatter([i], [j["hpo"]["best_value"]], s=18, color="C3")
    a1.set_xticks(
        range(len(jobs)),
        [j["module"] + (" (round 2)" if j.get("round") == 2 else "") for j in jobs],
        rotation=70,
        fontsize=6,
    )
    a1.set_ylabel("SGM val loss per HPO trial (red: kept)")
    a1.set_title("Fig. 4.8 analog: per-module HPO")
    c = s["cost"]
    labels = list(c["per_module_seconds"]) + [
        "downstream",
        "modular sum",
        f"modular, {c['workers']} workers",
        f"e2e search sum ({c.get('e2e_trials', 1)} trials)",
        f"e2e search, {c['workers']} workers",
    ]
    vals = list(c["per_module_seconds"].values()) + [
        c["downstream_seconds"],
        c["modular_sum_seconds"],
        c["modular_critical_path_seconds"],
        c["e2e_seconds"],
        c.get("e2e_parallel_seconds", c["e2e_seconds"]),
    ]
    ax.bar(range(len(vals)), vals, color=["C0"] * (len(vals) - 5) + ["C1", "C2", "C2", "C3", "C3"])
    ax.set_xticks(range(len(vals)), labels, rotation=70, fontsize=6)
    ax.set_ylabel("seconds to target val acc")
    ax.set_title(f"Fig. 4.9 analog (target {c['target_val_accuracy']:.3f}, {c['workers']} workers)")
    fig.tight_layout()
    save(fig, "5_cost.png")
    return paths
