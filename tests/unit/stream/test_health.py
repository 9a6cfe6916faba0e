from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from schema.results import Health
from stream.core.health import (
    ScoredHour,
    Status,
    device_health,
    status_of,
)
from stream.forecast.baselines import error_metrics

pytestmark = pytest.mark.unit

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def health_of(scored: list[ScoredHour], online: bool | None = None) -> Health:
    return device_health("d1", scored, online=online, last_seen=None, computed_at=T0)


def hour(
    k: int, actual: float, predicted: float | None, baseline: float | None, **kw: int
) -> ScoredHour:
    return ScoredHour(
        hour_start=T0 + timedelta(hours=k),
        actual_kwh=actual,
        predicted_kwh=predicted,
        baseline_kwh=baseline,
        reading_count=kw.get("count", 4),
        expected_count=4,
        late_count=kw.get("late", 0),
        duplicate_count=kw.get("dups", 0),
    )


def test_metrics_are_exact_on_a_known_series() -> None:
    # Residuals alternate +0.1/-0.1; the naive baseline is off by 0.2 every hour.
    scored = [hour(k, 1.0, 1.0 + (0.1 if k % 2 else -0.1), 1.2) for k in range(8)]
    m = health_of(scored, online=True)
    assert m.rmse_24h == pytest.approx(0.1)
    assert m.mae_24h == pytest.approx(0.1)
    assert m.bias_24h == pytest.approx(0.0)
    assert m.mape_24h == pytest.approx(0.1)
    assert m.naive_rmse_24h == pytest.approx(0.2)
    assert m.rmse_ratio == pytest.approx(0.5)
    assert (m.completeness_24h, m.gaps_24h, m.status) == (1.0, 0, Status.GREEN)


def test_bias_is_forecast_minus_actual_as_in_the_training_scorecard() -> None:
    # Forecasts 0.3 kWh too high every hour: an over-forecast, a positive bias (and the same
    # number error_metrics gives the model card for the same hours).
    scored = [hour(k, 1.0, 1.3, 1.2) for k in range(8)]
    m = health_of(scored)
    assert m.bias_24h == pytest.approx(0.3)
    card = error_metrics(np.full(8, 1.0), np.full(8, 1.3))
    assert card["bias"] == pytest.approx(m.bias_24h)


def test_only_the_last_24_hours_count() -> None:
    old = [hour(k, 1.0, 3.0, 1.0, count=0) for k in range(10)]
    new = [hour(10 + k, 1.0, 1.0, 1.5) for k in range(24)]
    m = health_of(old + new)
    assert m.rmse_24h == pytest.approx(0.0)
    assert (m.completeness_24h, m.gaps_24h) == (1.0, 0)


def test_data_quality_counts() -> None:
    scored = [hour(0, 1.0, None, None, count=0), hour(1, 1.0, None, None, count=2, late=1, dups=3)]
    m = health_of(scored)
    assert (m.completeness_24h, m.gaps_24h, m.late_24h, m.duplicates_24h) == (0.25, 1, 1, 3)
    assert m.rmse_24h is None
    assert m.status == Status.RED  # completeness below 80 %


def test_mape_leaves_out_near_zero_actuals() -> None:
    scored = [hour(k, 0.0 if k % 2 else 2.0, 0.5 if k % 2 else 1.0, 1.0) for k in range(12)]
    assert health_of(scored).mape_24h == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("ratio", "completeness", "online", "scored", "expected"),
    [
        (0.5, 1.0, True, 10, Status.GREEN),
        (0.95, 1.0, True, 10, Status.AMBER),
        (0.5, 0.9, True, 10, Status.AMBER),
        (1.2, 1.0, True, 10, Status.RED),
        (0.5, 0.7, True, 10, Status.RED),
        (0.5, 1.0, False, 10, Status.RED),
        (0.5, 1.0, None, 3, Status.UNKNOWN),
        (None, 1.0, True, 10, Status.UNKNOWN),
    ],
)
def test_status_thresholds(
    ratio: float | None, completeness: float, online: bool | None, scored: int, expected: Status
) -> None:
    assert status_of(ratio, completeness, online=online, scored=scored) == expected


def test_a_flat_series_is_judged_by_absolute_error() -> None:
    idle = [hour(k, 0.002, 0.0021, 0.002) for k in range(8)]  # naive is exact, model nearly
    m = health_of(idle, online=True)
    assert m.rmse_ratio is None
    assert m.status == Status.GREEN
    off = [hour(k, 0.002, 0.05, 0.002) for k in range(8)]
    assert health_of(off, online=True).status == Status.AMBER
