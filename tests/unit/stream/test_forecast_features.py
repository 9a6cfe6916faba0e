"""Pure feature building, scaling and baselines of the forecaster (no TensorFlow)."""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from stream.forecast.baselines import error_metrics, persistence, scorecard, seasonal_naive
from stream.forecast.errors import UnsupportedInput
from stream.forecast.features import (
    DeviceSeries,
    FeatureSpec,
    ForecastInput,
    KindScaling,
    Scaler,
    build_windows,
    calendar_features,
    encode,
    encode_inputs,
    inverse_scale,
    scale_targets,
)

pytestmark = pytest.mark.unit

SPEC = FeatureSpec(history_hours=24, device_kinds=("household_meter", "solar_inverter"))
SCALER = Scaler(
    {"household_meter": KindScaling(1.0, 0.5), "solar_inverter": KindScaling(-2.0, 4.0)}
)


def angle(sin: float, cos: float, period: float) -> float:
    return (math.atan2(sin, cos) / (2 * math.pi) * period) % period


def test_calendar_uses_the_local_hour_including_half_hour_zones() -> None:
    # 00:00 UTC is 05:30 in Kolkata (a Monday) and 01:00 in Berlin (winter).
    at = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
    hour_sin, hour_cos, day_sin, day_cos = calendar_features(at, "Asia/Kolkata")
    assert angle(hour_sin, hour_cos, 24) == pytest.approx(5.5)
    assert angle(day_sin, day_cos, 7) == pytest.approx(0)  # Monday
    assert angle(*calendar_features(at, "Europe/Berlin")[:2], 24) == pytest.approx(1.0)
    # The same instant is still Sunday evening in New York.
    ny = calendar_features(at, "America/New_York")
    assert angle(ny[0], ny[1], 24) == pytest.approx(19.0)
    assert angle(ny[2], ny[3], 7) == pytest.approx(6)


def test_calendar_follows_dst_in_the_devices_zone() -> None:
    before = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)  # 01:00 CET
    after = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST: 02:00 never happens
    assert angle(*calendar_features(before, "Europe/Berlin")[:2], 24) == pytest.approx(1.0)
    assert angle(*calendar_features(after, "Europe/Berlin")[:2], 24) == pytest.approx(3.0)


def test_calendar_refuses_naive_times() -> None:
    with pytest.raises(UnsupportedInput, match="naive"):
        calendar_features(datetime(2026, 1, 5), "UTC")  # noqa: DTZ001 - the point of the test


def test_feature_spec_round_trips_and_refuses_nonsense() -> None:
    assert FeatureSpec.from_dict(SPEC.to_dict()) == SPEC
    assert SPEC.static_feature_names[-2:] == ("kind=household_meter", "kind=solar_inverter")
    with pytest.raises(ValueError, match="distinct"):
        FeatureSpec(24, ("a", "a"))
    with pytest.raises(ValueError, match="layout"):
        FeatureSpec.from_dict({**SPEC.to_dict(), "layout_version": 99})


def test_scaler_fits_per_kind_round_trips_and_inverts() -> None:
    values = np.array([1.0, 3.0, -10.0, -20.0, -30.0])
    kinds = np.array([0, 0, 1, 1, 1])
    scaler = Scaler.fit(SPEC, values, kinds)
    assert scaler.by_kind["household_meter"] == KindScaling(2.0, 1.0)
    assert scaler.by_kind["solar_inverter"].mean == pytest.approx(-20.0)
    assert Scaler.from_dict(scaler.to_dict()) == scaler
    scaled = scale_targets(SPEC, scaler, values, kinds)
    np.testing.assert_allclose(scaled[:2], [-1.0, 1.0])
    np.testing.assert_allclose(inverse_scale(SPEC, scaler, scaled, kinds), values)


def test_scaler_refuses_a_zero_std_and_missing_kinds() -> None:
    with pytest.raises(ValueError, match="positive"):
        Scaler({"household_meter": KindScaling(1.0, 0.0)})
    with pytest.raises(ValueError, match="no entry"):
        Scaler({"household_meter": KindScaling(1.0, 1.0)}).aligned(SPEC)


def test_encode_scales_by_kind_and_one_hot_encodes() -> None:
    history = np.vstack([np.full(24, 1.5), np.full(24, 2.0)])
    calendar = np.array([[0.0, 1.0, 0.0, 1.0], [1.0, 0.0, 1.0, 0.0]])
    encoded = encode(SPEC, SCALER, history, np.array([0, 1]), calendar)
    assert encoded.sequence.shape == (2, 24, 1)
    assert encoded.sequence.dtype == np.float32
    np.testing.assert_allclose(encoded.sequence[0, :, 0], 1.0)  # (1.5 - 1) / 0.5
    np.testing.assert_allclose(encoded.sequence[1, :, 0], 1.0)  # (2 - -2) / 4
    np.testing.assert_array_equal(encoded.static[:, 4:], [[1, 0], [0, 1]])
    np.testing.assert_array_equal(encoded.static[:, :4], calendar)


def window(kind: str = "household_meter", hours: int = 24, **changes: object) -> ForecastInput:
    values: dict[str, object] = {
        "device_id": "dev-1",
        "kind": kind,
        "tz": "Asia/Kolkata",
        "next_hour_start": datetime(2026, 1, 5, tzinfo=UTC),
        "history_kwh": [float(i) for i in range(hours)],
    }
    values.update(changes)
    return ForecastInput(**values)  # type: ignore[arg-type]


def test_encode_inputs_takes_the_tail_of_a_longer_history() -> None:
    long, exact = window(hours=30), window(history_kwh=[float(i) for i in range(6, 30)])
    a, b = encode_inputs(SPEC, SCALER, [long]), encode_inputs(SPEC, SCALER, [exact])
    np.testing.assert_array_equal(a.sequence, b.sequence)
    np.testing.assert_allclose(
        a.static[0, :4], calendar_features(long.next_hour_start, "Asia/Kolkata")
    )


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (window(hours=23), "23 closed hours"),
        (window(kind="toaster"), "unknown to this model"),
        (window(history_kwh=[*[1.0] * 23, float("nan")]), "non-finite"),
        (window(next_hour_start=datetime(2026, 1, 5)), "naive"),  # noqa: DTZ001
    ],
)
def test_encode_inputs_refuses_what_it_cannot_serve(bad: ForecastInput, match: str) -> None:
    with pytest.raises(UnsupportedInput, match=match):
        encode_inputs(SPEC, SCALER, [window(), bad])
    assert isinstance(UnsupportedInput("x"), ValueError)


def test_windows_skip_gaps_and_carry_the_target_hour() -> None:
    start = datetime(2026, 1, 5, tzinfo=UTC)
    values = np.arange(60, dtype=np.float64)
    values[30] = np.nan  # a missing hour: no window may contain it
    series = [DeviceSeries("dev-1", "solar_inverter", "Asia/Kathmandu", start, values)]
    windows = build_windows(SPEC, series)
    # Targets 24..59 are possible; those with hour 30 in history or target (30..54) are not.
    expected_targets = [24, 25, 26, 27, 28, 29, 55, 56, 57, 58, 59]
    assert len(windows) == len(expected_targets)
    np.testing.assert_array_equal(windows.target_kwh, expected_targets)
    np.testing.assert_array_equal(windows.history_kwh[0], np.arange(24))
    np.testing.assert_array_equal(windows.history_kwh[-1], np.arange(35, 59))
    np.testing.assert_array_equal(windows.kind_index, 1)
    first_target = start + timedelta(hours=24)
    assert windows.target_hour[0] * 3600 == first_target.timestamp()
    np.testing.assert_allclose(
        windows.calendar[0], calendar_features(first_target, "Asia/Kathmandu")
    )


def test_baselines_pick_yesterday_and_the_last_hour() -> None:
    history = np.arange(48, dtype=np.float64).reshape(2, 24)
    np.testing.assert_array_equal(seasonal_naive(history), [0, 24])
    np.testing.assert_array_equal(persistence(history), [23, 47])
    with pytest.raises(ValueError, match="24 hours"):
        seasonal_naive(history[:, :12])


def test_metrics_and_scorecard() -> None:
    actual = np.array([1.0, 2.0, 3.0, 4.0])
    metrics = error_metrics(actual, np.array([2.0, 2.0, 3.0, 2.0]))
    assert metrics == {"rmse": pytest.approx(math.sqrt(5 / 4)), "mae": 0.75, "bias": -0.25, "n": 4}
    card = scorecard(
        actual,
        {"model": actual + 0.5, "seasonal_naive": actual + np.array([1.0, -1.0, 2.0, -2.0])},
        np.array([0, 0, 1, 1]),
        ("household_meter", "solar_inverter", "never_seen"),
    )
    assert set(card["per_kind"]) == {"household_meter", "solar_inverter"}
    assert card["per_kind"]["household_meter"]["skill_vs_seasonal_naive"]["model"] == pytest.approx(
        0.5
    )
    assert card["per_kind"]["solar_inverter"]["skill_vs_seasonal_naive"]["model"] == pytest.approx(
        0.75
    )
    overall = card["overall"]
    assert overall["skill_vs_seasonal_naive"]["model"] == pytest.approx(1 - 0.5 / math.sqrt(10 / 4))


def test_importing_the_package_and_its_pure_modules_does_not_import_tensorflow() -> None:
    code = (
        "import sys, stream.forecast, stream.forecast.features, stream.forecast.baselines, "
        "stream.forecast.train; sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
