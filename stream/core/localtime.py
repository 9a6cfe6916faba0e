"""Device-local hours as UTC intervals, DST-correct for every IANA zone.

A local hour is identified by (local date, local hour, UTC offset): in Berlin's autumn change
the hour 02:00-03:00 happens twice with different offsets and is two windows; in spring the
hour 02:00 does not exist; in Lord Howe a DST change moves the clock by 30 minutes, so one
local hour lasts 30 minutes (spring) or 90 minutes spread over two windows of 60 and 30
(autumn); in Kolkata (+05:30) every hour runs from :30 to :30 UTC.

Every UTC offset in use is a multiple of 15 minutes, so a local hour's bounds are 15-minute
aligned in UTC: the bounds are found by stepping in 15-minute steps from the instant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

QUARTER = timedelta(minutes=15)
_MAX_STEPS = 8  # a local hour never spans more than 2 h of UTC


@dataclass(frozen=True, slots=True)
class LocalHour:
    start: datetime
    """UTC instant the local hour starts (inclusive)."""
    end: datetime
    """UTC instant it ends (exclusive)."""
    local_date: date
    local_hour: int
    utc_offset: timedelta
    key: str = field(init=False, repr=False, compare=False)
    """``start`` in ISO 8601: the hour's key among a device's open hours (made once per hour
    and zone, not per reading)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", self.start.isoformat())

    @property
    def duration(self) -> timedelta:
        return self.end - self.start


def _key(at: datetime, zone: ZoneInfo) -> tuple[date, int, timedelta | None]:
    local = at.astimezone(zone)
    return local.date(), local.hour, local.utcoffset()


def quarter_seconds(at: datetime) -> int:
    """The start of ``at``'s UTC quarter-hour, in seconds since the epoch."""
    seconds = int(at.timestamp())
    return seconds - seconds % 900


def floor_quarter(at: datetime) -> datetime:
    return datetime.fromtimestamp(quarter_seconds(at), tz=UTC)


@lru_cache(maxsize=65_536)
def _hour_of_quarter(quarter_s: int, tz: str) -> LocalHour:
    """The local hour of the UTC quarter-hour starting ``quarter_s`` seconds after the epoch
    (cached on plain ints: a reading's hour costs a hash, no datetime)."""
    quarter_start = datetime.fromtimestamp(quarter_s, tz=UTC)
    zone = ZoneInfo(tz)
    key = _key(quarter_start, zone)
    start = quarter_start
    for _ in range(_MAX_STEPS):
        if _key(start - QUARTER, zone) != key:
            break
        start -= QUARTER
    end = quarter_start + QUARTER
    for _ in range(_MAX_STEPS):
        if _key(end, zone) != key:
            break
        end += QUARTER
    local_date, local_hour, offset = key
    assert offset is not None
    return LocalHour(start, end, local_date, local_hour, offset)


def local_hour(at: datetime, tz: str) -> LocalHour:
    """The device-local hour containing the aware instant ``at`` in zone ``tz``."""
    if at.tzinfo is None:
        raise ValueError("local_hour needs an aware datetime")
    return _hour_of_quarter(quarter_seconds(at), tz)


def next_local_hour(hour: LocalHour, tz: str) -> LocalHour:
    return local_hour(hour.end, tz)


def previous_local_hour(hour: LocalHour, tz: str) -> LocalHour:
    return local_hour(hour.start - timedelta(microseconds=1), tz)
