"""Summaries of the study's results: error by seen and unseen depth, mean and spread over seeds, and
the acceptance targets.

Example:
    >>> summarize_depths({1: 0.2, 5: 0.4, 6: 0.5, 20: 0.7}, seen_max=5)
    (0.30000000000000004, 0.6)
"""

from __future__ import annotations

import math
import statistics
from typing import Any


def summarize_depths(errors: dict[int, float], seen_max: int) -> tuple[float, float]:
    """Mean error over depths ≤ ``seen_max`` and over deeper ones."""
    seen = [e for d, e in errors.items() if d <= seen_max]
    unseen = [e for d, e in errors.items() if d > seen_max]
    return (
        statistics.mean(seen) if seen else math.nan,
        statistics.mean(unseen) if unseen else math.nan,
    )


def _mean_std(values: list[float]) -> dict[str, float]:
    out = {"mean": statistics.mean(values)}
    if len(values) > 1:
        out["std"] = statistics.stdev(values)
    out["n"] = len(values)
    return out


def acceptance(s: dict[str, Any], seen_max: int = 5) -> dict[str, Any]:
    """The issue's targets, checked on a summary: each with the measured value, the
    target and ``met``.

    Example:
        >>> s = {"accuracy": {"modular_typed": {"mean": 0.7}, "e2e_classic": {"mean": 0.6}},
        ...      "seen_error": {"modular_typed": {"mean": 0.3}},
        ...      "unseen_error": {"modular_typed": {"mean": 0.35}},
        ...      "error_by_depth": {v: {"6": {"mean": e}} for v, e in
        ...          (("modular_typed", .3), ("modular_classic", .4), ("film", .5),
        ...                        ("e2e_typed", .3), ("e2e_classic", .2))},
        ...      "sgm_pearson_r": 0.95, "cost_ratio_parallel": 0.9}
        >>> {k: v["met"] for k, v in acceptance(s).items()}  # doctest: +NORMALIZE_WHITESPACE
        {'modular_typed_ge_e2e_classic': True, 'typed_unseen_minus_seen_le_10pts': True,
         'typed_beats_classic_every_unseen_depth': True,
         'e2e_typed_beats_e2e_classic_every_unseen_depth': False,
         'typed_beats_film_every_unseen_depth': True,
         'sgm_pearson_r_ge_0.9': True, 'cost_ratio_parallel_le_0.6': False}
    """
    acc, by = s["accuracy"], s["error_by_depth"]
    unseen = [d for d in by["modular_typed"] if int(d) > seen_max]

    def wins(other: str, typed: str = "modular_typed") -> int:
        return sum(by[typed][d]["mean"] < by[other][d]["mean"] for d in unseen)

    gap = s["unseen_error"]["modular_typed"]["mean"] - s["seen_error"]["modular_typed"]["mean"]
    diff = acc["modular_typed"]["mean"] - acc["e2e_classic"]["mean"]
    return {
        "modular_typed_ge_e2e_classic": {"value": diff, "target": ">= 0", "met": diff >= 0},
        "typed_unseen_minus_seen_le_10pts": {"value": gap, "target": "<= 0.10", "met": gap <= 0.10},
        "typed_beats_classic_every_unseen_depth": {
            "value": f"{wins('modular_classic')}/{len(unseen)}",
            "target": "all",
            "met": wins("modular_classic") == len(unseen),
        },
        "e2e_typed_beats_e2e_classic_every_unseen_depth": {
            "value": f"{wins('e2e_classic', 'e2e_typed')}/{len(unseen)}",
            "target": "all",
            "met": wins("e2e_classic", "e2e_typed") == len(unseen),
        },
        "typed_beats_film_every_unseen_depth": {
            "value": f"{wins('film')}/{len(unseen)}",
            "target": "all",
            "met": wins("film") == len(unseen),
        },
        "sgm_pearson_r_ge_0.9": {
            "value": s["sgm_pearson_r"],
            "target": ">= 0.9",
            "met": bool(s["sgm_pearson_r"] >= 0.9),
            "leave_one_out_min": s.get("sgm", {}).get("pearson_r_leave_one_out_min"),
        },
        "cost_ratio_parallel_le_0.6": {
            "value": s["cost_ratio_parallel"],
            "target": "<= 0.6",
            "met": bool(s["cost_ratio_parallel"] <= 0.6),
        },
    }
