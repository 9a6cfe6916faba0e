from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from stream.core.localtime import local_hour, next_local_hour, previous_local_hour

pytestmark = pytest.mark.unit


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def local_day_hours(day: date, tz: str) -> list[tuple[int, timedelta, timedelta]]:
    """(local hour, duration, utc offset) of every local hour of a local day."""
    zone = ZoneInfo(tz)
    hour = local_hour(datetime(day.year, day.month, day.day, tzinfo=zone), tz)
    hours = []
    while hour.local_date == day:
        hours.append((hour.local_hour, hour.duration, hour.utc_offset))
        hour = next_local_hour(hour, tz)
    return hours


def test_kolkata_hours_run_from_half_past_to_half_past_utc() -> None:
    hour = local_hour(utc(2026, 6, 1, 4, 50), "Asia/Kolkata")  # 10:20 local
    assert (hour.start, hour.end) == (utc(2026, 6, 1, 4, 30), utc(2026, 6, 1, 5, 30))
    assert (hour.local_date, hour.local_hour) == (date(2026, 6, 1), 10)


def test_kathmandu_hours_start_at_quarter_past_utc() -> None:
    hour = local_hour(utc(2026, 6, 1, 4, 14, 59), "Asia/Kathmandu")  # 09:59:59 local
    assert (hour.start, hour.end) == (utc(2026, 6, 1, 3, 15), utc(2026, 6, 1, 4, 15))
    assert hour.local_hour == 9


def test_berlin_spring_day_has_23_hours_and_no_2am() -> None:
    hours = local_day_hours(date(2026, 3, 29), "Europe/Berlin")
    assert len(hours) == 23
    assert [h for h, _, _ in hours][:4] == [0, 1, 3, 4]
    assert all(d == timedelta(hours=1) for _, d, _ in hours)


def test_berlin_autumn_day_has_25_hours_with_2am_twice() -> None:
    hours = local_day_hours(date(2026, 10, 25), "Europe/Berlin")
    assert len(hours) == 25
    twice = [(h, off) for h, _, off in hours if h == 2]
    assert twice == [(2, timedelta(hours=2)), (2, timedelta(hours=1))]
    first = local_hour(utc(2026, 10, 25, 0, 30), "Europe/Berlin")
    second = local_hour(utc(2026, 10, 25, 1, 30), "Europe/Berlin")
    assert first.local_hour == second.local_hour == 2
    assert first.end == second.start == utc(2026, 10, 25, 1)


def test_lord_howe_spring_hour_lasts_30_minutes() -> None:
    # 2026-10-04 02:00 local (+10:30) jumps to 02:30 (+11:00).
    hours = local_day_hours(date(2026, 10, 4), "Australia/Lord_Howe")
    durations = {h: d for h, d, _ in hours}
    assert durations[2] == timedelta(minutes=30)
    assert sum((d for _, d, _ in hours), timedelta()) == timedelta(hours=23, minutes=30)


def test_lord_howe_autumn_day_is_24_and_a_half_hours() -> None:
    # 2026-04-05 02:00 local (+11:00) falls back to 01:30 (+10:30).
    hours = local_day_hours(date(2026, 4, 5), "Australia/Lord_Howe")
    assert sum((d for _, d, _ in hours), timedelta()) == timedelta(hours=24, minutes=30)
    ones = [(d, off) for h, d, off in hours if h == 1]
    assert ones == [
        (timedelta(hours=1), timedelta(hours=11)),
        (timedelta(minutes=30), timedelta(hours=10, minutes=30)),
    ]


@pytest.mark.parametrize("tz", ["UTC", "Asia/Kolkata", "America/St_Johns", "Europe/Berlin"])
def test_hours_tile_time_without_gaps(tz: str) -> None:
    hour = local_hour(utc(2026, 3, 27), tz)
    for _ in range(24 * 5):
        following = next_local_hour(hour, tz)
        assert following.start == hour.end
        assert previous_local_hour(following, tz) == hour
        hour = following


def test_naive_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        local_hour(datetime(2026, 1, 1), "UTC")  # noqa: DTZ001
