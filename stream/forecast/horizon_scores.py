"""Held-out scorecard of a multi-horizon model, per horizon and per device kind (pure numpy).

For each step of the hourly trajectory (1..24 hours ahead) and of the daily totals (1..7 days
ahead): the RMSE of the model's P50 and of both baselines, the skill against the better
baseline (``1 - rmse / min(rmse of the baselines)``: positive means the model beats both) and
the P10-P90 coverage (the target is 80 % +- 5 %).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from stream.core.horizons import interval_coverage
from stream.forecast.features import FloatArray, IntArray

COVERAGE_TARGET = (0.75, 0.85)


def _rmse(actual: FloatArray, predicted: FloatArray) -> float:
    return float(np.sqrt(np.mean((predicted - actual) ** 2)))


def _step(
    actual: FloatArray, quantiles: FloatArray, baselines: Mapping[str, FloatArray]
) -> dict[str, Any]:
    """One horizon step over windows: actual [n], quantiles [n, 3], baselines name -> [n]."""
    scores: dict[str, Any] = {"n": int(actual.size), "model_rmse": _rmse(actual, quantiles[:, 1])}
    for name, predicted in baselines.items():
        scores[f"{name}_rmse"] = _rmse(actual, predicted)
    better = min(scores[f"{name}_rmse"] for name in baselines)
    scores["skill_vs_better_baseline"] = 1 - scores["model_rmse"] / better if better else None
    scores["coverage_p10_p90"] = interval_coverage(actual, quantiles[:, 0], quantiles[:, 2])
    return scores


def _group(
    actual: FloatArray,
    quantiles: FloatArray,
    baselines: Mapping[str, FloatArray],
    unit: str,
) -> dict[str, Any]:
    steps = {
        f"{step + 1}{unit}": _step(
            actual[:, step],
            quantiles[:, step],
            {name: values[:, step] for name, values in baselines.items()},
        )
        for step in range(actual.shape[1])
    }
    skills = [s["skill_vs_better_baseline"] for s in steps.values()]
    return {
        "steps": steps,
        "coverage_p10_p90": interval_coverage(
            actual.ravel(), quantiles[..., 0].ravel(), quantiles[..., 2].ravel()
        ),
        "worst_skill_vs_better_baseline": min((s for s in skills if s is not None), default=None),
    }


def horizon_scorecard(
    actual: FloatArray,
    quantiles: FloatArray,
    baselines: Mapping[str, FloatArray],
    kind_index: IntArray,
    kinds: Sequence[str],
    *,
    unit: str,
) -> dict[str, Any]:
    """Scores of ``quantiles`` [n, steps, 3] against ``actual`` [n, steps], overall and per
    kind; ``unit`` labels the steps (``"h"``: 1h..24h, ``"d"``: 1d..7d)."""
    if actual.shape != quantiles.shape[:-1] or actual.size == 0:
        raise ValueError(f"need non-empty matching shapes: {actual.shape}, {quantiles.shape}")
    card: dict[str, Any] = {
        "windows": int(actual.shape[0]),
        "baselines": sorted(baselines),
        "coverage_target": list(COVERAGE_TARGET),
        "overall": _group(actual, quantiles, baselines, unit),
        "per_kind": {},
    }
    for index, kind in enumerate(kinds):
        mask = kind_index == index
        if mask.any():
            card["per_kind"][kind] = _group(
                actual[mask],
                quantiles[mask],
                {name: values[mask] for name, values in baselines.items()},
                unit,
            )
    return card
