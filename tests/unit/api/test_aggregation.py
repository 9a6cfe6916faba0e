"""Composing 15-minute UTC rows into local hours and days, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from api.aggregation import QuarterRow, compose

pytestmark = pytest.mark.unit

BERLIN = ZoneInfo("Europe/Berlin")
KOLKATA = ZoneInfo("Asia/Kolkata")


def quarters(start: datetime, count: int, energy: float = 1.0) -> list[QuarterRow]:
    return [
        QuarterRow(start + timedelta(minutes=15 * k), energy, 3, 2.0 + k, 1.0 + k, 3.0 + k)
        for k in range(count)
    ]


def test_fall_back_hours_stay_apart_and_the_day_has_100_quarters() -> None:
    # Berlin 2026-10-25: local day from 2026-10-24T22:00Z to 2026-10-25T23:00Z (25 h).
    rows = quarters(datetime(2026, 10, 24, 22, tzinfo=UTC), 100)
    hours = compose(rows, "1h", BERLIN)
    assert len(hours) == 25
    assert [h.start.isoformat() for h in hours[2:4]] == [
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",
    ]
    assert all(h.quarters == 4 and h.expected_quarters == 4 for h in hours)
    (day,) = compose(rows, "1d", BERLIN)
    assert day.start.isoformat() == "2026-10-25T00:00:00+02:00"
    assert day.end.isoformat() == "2026-10-26T00:00:00+01:00"
    assert (day.quarters, day.expected_quarters) == (100, 100)
    assert day.energy_kwh == pytest.approx(100.0)
    assert day.reading_count == 300


def test_spring_forward_day_has_23_hours() -> None:
    rows = quarters(datetime(2026, 3, 28, 23, tzinfo=UTC), 92)
    hours = compose(rows, "1h", BERLIN)
    assert [h.start.isoformat() for h in hours[1:3]] == [
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T03:00:00+02:00",
    ]
    (day,) = compose(rows, "1d", BERLIN)
    assert day.expected_quarters == 92


def test_kolkata_hours_take_the_quarters_from_half_past() -> None:
    rows = quarters(datetime(2026, 3, 29, 4, 0, tzinfo=UTC), 6)  # 04:00Z..05:15Z
    hours = compose(rows, "1h", KOLKATA)
    assert [(h.start.isoformat(), h.quarters) for h in hours] == [
        ("2026-03-29T09:00:00+05:30", 2),  # 03:30Z-04:30Z: only 04:00 and 04:15
        ("2026-03-29T10:00:00+05:30", 4),  # 04:30Z-05:30Z
    ]
    second = hours[1]
    # Parts 2..5 have means 4, 5, 6, 7 (3 readings each): mean 5.5; min of mins, max of maxes.
    assert second.power_mean_kw == pytest.approx(5.5)
    assert (second.power_min_kw, second.power_max_kw) == (3.0, 8.0)


def test_utc_zone_is_shown_with_a_zero_offset() -> None:
    (hour,) = compose(quarters(datetime(2026, 3, 29, 1, tzinfo=UTC), 4), "1h", ZoneInfo("UTC"))
    assert hour.start.utcoffset() == timedelta(0)
    assert hour.start == datetime(2026, 3, 29, 1, tzinfo=UTC)


def test_missing_power_is_ignored_in_the_mean() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [QuarterRow(start, 1.0, 2, None, None, None), QuarterRow(start, 1.0, 2, 4.0, 4.0, 4.0)]
    (hour,) = compose(rows, "1h", ZoneInfo("UTC"))
    assert hour.power_mean_kw == 4.0
    assert compose([], "1h", BERLIN) == []
