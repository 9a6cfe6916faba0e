"""Training data and held-out evaluation of the multi-horizon heads (no TensorFlow here).

Splits follow the next-hour split's boundaries with no target crossing one: a training window's
every target (7 days ahead included) precedes the validation period, a validation window's
precedes the held-out period, and held-out windows are issued inside it. The held-out hourly
trajectory is scored on every window with 24 hours of future, the daily totals on every
window with 7 days of it (so the held-out period must be longer than 7 days).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from stream.core.horizons import DAILY_TARGETS, TRAJECTORY_HOURS, interval_coverage
from stream.forecast.calibration import IntervalCalibration, blend_weights
from stream.forecast.errors import HistoryError
from stream.forecast.features import (
    DeviceSeries,
    Encoded,
    FeatureSpec,
    FloatArray,
    IntArray,
    Scaler,
    encode,
    scale_targets,
)
from stream.forecast.horizon_scores import horizon_scorecard
from stream.forecast.trajectories import (
    DAY_HOURS,
    TrajectoryWindows,
    build_trajectory_windows,
    persistence_daily,
    persistence_trajectory,
    scale_steps,
    seasonal_naive_daily,
    seasonal_naive_trajectory,
)

if TYPE_CHECKING:
    from stream.forecast.artifacts import Forecaster

VALIDATION_SHARE = 4
"""Validation windows: at most a quarter as many as training windows (early stopping only)."""


@dataclass(frozen=True)
class Bounds:
    """Epoch hours of the split (see :class:`stream.forecast.train.Split`)."""

    validation_from: int
    test_from: int
    end: int


def model_inputs(
    spec: FeatureSpec, scaler: Scaler, windows: TrajectoryWindows, *, residual: bool = False
) -> tuple[Encoded, list[FloatArray]]:
    """Encoded windows and the three heads' scaled targets: next hour, hourly, daily; for a
    ``residual`` model the hourly and daily ones less their baselines (:func:`baselines_scaled`;
    the pinball and squared losses of ``P - base`` against ``y - base`` are those of ``P``
    against ``y``)."""
    encoded = encode(spec, scaler, windows.history_kwh, windows.kind_index, windows.calendar)
    kinds = windows.kind_index
    hourly = scale_steps(spec, scaler, windows.hourly_kwh, kinds)
    daily = scale_steps(spec, scaler, windows.daily_kwh, kinds, hours=DAY_HOURS)
    if residual:
        hourly_base, daily_base = baselines_scaled(encoded, hourly.shape[1])
        hourly, daily = hourly - hourly_base, daily - daily_base
    return encoded, [scale_targets(spec, scaler, windows.hourly_kwh[:, 0], kinds), hourly, daily]


def baselines_scaled(encoded: Encoded, hours: int) -> tuple[FloatArray, FloatArray]:
    """The residual model's bases in numpy, as :func:`stream.forecast.model.horizon_bases`
    makes them in the graph: per hourly step [n, hours] the last hour (step 1) or the same
    hour yesterday (the others), scaled; for the days the last 24 hours' mean [n, 1]."""
    recent = encoded.sequence[:, -hours:, 0].astype(np.float64)
    hourly = recent.copy()
    hourly[:, 0] = recent[:, -1]
    return hourly, recent.mean(axis=1, keepdims=True)


def _scaled_heads(
    forecaster: Forecaster, hourly: TrajectoryWindows, daily: TrajectoryWindows
) -> tuple[tuple[FloatArray, FloatArray, IntArray], tuple[FloatArray, FloatArray, IntArray]]:
    """(actual, quantiles, kind index) of the hourly head on ``hourly`` and of the daily head
    on ``daily``, scaled."""
    spec, scaler = forecaster.spec, forecaster.scaler
    out = []
    for head, windows in ((1, hourly), (2, daily)):
        encoded, targets = model_inputs(spec, scaler, windows)
        out.append((targets[head], forecaster.scaled_horizons(encoded)[head], windows.kind_index))
    return out[0], out[1]


def calibration_windows(
    spec: FeatureSpec, series: Sequence[DeviceSeries], bounds: Bounds
) -> TrajectoryWindows:
    """Every validation window with 24 hours of targets (the hourly head's calibration): more
    of them, and later ones, than the windows that need 7 days of targets."""
    return build_trajectory_windows(
        spec, series, 0, issue_from=bounds.validation_from, last_before=bounds.test_from
    )


def calibrate(
    serve_with: Callable[[IntervalCalibration | None], Forecaster],
    hourly: TrajectoryWindows,
    daily: TrajectoryWindows,
    *,
    residual: bool,
) -> IntervalCalibration:
    """Fit a model's calibration on the validation windows (see
    :mod:`stream.forecast.calibration`): a residual model's hourly P50 blend first, then the
    width factors per (kind, step) of the forecaster serving that blend; ``serve_with`` makes
    the model's forecaster with a calibration (None: none)."""
    spec, scaler = (raw := serve_with(None)).spec, raw.scaler
    blend = None
    if residual:
        encoded, targets = model_inputs(spec, scaler, hourly)
        quantiles = raw.scaled_horizons(encoded)[1]
        base, _ = baselines_scaled(encoded, quantiles.shape[1])
        persistence = encoded.sequence[:, -1, 0].astype(np.float64)
        kinds = len(spec.device_kinds)
        blend = blend_weights(
            targets[1], quantiles[..., 1], base, persistence, hourly.kind_index, kinds=kinds
        )
        blend[:, 0] = (1.0, 0.0)  # the first hour is the next-hour head's forecast
        days = raw.horizon_steps[1]
        raw = serve_with(IntervalCalibration.blend_only(kinds, quantiles.shape[1], days, blend))
    heads = _scaled_heads(raw, hourly, daily)
    return IntervalCalibration.fit(spec.device_kinds, *heads, hourly_blend=blend)


def validation_coverage(
    forecaster: Forecaster, hourly: TrajectoryWindows, daily: TrajectoryWindows
) -> dict[str, dict[str, float]]:
    """P10-P90 coverage per head and kind of ``forecaster`` on the validation windows (the
    card shows the uncalibrated intervals' coverage there next to the calibrated held-out one)."""
    heads = dict(zip(("hourly", "daily"), _scaled_heads(forecaster, hourly, daily), strict=True))
    out: dict[str, dict[str, float]] = {}
    for name, (actual, quantiles, kinds) in heads.items():
        out[name] = {
            kind: round(interval_coverage(actual[mask], quantiles[mask][..., 0],
                                          quantiles[mask][..., 2]), 4)
            for index, kind in enumerate(forecaster.spec.device_kinds)
            if (mask := kinds == index).any()
        }  # fmt: skip
    return out


def training_windows(
    spec: FeatureSpec, series: Sequence[DeviceSeries], bounds: Bounds, keep: int, seed: int
) -> tuple[TrajectoryWindows, TrajectoryWindows]:
    """(training, validation) windows with every horizon's targets, seeded samples."""
    train = build_trajectory_windows(
        spec, series, last_before=bounds.validation_from, keep=keep, seed=seed
    )
    validation = build_trajectory_windows(
        spec,
        series,
        issue_from=bounds.validation_from,
        last_before=bounds.test_from,
        keep=max(1, keep // VALIDATION_SHARE),
        seed=seed,
    )
    for name, windows in (("training", train), ("validation", validation)):
        if len(windows) == 0:
            raise HistoryError(
                f"no {name} window with {DAILY_TARGETS} days of targets: the validation period "
                f"must be longer than {DAILY_TARGETS} days and the history long enough"
            )
    return train, validation


def evaluate_horizons(
    forecaster: Forecaster, series: Sequence[DeviceSeries], bounds: Bounds
) -> dict[str, Any]:
    """Per-horizon, per-kind scorecard on the held-out period (see :mod:`horizon_scores`)."""
    spec = forecaster.spec
    card: dict[str, Any] = {}
    for name, days in (("hourly", 0), ("daily", DAILY_TARGETS)):
        windows = build_trajectory_windows(
            spec, series, days, issue_from=bounds.test_from, last_before=bounds.end
        )
        if len(windows) == 0:
            card[name] = {"windows": 0, "note": "the held-out period is too short"}
            continue
        encoded = encode(
            spec, forecaster.scaler, windows.history_kwh, windows.kind_index, windows.calendar
        )
        predicted = forecaster.horizons_encoded(encoded, windows.kind_index)
        if name == "hourly":
            actual, quantiles = windows.hourly_kwh, predicted.hourly_kwh
            baselines = {
                "seasonal_naive": seasonal_naive_trajectory(windows.history_kwh),
                "persistence": persistence_trajectory(windows.history_kwh),
            }
        else:
            actual, quantiles = windows.daily_kwh, predicted.daily_kwh
            baselines = {
                "seasonal_naive": seasonal_naive_daily(windows.history_kwh, days),
                "persistence": persistence_daily(windows.history_kwh, days),
            }
        card[name] = horizon_scorecard(
            actual,
            quantiles,
            baselines,
            windows.kind_index,
            spec.device_kinds,
            unit="h" if name == "hourly" else "d",
        )
    card["hours"] = TRAJECTORY_HOURS
    card["days"] = DAILY_TARGETS
    return card


def summary(card: dict[str, Any]) -> dict[str, Any]:
    """The card's headline: worst skill over the horizons and the overall coverage."""
    out: dict[str, Any] = {}
    for name in ("hourly", "daily"):
        overall = card.get(name, {}).get("overall")
        if overall:
            out[name] = {
                "worst_skill_vs_better_baseline": overall["worst_skill_vs_better_baseline"],
                "coverage_p10_p90": overall["coverage_p10_p90"],
            }
    return out


VALIDATION_SKILL_WINDOWS = 2048
"""Validation windows scored after each epoch (a seeded sample: the score costs one batch)."""


def _rmse(predicted: FloatArray, actual: FloatArray) -> float:
    return float(np.sqrt(np.mean((predicted - actual) ** 2)))


@dataclass(frozen=True)
class ValidationSkill:
    """The hourly trajectory's validation score during training, in scaled units (every kind
    weighs alike): skill of the P50 against the better of seasonal-naive and persistence over
    all 24 steps (positive = beats both), and the P10-P90 coverage."""

    encoded: Encoded
    actual: FloatArray
    """Scaled hourly targets [n, 24]."""
    baseline_rmse: float

    @classmethod
    def of(
        cls, spec: FeatureSpec, scaler: Scaler, windows: TrajectoryWindows, seed: int
    ) -> ValidationSkill:
        if len(windows) > VALIDATION_SKILL_WINDOWS:
            rng = np.random.default_rng(seed)
            keep = rng.choice(len(windows), VALIDATION_SKILL_WINDOWS, replace=False)
            windows = windows.take(np.sort(keep))
        encoded, targets = model_inputs(spec, scaler, windows)
        kinds, history = windows.kind_index, windows.history_kwh
        actual = targets[1]
        baselines = (seasonal_naive_trajectory(history), persistence_trajectory(history))
        rmse = min(_rmse(scale_steps(spec, scaler, b, kinds), actual) for b in baselines)
        return cls(encoded, actual, rmse)

    def score(self, hourly: FloatArray) -> dict[str, float]:
        """``hourly``: the model's scaled P10/P50/P90 [n, 24, 3] for :attr:`encoded`."""
        skill = 1 - _rmse(hourly[..., 1], self.actual) / self.baseline_rmse
        inside = (self.actual >= hourly[..., 0]) & (self.actual <= hourly[..., 2])
        return {
            "validation_skill": round(skill, 4),
            "validation_coverage": round(float(inside.mean()), 4),
        }
