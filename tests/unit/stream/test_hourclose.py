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


def test_a_burst_of_more_closed_hours_than_retained_still_forecasts_each() -> None:
    """A catch-up (or a watermark jump) closes 70 hours of one device at once: every hour from
    the 24th on asks for its forecast with 24 hours of history and its seasonal-naive baseline,
    the same as when the hours close one by one (the retained history was trimmed too early)."""
    start = datetime(2026, 6, 1, 0, 30, tzinfo=UTC)

    def device() -> DeviceState:
        windows = DeviceWindows(device_id="d1", tz="Asia/Kathmandu", partition=0)
        return DeviceState(windows=windows, kind="household_meter")

    def reading(k: int) -> Reading:
        at = start + timedelta(hours=k)
        return Reading(
            device_id="d1",
            seq=k,
            ts=at.astimezone(ZoneInfo("Asia/Kathmandu")),
            tz="Asia/Kathmandu",
            interval_s=3600,
            energy=Energy(value=1.0 + 0.01 * (at.hour % 24) + 0.002 * k),
            power=Power(value=1.0),
        )

    one_by_one, expected = device(), []
    for k in range(71):
        one_by_one.windows.apply(reading(k), offset=k)
        due = one_by_one.windows.close_due(start + timedelta(hours=k), SILENT)
        expected += run(one_by_one, due).requests  # each hour handled as it closes
    burst = device()
    for k in range(71):
        burst.windows.apply(reading(k), offset=k)
    closed = burst.windows.close_due(start + timedelta(hours=70), SILENT)
    assert len(closed) == 70
    got = run(burst, closed).requests
    assert len(got) == len(expected) == 70 - 23
    assert [r.history_kwh for r in got] == [r.history_kwh for r in expected]
    assert [r.baseline_kwh for r in got] == [r.baseline_kwh for r in expected]
    assert len(burst.windows.closed) <= 48 + 70  # bounded: trimmed again at the next close
