from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from stream.forecast.features import DeviceSeries, FeatureSpec, KindScaling, Scaler, epoch_hour
from stream.forecast.horizon_scores import horizon_scorecard
from stream.forecast.trajectories import (
    build_trajectory_windows,
    persistence_daily,
    persistence_trajectory,
    scale_steps,
    seasonal_naive_daily,
    seasonal_naive_trajectory,
    unscale_quantiles,
    window_index,
)

pytestmark = pytest.mark.unit

SPEC = FeatureSpec(24, ("household_meter", "solar_inverter"))
START = datetime(2026, 3, 2, tzinfo=UTC)


def series(values: np.ndarray, kind: str = "household_meter") -> DeviceSeries:
    return DeviceSeries("d-1", kind, "Europe/Berlin", START, values)


def test_windows_hold_history_then_hourly_and_daily_targets() -> None:
    values = np.arange(24 + 168 + 2, dtype=np.float64)  # 3 complete windows
    windows = build_trajectory_windows(SPEC, [series(values)])
    assert len(windows) == 3
    assert windows.history_kwh.shape == (3, 24) and windows.hourly_kwh.shape == (3, 24)
    assert windows.daily_kwh.shape == (3, 7)
    assert windows.history_kwh[1].tolist() == list(range(1, 25))
    assert windows.hourly_kwh[1].tolist() == list(range(25, 49))
    assert windows.daily_kwh[0, 0] == sum(range(24, 48))
    assert windows.daily_kwh[0, 6] == sum(range(24 + 144, 24 + 168))
    assert windows.issue_hour.tolist() == [epoch_hour(START) + 24 + k for k in range(3)]
    assert windows.last_target_hour[0] == windows.issue_hour[0] + 167


def test_a_gap_removes_every_window_that_spans_it() -> None:
    values = np.ones(24 + 24 + 10)
    values[30] = np.nan
    devices, offsets = window_index(SPEC, [series(values)], future_hours=24)
    assert devices.size == offsets.size == 0  # every 48-hour frame (starts 0..10) spans it
    values[30] = 1.0
    assert window_index(SPEC, [series(values)], future_hours=24)[1].size == 11


def test_split_bounds_and_a_seeded_sample() -> None:
    values = np.ones(24 + 168 + 100)
    first = epoch_hour(START)
    kept = build_trajectory_windows(
        SPEC, [series(values)], issue_from=first + 24 + 10, last_before=first + 24 + 168 + 50
    )
    assert kept.issue_hour.min() == first + 34
    assert (kept.last_target_hour < first + 24 + 168 + 50).all()
    one = build_trajectory_windows(SPEC, [series(values)], keep=7, seed=3)
    two = build_trajectory_windows(SPEC, [series(values)], keep=7, seed=3)
    assert len(one) == 7 and one.issue_hour.tolist() == two.issue_hour.tolist()
    hourly_only = build_trajectory_windows(SPEC, [series(values)], days=0)
    assert hourly_only.daily_kwh.shape == (len(hourly_only), 0)
    assert len(hourly_only) == 100 + 168 - 24 + 1


def test_baselines_repeat_yesterday_and_the_last_hour() -> None:
    history = np.arange(48, dtype=np.float64).reshape(2, 24)
    assert seasonal_naive_trajectory(history)[1].tolist() == list(range(24, 48))
    assert persistence_trajectory(history)[0].tolist() == [23.0] * 24
    assert seasonal_naive_daily(history, 7)[0].tolist() == [float(sum(range(24)))] * 7
    assert persistence_daily(history, 3)[1].tolist() == [47.0 * 24] * 3


def test_scaling_round_trips_and_orders_quantiles() -> None:
    scaler = Scaler({"household_meter": KindScaling(1.0, 2.0), "solar_inverter": KindScaling(0, 1)})
    kinds = np.array([0, 1])
    daily = np.array([[48.0, 24.0], [12.0, 0.0]])
    scaled = scale_steps(SPEC, scaler, daily, kinds, hours=24)
    assert scaled.tolist() == [[0.5, 0.0], [0.5, 0.0]]
    crossed = np.stack([scaled + 0.1, scaled, scaled - 0.1], axis=-1)  # P10 above P90
    kwh = unscale_quantiles(SPEC, scaler, crossed, kinds, hours=24)
    assert np.all(np.diff(kwh, axis=-1) >= 0)
    np.testing.assert_allclose(kwh[..., 1], daily)


def test_horizon_scorecard_per_step_skill_and_coverage() -> None:
    rng = np.random.default_rng(1)
    actual = rng.normal(5, 1, (400, 3))
    quantiles = np.stack([actual - 1.3, actual + 0.1, actual + 1.3], axis=-1)
    quantiles[:100, :, 2] = actual[:100] - 0.5  # 100 of 400 windows above P90
    baselines = {"seasonal_naive": actual + 0.5, "persistence": actual - 1.0}
    kinds = np.array([0, 1] * 200)
    card = horizon_scorecard(actual, quantiles, baselines, kinds, SPEC.device_kinds, unit="h")
    step = card["overall"]["steps"]["2h"]
    assert list(card["overall"]["steps"]) == ["1h", "2h", "3h"]
    assert step["model_rmse"] == pytest.approx(0.1)
    assert step["skill_vs_better_baseline"] == pytest.approx(1 - 0.1 / 0.5)
    assert step["coverage_p10_p90"] == pytest.approx(0.75)
    assert card["overall"]["coverage_p10_p90"] == pytest.approx(0.75)
    assert set(card["per_kind"]) == set(SPEC.device_kinds)
    with pytest.raises(ValueError, match="non-empty"):
        horizon_scorecard(actual[:0], quantiles[:0], baselines, kinds, SPEC.device_kinds, unit="h")
