from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from stream.core.horizons import interval_coverage
from stream.forecast.calibration import (
    MISS_PER_SIDE,
    IntervalCalibration,
    blend_weights,
    width_factors,
)
from stream.forecast.features import DeviceSeries, FeatureSpec, KindScaling, Scaler
from stream.forecast.horizon_training import baselines_scaled, model_inputs
from stream.forecast.trajectories import build_trajectory_windows

pytestmark = pytest.mark.unit

KINDS = ("household_meter", "solar_inverter")


def calibrated(quantiles: np.ndarray, factors: np.ndarray, kind_index: np.ndarray) -> np.ndarray:
    """What the serving function does with the factors (numpy here)."""
    median = quantiles[..., 1]
    own = factors[kind_index]
    low = median - own[..., 0] * (median - quantiles[..., 0])
    high = median + own[..., 1] * (quantiles[..., 2] - median)
    return np.stack([low, median, high], axis=-1)


def test_factors_bring_each_kind_to_the_target_coverage_on_the_data_they_were_fitted_on() -> None:
    rng = np.random.default_rng(3)
    n, steps = 4000, 5
    kind_index = rng.integers(0, 2, n)
    spread = np.where(kind_index == 0, 1.0, 3.0)[:, None]  # kind 1 is three times wider
    actual = rng.normal(0, 1, (n, steps)) * spread
    unit = np.stack([-np.ones((n, steps)), np.zeros((n, steps)), np.ones((n, steps))], -1)
    factors = width_factors(actual, unit, kind_index, kinds=2)
    assert factors.shape == (2, steps, 2)
    normal = 1.3408  # the standard normal's 91st percentile
    assert MISS_PER_SIDE == 0.09
    assert np.allclose(factors[0], normal, rtol=0.15)
    assert np.allclose(factors[1], 3 * normal, rtol=0.15)
    fixed = calibrated(unit, factors, kind_index)
    for kind in (0, 1):
        mask = kind_index == kind
        raw = interval_coverage(actual[mask], unit[mask][..., 0], unit[mask][..., 2])
        got = interval_coverage(actual[mask], fixed[mask][..., 0], fixed[mask][..., 2])
        assert raw < 0.7 if kind == 0 else raw < 0.3
        assert got == pytest.approx(1 - 2 * MISS_PER_SIDE, abs=0.01)


def test_a_biased_median_gets_a_zero_factor_never_a_negative_one() -> None:
    actual = np.linspace(1, 2, 200)[:, None]  # every actual above the median
    quantiles = np.tile([-1.0, 0.0, 1.0], (200, 1, 1))
    factors = width_factors(actual, quantiles, np.zeros(200, np.int64), kinds=2)
    assert factors[0, 0, 0] == 0.0  # P10 = P50: still ordered
    assert factors[0, 0, 1] == pytest.approx(1.91, abs=0.01)
    assert factors[1].tolist() == [[1.0, 1.0]]  # a kind without windows is left alone


def test_the_blend_weighs_a_noisy_correction_down_and_keeps_a_good_one() -> None:
    rng = np.random.default_rng(5)
    n = 5000
    base = rng.normal(0, 1, (n, 2))
    persistence = rng.normal(0, 1, n)
    signal = rng.normal(0, 1, (n, 2))
    actual = base + signal
    median = base.copy()
    median[:, 0] += signal[:, 0]  # step 1: the model's correction is the truth
    median[:, 1] += signal[:, 1] + rng.normal(0, 1, n)  # step 2: the truth plus as much noise
    kinds = np.zeros(n, np.int64)
    weights = blend_weights(actual, median, base, persistence, kinds, kinds=2)
    assert weights[0, 0] == pytest.approx([1.0, 0.0], abs=0.01)
    assert weights[0, 1] == pytest.approx([0.5, 0.0], abs=0.05)  # half: the least squares
    assert weights[1].tolist() == [[1.0, 0.0], [1.0, 0.0]]  # no window: the model as it is
    shrunk = base[:, 1] + weights[0, 1, 0] * (median[:, 1] - base[:, 1])
    rmse = {name: np.sqrt(np.mean((f - actual[:, 1]) ** 2)) for name, f in
            (("model", median[:, 1]), ("baseline", base[:, 1]), ("blend", shrunk))}  # fmt: skip
    assert rmse["blend"] < 0.9 * min(rmse["model"], rmse["baseline"])


def test_calibration_round_trips_by_kind_name() -> None:
    hourly = np.arange(2 * 24 * 2, dtype=np.float64).reshape(2, 24, 2) / 10
    daily = np.ones((2, 7, 2))
    calibration = IntervalCalibration(hourly, daily, {"hourly": 10, "daily": 5}, hourly * 2)
    stored = calibration.to_dict(KINDS)
    assert stored["hourly_blend"]["solar_inverter"][0] == [9.6, 9.8]
    assert stored["hourly"]["solar_inverter"][0] == [4.8, 4.9]
    again = IntervalCalibration.from_dict(stored, tuple(reversed(KINDS)))
    assert np.array_equal(again.hourly, hourly[::-1]) and again.windows == calibration.windows
    assert again.hourly_blend is not None
    assert np.array_equal(again.hourly_blend, 2 * hourly[::-1])
    with pytest.raises(ValueError, match="fridge"):
        IntervalCalibration.from_dict(stored, ("fridge",))
    with pytest.raises(ValueError, match="negative"):
        IntervalCalibration(-hourly, daily, {})


def test_residual_targets_plus_seasonal_naive_are_the_targets() -> None:
    spec = FeatureSpec(24, KINDS)
    scaler = Scaler({k: KindScaling(0.5, 2.0) for k in KINDS})
    values = np.random.default_rng(1).gamma(2.0, 0.3, 24 + 168 + 30)
    start = datetime(2026, 3, 2, tzinfo=UTC)
    windows = build_trajectory_windows(
        spec, [DeviceSeries("d-1", "solar_inverter", "Europe/Berlin", start, values)]
    )
    encoded, plain = model_inputs(spec, scaler, windows)
    _, residual = model_inputs(spec, scaler, windows, residual=True)
    hourly_base, daily_base = baselines_scaled(encoded, 24)
    np.testing.assert_allclose(residual[1] + hourly_base, plain[1], atol=1e-6)
    np.testing.assert_allclose(residual[2] + daily_base, plain[2], atol=1e-6)
    np.testing.assert_array_equal(residual[0], plain[0])  # the next hour stays absolute
    # the bases: persistence for the first step, seasonal-naive for the others, and the last
    # 24 hours' mean for a day's hourly mean
    np.testing.assert_allclose(hourly_base[:, 0] * 2.0 + 0.5, windows.history_kwh[:, -1], atol=1e-5)
    np.testing.assert_allclose(
        hourly_base[:, 1:] * 2.0 + 0.5, windows.history_kwh[:, 1:], atol=1e-5
    )
    np.testing.assert_allclose(
        (daily_base[:, 0] * 2.0 + 0.5) * 24, windows.history_kwh.sum(axis=1), atol=1e-4
    )
