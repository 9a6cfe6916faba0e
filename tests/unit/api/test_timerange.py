"""Bucket grids of local zones across DST changes and in half-hour zones, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from api import timerange
from api.errors import InvalidRequest

pytestmark = pytest.mark.unit

BERLIN = ZoneInfo("Europe/Berlin")
KOLKATA = ZoneInfo("Asia/Kolkata")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("instant", "bucket", "zone", "expected"),
    [
        (utc(2026, 3, 29, 0, 59), "15m", BERLIN, utc(2026, 3, 29, 0, 45)),
        # Spring forward: 01:59+01:00 -> 03:00+02:00 (01:00Z). Each side floors to its own hour.
        (utc(2026, 3, 29, 0, 59), "1h", BERLIN, utc(2026, 3, 29, 0, 0)),
        (utc(2026, 3, 29, 1, 0), "1h", BERLIN, utc(2026, 3, 29, 1, 0)),
        # Fall back: both 02:xx hours are distinct instants (00:00Z at +02:00, 01:00Z at +01:00).
        (utc(2026, 10, 25, 0, 30), "1h", BERLIN, utc(2026, 10, 25, 0, 0)),
        (utc(2026, 10, 25, 1, 30), "1h", BERLIN, utc(2026, 10, 25, 1, 0)),
        # Kolkata is +05:30: its hours start at half past the UTC hour.
        (utc(2026, 3, 29, 4, 45), "1h", KOLKATA, utc(2026, 3, 29, 4, 30)),
        (utc(2026, 3, 29, 4, 15), "1h", KOLKATA, utc(2026, 3, 29, 3, 30)),
        (utc(2026, 3, 29, 18, 29), "1d", KOLKATA, utc(2026, 3, 28, 18, 30)),
        (utc(2026, 3, 29, 18, 30), "1d", KOLKATA, utc(2026, 3, 29, 18, 30)),
        (utc(2026, 3, 29, 12, 0), "1d", BERLIN, utc(2026, 3, 28, 23, 0)),
        (utc(2026, 10, 25, 12, 0), "1d", BERLIN, utc(2026, 10, 24, 22, 0)),
    ],
)
def test_floor(
    instant: datetime, bucket: timerange.Bucket, zone: ZoneInfo, expected: datetime
) -> None:
    assert timerange.floor(instant, bucket, zone) == expected


def test_dst_days_last_23_and_25_hours() -> None:
    spring = timerange.floor(utc(2026, 3, 29, 12), "1d", BERLIN)
    autumn = timerange.floor(utc(2026, 10, 25, 12), "1d", BERLIN)
    assert timerange.following(spring, "1d", BERLIN) - spring == timedelta(hours=23)
    assert timerange.following(autumn, "1d", BERLIN) - autumn == timedelta(hours=25)


def test_fall_back_day_has_25_distinct_local_hours() -> None:
    day = timerange.floor(utc(2026, 10, 25, 12), "1d", BERLIN)
    end = timerange.following(day, "1d", BERLIN)
    hours = []
    while day < end:
        hours.append(day.astimezone(BERLIN).isoformat())
        day = timerange.following(day, "1h", BERLIN)
    assert len(hours) == 25
    assert hours[2:4] == ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00"]


def test_align_widens_to_whole_buckets() -> None:
    first, last = timerange.align(utc(2026, 3, 29, 4, 40), utc(2026, 3, 29, 6, 31), "1h", KOLKATA)
    assert (first, last) == (utc(2026, 3, 29, 4, 30), utc(2026, 3, 29, 6, 30) + timedelta(hours=1))
    first, last = timerange.align(utc(2026, 3, 29, 4, 30), utc(2026, 3, 29, 6, 30), "1h", KOLKATA)
    assert (first, last) == (utc(2026, 3, 29, 4, 30), utc(2026, 3, 29, 6, 30))


def test_unknown_zone_is_a_422_naming_it() -> None:
    with pytest.raises(InvalidRequest, match="Mars/Olympus_Mons"):
        timerange.zone("Mars/Olympus_Mons")
    assert timerange.zone("UTC") == ZoneInfo("UTC")


@pytest.mark.parametrize(
    ("start", "end", "needle"),
    [
        (utc(2026, 1, 2), utc(2026, 1, 1), "must be after"),
        (utc(2026, 1, 1), utc(2026, 1, 1), "must be after"),
        (utc(2026, 1, 1), utc(2026, 3, 1), "longer than"),
    ],
)
def test_bad_ranges(start: datetime, end: datetime, needle: str) -> None:
    with pytest.raises(InvalidRequest, match=needle):
        timerange.check_range(start, end, timedelta(days=31))


def test_defaults() -> None:
    now = utc(2026, 1, 2)
    assert timerange.resolve_range(None, None, now=now, window=timedelta(hours=24)) == (
        utc(2026, 1, 1),
        now,
    )
