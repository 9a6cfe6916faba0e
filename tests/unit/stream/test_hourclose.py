from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from schema.wire import Energy, Power, Reading
from stream.core.hourclose import DeviceState, HourOutputs, on_closed, record_forecast
from stream.core.windowing import DeviceWindows

pytestmark = pytest.mark.unit

SILENT = timedelta(hours=3)
NOW = datetime(2026, 11, 24, tzinfo=UTC)


def feed(state: DeviceState, start: datetime, hours: int, kwh: float, offset0: int) -> list[object]:
    """One reading per hour (interval 3600 s) for ``hours`` hours; close what is due."""
    tz = state.windows.tz
    closed = []
    for k in range(hours):
        at = start + timedelta(hours=k)
        r = Reading(
            device_id="d1",
            seq=offset0 + k,
            ts=at.astimezone(ZoneInfo(tz)),
            tz=tz,
            interval_s=3600,
            energy=Energy(value=kwh + 0.01 * (at.hour % 24) + 0.002 * (offset0 + k)),
            power=Power(value=kwh),
        )
        state.windows.apply(r, offset=offset0 + k)
        closed += state.windows.close_due(at, SILENT)
    return closed


def run(state: DeviceState, closed: list[object]) -> HourOutputs:
    out = HourOutputs()
    for c in closed:
        out.extend(on_closed(state, c, now=NOW, history_hours=24))  # type: ignore[arg-type]
    return out


def test_no_forecast_without_history_or_kind() -> None:
    state = DeviceState(windows=DeviceWindows(device_id="d1", tz="Asia/Kolkata", partition=0))
    out = run(state, feed(state, datetime(2026, 6, 1, 0, 30, tzinfo=UTC), 30, 1.0, 0))
    assert len(out.hourly) == 29
    assert out.requests == []  # kind unknown
    state.kind = "household_meter"
    out = run(state, feed(state, datetime(2026, 6, 2, 5, 30, tzinfo=UTC), 2, 1.0, 100))
    assert len(out.requests) == 1


def test_forecast_request_targets_next_local_hour_with_naive_baseline() -> None:
    state = DeviceState(
        windows=DeviceWindows(device_id="d1", tz="Asia/Kolkata", partition=0),
        kind="household_meter",
    )
    out = run(state, feed(state, datetime(2026, 6, 1, 0, 30, tzinfo=UTC), 50, 1.0, 0))
    last = out.requests[-1]
    assert last.target.start == out.hourly[-1].hour_end
    assert last.target.start.minute == 30  # Kolkata hours start at :30 UTC
    assert len(last.history_kwh) == 24
    assert last.history_kwh[-1] == pytest.approx(out.hourly[-1].energy_kwh)
    # Same local hour yesterday: 24 closed hours before the target.
    yesterday = next(
        h
        for h in out.hourly
        if h.local_date == last.target.local_date - timedelta(days=1)
        and h.local_hour == last.target.local_hour
    )
    assert last.baseline_kwh == pytest.approx(yesterday.energy_kwh)


def test_forecast_is_scored_when_its_hour_closes() -> None:
    state = DeviceState(
        windows=DeviceWindows(device_id="d1", tz="UTC", partition=0), kind="household_meter"
    )
    start = datetime(2026, 6, 1, tzinfo=UTC)
    out = run(state, feed(state, start, 40, 1.0, 0))
    for k in range(12):  # forecast every next hour slightly off, then close it
        request = out.requests[-1]
        forecast = record_forecast(state, request, out.hourly[-1].energy_kwh + 0.05, "m1", NOW)
        assert forecast.hour_start == request.target.start
        out = run(state, feed(state, start + timedelta(hours=40 + k), 1, 1.0, 40 + k))
    health = out.health[-1]
    scored = state.scored[-1]
    assert scored.predicted_kwh is not None and scored.baseline_kwh is not None
    assert health.rmse_24h is not None and health.naive_rmse_24h is not None
    assert health.rmse_ratio == pytest.approx(health.rmse_24h / health.naive_rmse_24h)
    assert health.status in {"green", "amber", "red"}
    assert health.completeness_24h == 1.0


def test_restated_hour_is_rewritten_and_rescored() -> None:
    state = DeviceState(windows=DeviceWindows(device_id="d1", tz="UTC", partition=0))
    start = datetime(2026, 6, 1, tzinfo=UTC)
    run(state, feed(state, start, 5, 1.0, 0))
    late = Reading(
        device_id="d1",
        seq=999,
        ts=start + timedelta(hours=1, minutes=30),
        tz="UTC",
        interval_s=3600,
        energy=Energy(value=0.5),
        power=Power(value=0.5),
    )
    result = state.windows.apply(late, offset=500)
    assert result.restated is not None
    out = on_closed(state, result.restated, now=NOW, history_hours=24)
    assert out.hourly[0].revision == 1
    assert out.hourly[0].hour_start == start + timedelta(hours=1)
    assert out.hourly[0].local_date == date(2026, 6, 1)
    assert state.scored[1].actual_kwh == pytest.approx(out.hourly[0].energy_kwh)
    assert out.health[0].hour_start == start + timedelta(hours=1)
