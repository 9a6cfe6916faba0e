"""Baselines the model must beat, and the error metrics everything is scored with (pure numpy).

* seasonal-naive: the same hour yesterday, 24 steps back in the window;
* persistence: the last closed hour.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from stream.core.forecast_error import bias
from stream.forecast.features import FloatArray, IntArray

SEASON_HOURS = 24


def seasonal_naive(history_kwh: FloatArray) -> FloatArray:
    """The value ``SEASON_HOURS`` steps before the target, per window ([n, H] -> [n])."""
    if history_kwh.shape[1] < SEASON_HOURS:
        raise ValueError(f"seasonal-naive needs {SEASON_HOURS} hours of history")
    return history_kwh[:, -SEASON_HOURS]


def persistence(history_kwh: FloatArray) -> FloatArray:
    return history_kwh[:, -1]


def error_metrics(actual: FloatArray, predicted: FloatArray) -> dict[str, float]:
    """RMSE, MAE and bias (:func:`stream.core.forecast_error.bias`: predicted - actual, positive
    = over-forecast) in kWh, and the number of windows."""
    if actual.shape != predicted.shape or actual.size == 0:
        raise ValueError(f"need equal, non-empty shapes: {actual.shape} vs {predicted.shape}")
    error = predicted - actual
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "bias": bias(actual, predicted),
        "n": int(actual.size),
    }


def scorecard(
    actual: FloatArray,
    forecasts: dict[str, FloatArray],
    kind_index: IntArray,
    kinds: Sequence[str],
) -> dict[str, Any]:
    """Metrics of each forecaster overall and per device kind, plus each one's skill.

    Skill against seasonal-naive is ``1 - rmse / rmse_seasonal_naive`` (0.25: 25 % lower RMSE).
    """
    card: dict[str, Any] = {"overall": {}, "per_kind": {}}
    groups: list[tuple[dict[str, Any], np.ndarray]] = [
        (card["overall"], np.ones_like(actual, bool))
    ]
    for index, kind in enumerate(kinds):
        mask = kind_index == index
        if mask.any():
            card["per_kind"][kind] = {}
            groups.append((card["per_kind"][kind], mask))
    for target, mask in groups:
        for name, predicted in forecasts.items():
            target[name] = error_metrics(actual[mask], predicted[mask])
        naive = target.get("seasonal_naive", {}).get("rmse")
        if naive:
            target["skill_vs_seasonal_naive"] = {
                name: 1 - target[name]["rmse"] / naive
                for name in forecasts
                if name != "seasonal_naive"
            }
    return card
