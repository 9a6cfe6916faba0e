"""Time zones, ranges and bucket grids of queries: pure functions, no I/O.

Buckets are half-open ``[start, end)`` instants. A ``15m`` bucket is a UTC quarter hour; a
``1h`` or ``1d`` bucket is a local hour or day of a zone, so a day lasts 23, 24 or 25 hours
across a DST change, and a fall-back day has two local hours that both read 02:00 (one at
+02:00, one at +01:00). Every UTC offset in use is a multiple of 15 minutes, so 15-minute UTC
buckets tile any local hour or day exactly.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from api.errors import InvalidRequest

Bucket = Literal["15m", "1h", "1d"]
BUCKETS: tuple[Bucket, ...] = get_args(Bucket)
QUARTER = timedelta(minutes=15)
_EPOCH = datetime(2000, 1, 3, tzinfo=UTC)  # the rollups' bucket origin (a UTC midnight)


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (``UTC`` included); an unknown one is a 422 that says so."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidRequest(
            f"tz: unknown time zone {name!r}; use 'device', 'UTC' or an IANA name such as "
            "'Europe/Berlin'",
            title="Unknown time zone",
        ) from exc


def check_range(start: datetime, end: datetime, longest: timedelta) -> None:
    """Refuse a reversed, empty or too long range with a 422 that says why."""
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidRequest("start and end need a UTC offset (ISO-8601, e.g. ...T00:00:00Z)")
    if end <= start:
        raise InvalidRequest(
            f"end ({end.isoformat()}) must be after start ({start.isoformat()})",
            title="Invalid range",
        )
    if end - start > longest:
        raise InvalidRequest(
            f"range of {end - start} is longer than the maximum of {longest} for this query",
            title="Range too long",
        )


def resolve_range(
    start: datetime | None, end: datetime | None, *, now: datetime, window: timedelta
) -> tuple[datetime, datetime]:
    """Fill in the defaults: ``end`` = now, ``start`` = ``end - window``."""
    end = end if end is not None else now
    start = start if start is not None else end - window
    return start, end


def floor(instant: datetime, bucket: Bucket, tz: ZoneInfo) -> datetime:
    """Start (UTC) of the bucket of ``tz`` that holds ``instant``."""
    instant = instant.astimezone(UTC)
    if bucket == "15m":
        return instant - (instant - _EPOCH) % QUARTER
    local = instant.astimezone(tz)
    if bucket == "1h":
        into_hour = timedelta(
            minutes=local.minute, seconds=local.second, microseconds=local.microsecond
        )
        return instant - into_hour
    return day_start(local.date(), tz)


def day_start(day: date, tz: ZoneInfo) -> datetime:
    """First instant (UTC) of the local ``day``; where midnight is skipped, the day starts
    at the transition (``fold=0`` maps a skipped wall time to the instant after the gap)."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def following(start: datetime, bucket: Bucket, tz: ZoneInfo) -> datetime:
    """Start (UTC) of the bucket after the one that starts at ``start``."""
    if bucket == "15m":
        return start + QUARTER
    if bucket == "1h":
        return floor(start + timedelta(hours=1), "1h", tz)
    return day_start(start.astimezone(tz).date() + timedelta(days=1), tz)


def align(
    start: datetime, end: datetime, bucket: Bucket, tz: ZoneInfo
) -> tuple[datetime, datetime]:
    """Widen ``[start, end)`` to whole buckets of ``tz`` (UTC instants)."""
    first = floor(start, bucket, tz)
    last = floor(end, bucket, tz)
    if last < end.astimezone(UTC):
        last = following(last, bucket, tz)
    return first, last
