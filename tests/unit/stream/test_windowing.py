from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from schema.wire import Energy, Power, Production, Reading
from stream.core.watermark import PartitionWatermarks
from stream.core.windowing import Applied, DeviceWindows

pytestmark = pytest.mark.unit

LATENESS = timedelta(minutes=5)
SILENT = timedelta(hours=3)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def reading(seq: int, at: datetime, tz: str = "Europe/Berlin", kwh: float = 0.25) -> Reading:
    return Reading(
        device_id="d1",
        seq=seq,
        ts=at.astimezone(ZoneInfo(tz)),
        tz=tz,
        interval_s=900,
        energy=Energy(value=kwh),
        power=Power(value=kwh * 4),
    )


def state(tz: str = "Europe/Berlin") -> DeviceWindows:
    return DeviceWindows(device_id="d1", tz=tz, partition=0)


def test_out_of_order_and_duplicates_within_an_hour() -> None:
    dev = state()
    t0 = utc(2026, 6, 1, 10)  # 12:00 Berlin
    outcomes = [
        dev.apply(reading(2, t0 + timedelta(minutes=30), kwh=0.3), offset=0).outcome,
        dev.apply(reading(0, t0, kwh=0.1), offset=1).outcome,
        dev.apply(reading(2, t0 + timedelta(minutes=30), kwh=0.3), offset=2).outcome,
        dev.apply(reading(1, t0 + timedelta(minutes=15), kwh=0.2), offset=3).outcome,
        dev.apply(reading(3, t0 + timedelta(minutes=45), kwh=0.4), offset=4).outcome,
    ]
    assert outcomes == [Applied.ACCEPTED] * 2 + [Applied.DUPLICATE] + [Applied.ACCEPTED] * 2
    (closed,) = dev.close_due(t0 + timedelta(hours=1), SILENT)
    w = closed.window
    assert (w.start, w.end, w.local_hour) == (t0, t0 + timedelta(hours=1), 12)
    assert (w.count, w.expected_count, w.duplicate_count) == (4, 4, 1)
    assert w.energy_kwh == pytest.approx(1.0)
    assert (w.power_min_kw, w.power_max_kw) == (pytest.approx(0.4), pytest.approx(1.6))
    assert w.power_mean_kw == pytest.approx(1.0)
    assert (w.first_ts, w.last_ts) == (t0, t0 + timedelta(minutes=45))
    assert w.completeness == 1.0


def test_production_is_summed_per_local_hour_and_none_when_not_reported() -> None:
    line, meter = state("Asia/Kathmandu"), state("Asia/Kathmandu")
    t0 = utc(2026, 6, 1, 3, 15)  # 09:00 in Kathmandu (+05:45)
    for k, units in enumerate((10.0, 0.0, 12.5, 7.5, 3.0)):  # the fifth is the next hour
        at = t0 + timedelta(minutes=15 * k)
        made = reading(k, at, "Asia/Kathmandu").model_copy(
            update={"production": Production(value=units)}
        )
        assert line.apply(made, offset=2 * k).outcome is Applied.ACCEPTED
        # The same reading again (a duplicate seq) adds nothing.
        assert line.apply(made, offset=2 * k + 1).outcome is Applied.DUPLICATE
        meter.apply(reading(k, at, "Asia/Kathmandu"), offset=k)
    first, second = line.close_due(t0 + timedelta(hours=2), SILENT)
    assert (first.window.local_hour, first.window.production_units) == (9, 30.0)
    assert second.window.production_units == 3.0
    assert [
        c.window.production_units for c in meter.close_due(t0 + timedelta(hours=2), SILENT)
    ] == [
        None,
        None,
    ]


def test_replayed_offsets_change_nothing() -> None:
    dev = state()
    dev.apply(reading(0, utc(2026, 6, 1, 10)), offset=7)
    before = dev.model_dump_json()
    assert dev.apply(reading(1, utc(2026, 6, 1, 10, 15)), offset=7).outcome == Applied.REPLAYED
    assert dev.apply(reading(1, utc(2026, 6, 1, 10, 15)), offset=3).outcome == Applied.REPLAYED
    assert dev.model_dump_json() == before


def test_each_hour_closes_exactly_once() -> None:
    dev = state()
    dev.apply(reading(0, utc(2026, 6, 1, 10)), offset=0)
    assert len(dev.close_due(utc(2026, 6, 1, 11), SILENT)) == 1
    assert dev.close_due(utc(2026, 6, 1, 11), SILENT) == []
    assert dev.close_due(utc(2026, 6, 1, 11, 30), SILENT) == []


def test_late_reading_restates_the_closed_hour() -> None:
    dev = state()
    t0 = utc(2026, 6, 1, 10)
    dev.apply(reading(0, t0, kwh=0.1), offset=0)
    dev.apply(reading(4, t0 + timedelta(hours=1), kwh=0.5), offset=1)
    (first,) = dev.close_due(t0 + timedelta(hours=1), SILENT)
    assert first.window.energy_kwh == pytest.approx(0.1)
    result = dev.apply(reading(1, t0 + timedelta(minutes=15), kwh=0.2), offset=2)
    assert result.outcome == Applied.LATE
    assert result.restated is not None and result.restated.restated
    w = result.restated.window
    assert (w.start, w.count, w.late_count, w.revision) == (t0, 2, 1, 1)
    assert w.energy_kwh == pytest.approx(0.3)
    # The same late reading again is a duplicate, not a second restatement.
    again = dev.apply(reading(1, t0 + timedelta(minutes=15), kwh=0.2), offset=3)
    assert again.outcome == Applied.DUPLICATE
    assert dev.history_kwh(1) == [pytest.approx(0.3)]


def test_reading_older_than_retained_history_is_too_late() -> None:
    dev = state()
    t0 = utc(2026, 6, 1)
    for k in range(60):
        dev.apply(reading(k, t0 + timedelta(hours=k)), offset=k)
    dev.close_due(t0 + timedelta(hours=60), SILENT)
    assert len(dev.retained) == 48
    assert dev.apply(reading(999, t0 + timedelta(minutes=15)), offset=100).outcome == (
        Applied.TOO_LATE
    )
    # The burst's older hours stay for its own forecasts only until the next close.
    assert dev.apply(reading(998, t0 + timedelta(hours=11)), offset=101).outcome == (
        Applied.TOO_LATE
    )
    dev.apply(reading(60, t0 + timedelta(hours=60)), offset=102)
    assert len(dev.close_due(t0 + timedelta(hours=61), SILENT)) == 1
    assert len(dev.closed) == 48 + 1  # the retained hours before the one closed now, and it


def test_silent_device_hour_closes_on_the_watermark_and_empty_hours_stop() -> None:
    dev = state()
    t0 = utc(2026, 6, 1, 10)
    dev.apply(reading(0, t0), offset=0)
    dev.apply(reading(1, t0 + timedelta(minutes=15)), offset=1)
    # The device says nothing more; the partition's watermark moves on with other devices.
    closed = dev.close_due(t0 + timedelta(hours=6), SILENT)
    assert [c.window.start for c in closed] == [t0 + timedelta(hours=h) for h in range(4)]
    assert [c.window.count for c in closed] == [2, 0, 0, 0]
    assert closed[0].window.completeness == 0.5
    assert closed[1].window.completeness == 0.0
    # When it speaks again, hours resume from its new reading, not from the silence.
    dev.apply(reading(2, t0 + timedelta(hours=8)), offset=2)
    resumed = dev.close_due(t0 + timedelta(hours=9), SILENT)
    assert [(c.window.start, c.window.count) for c in resumed] == [(t0 + timedelta(hours=8), 1)]


def test_berlin_autumn_night_gives_two_windows_for_2am() -> None:
    dev = state()
    start = utc(2026, 10, 24, 23)  # 01:00 +02:00
    for k in range(16):  # every 15 minutes for four UTC hours
        dev.apply(reading(k, start + timedelta(minutes=15 * k)), offset=k)
    closed = dev.close_due(start + timedelta(hours=4), SILENT)
    assert [(c.window.local_hour, c.window.count) for c in closed] == [
        (1, 4),
        (2, 4),
        (2, 4),
        (3, 4),
    ]
    assert closed[1].window.end == closed[2].window.start == utc(2026, 10, 25, 1)


def test_berlin_spring_night_skips_2am() -> None:
    dev = state()
    start = utc(2026, 3, 28, 23)  # 00:00 +01:00
    for k in range(12):
        dev.apply(reading(k, start + timedelta(minutes=15 * k)), offset=k)
    closed = dev.close_due(start + timedelta(hours=3), SILENT)
    assert [(c.window.local_hour, c.window.count) for c in closed] == [(0, 4), (1, 4), (3, 4)]


@pytest.mark.parametrize(
    ("tz", "first_start"),
    [("Asia/Kolkata", utc(2026, 6, 1, 4, 30)), ("Asia/Kathmandu", utc(2026, 6, 1, 4, 15))],
)
def test_odd_offsets_align_windows_to_local_hours(tz: str, first_start: datetime) -> None:
    dev = state(tz)
    start = utc(2026, 6, 1, 4, 30)
    for k in range(8):
        dev.apply(reading(k, start + timedelta(minutes=15 * k), tz=tz), offset=k)
    closed = dev.close_due(start + timedelta(hours=2, minutes=15), SILENT)
    assert closed[0].window.start == first_start
    assert sum(c.window.count for c in closed) + sum(w.count for w in dev.open.values()) == 8
    assert all(c.window.end - c.window.start == timedelta(hours=1) for c in closed)


def test_lord_howe_half_hour_window_expects_half_the_readings() -> None:
    dev = state("Australia/Lord_Howe")
    start = utc(2026, 10, 3, 15)  # 01:30 +10:30; the jump to +11:00 is at 15:30 UTC
    for k in range(6):
        dev.apply(reading(k, start + timedelta(minutes=15 * k), tz="Australia/Lord_Howe"), k)
    closed = dev.close_due(start + timedelta(hours=1), SILENT)
    half = [c.window for c in closed if c.window.local_hour == 2]
    assert len(half) == 1
    assert (half[0].end - half[0].start, half[0].expected_count) == (timedelta(minutes=30), 2)


def test_state_round_trips_through_json() -> None:
    dev = state()
    dev.apply(reading(5, utc(2026, 6, 1, 10)), offset=0)
    dev.close_due(utc(2026, 6, 1, 11), SILENT)
    dev.apply(reading(6, utc(2026, 6, 1, 11)), offset=1)
    assert DeviceWindows.model_validate_json(dev.model_dump_json()) == dev


def test_watermark_is_highest_event_minus_lateness_and_fires_on_quarters() -> None:
    marks = PartitionWatermarks(LATENESS)
    assert marks.due(0) is None
    marks.observe(0, utc(2026, 6, 1, 10, 7))
    assert marks.due(0) == utc(2026, 6, 1, 10, 2)
    marks.observe(0, utc(2026, 6, 1, 10, 3))  # older: no change
    marks.observe(0, utc(2026, 6, 1, 10, 12))
    assert marks.due(0) is None  # still in the same quarter
    marks.observe(0, utc(2026, 6, 1, 10, 21))
    assert marks.due(0) == utc(2026, 6, 1, 10, 16)
    assert marks.watermark(1) is None


def test_an_hour_window_holds_only_immutable_values() -> None:
    """Closed-hour snapshots are shallow copies (``DeviceWindows.close_due``): only sound while
    no field of an hour window can be changed in place."""
    windows = state()
    windows.apply(reading(1, utc(2026, 3, 29, 0, 10)), offset=1)
    windows.apply(reading(2, utc(2026, 3, 29, 0, 11)), offset=2)
    (window,) = windows.open.values()
    assert set(window.__dict__) == set(type(window).model_fields)
    immutable = (str, int, float, bool, date, datetime, type(None))
    assert all(isinstance(value, immutable) for value in window.__dict__.values())
