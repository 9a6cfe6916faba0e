"""Which device-local hours the stream worker must have closed, from the readings alone.

Written apart from the worker's own code (``stream.core``) on purpose: the audit restates the
documented semantics (docs/stream-processing.md) and checks the worker against them.

* A reading belongs to the local hour of its ``ts`` in its zone; every UTC offset is a multiple
  of 15 minutes, so local hours start and end on 15-minute UTC boundaries.
* A partition's watermark is the highest event time of the readings on it minus the allowed
  lateness; readings are keyed by device id with Kafka's default partitioner (murmur2).
* A device's hours close, oldest first, from the hour of its first reading, when the watermark
  reaches their end. An hour without readings closes empty while less than ``max_silent`` has
  passed since the device's last reading; after that no more hours close until the next hour
  it spoke in.
* Every closed hour has one ``hourly`` and one ``health`` row; once a device has
  ``history_hours`` closed hours, each closed hour also has one forecast, for the next local
  hour.

Order-independent: this assumes every reading reached the worker within its 48 retained hours
(a reading later than that is counted but restates nothing, see ``stream.core.windowing``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from stream.partitioning import key_partition

_QUARTER = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class Hour:
    start: datetime
    end: datetime


def _label(at: datetime, zone: ZoneInfo) -> tuple[object, ...]:
    local = at.astimezone(zone)
    return local.date(), local.hour, local.utcoffset()


@lru_cache(maxsize=65_536)
def _hour_at_quarter(quarter: datetime, tz: str) -> Hour:
    zone = ZoneInfo(tz)
    label = _label(quarter, zone)
    start, end = quarter, quarter + _QUARTER
    while _label(start - _QUARTER, zone) == label:
        start -= _QUARTER
    while _label(end, zone) == label:
        end += _QUARTER
    return Hour(start, end)


def hour_of(at: datetime, tz: str) -> Hour:
    """The local hour (in zone ``tz``) containing the aware instant ``at``."""
    seconds = int(at.timestamp())
    quarter = datetime.fromtimestamp(seconds - seconds % 900, tz=UTC)
    return _hour_at_quarter(quarter, tz)


def partition_of(device_id: str, partitions: int) -> int:
    """The Kafka partition of a device's messages (the Java client's default partitioner)."""
    return key_partition(device_id.encode(), partitions)


def closed_hours(
    readings: Iterable[datetime], tz: str, watermark: datetime, max_silent: timedelta
) -> list[Hour]:
    """The hours of one device (reading times ``readings``) closed by ``watermark``, in order."""
    last_in: dict[datetime, datetime] = {}
    for ts in readings:
        hour = hour_of(ts, tz)
        last_in[hour.start] = max(ts, last_in.get(hour.start, ts))
    if not last_in:
        return []
    spoken = sorted(last_in)
    closed: list[Hour] = []
    cursor = hour_of(spoken[0], tz)
    spoke: datetime | None = None
    while cursor.end <= watermark:
        if cursor.start in last_in:
            spoke = last_in[cursor.start]
        elif spoke is None or cursor.start - spoke >= max_silent:
            later = [start for start in spoken if start > cursor.start]
            if not later:
                break
            cursor = hour_of(later[0], tz)
            continue
        closed.append(cursor)
        cursor = hour_of(cursor.end, tz)
    return closed


@dataclass(frozen=True, slots=True)
class ExpectedHours:
    hourly: frozenset[datetime]
    """Start of every closed hour (``hourly`` and ``health`` rows)."""
    forecasts: frozenset[datetime]
    """Start of every hour that must have a forecast."""


def expected_hours(
    readings: Mapping[str, tuple[str, Iterable[datetime]]],
    *,
    lateness: timedelta,
    max_silent: timedelta,
    history_hours: int,
    partitions: int,
) -> dict[str, ExpectedHours]:
    """Per device (``readings``: device id -> (zone, reading times)), the hours that must have
    rows."""
    times = {device: (tz, sorted(set(ts))) for device, (tz, ts) in readings.items()}
    highest: dict[int, datetime] = {}
    for device, (_tz, ts) in times.items():
        if ts:
            p = partition_of(device, partitions)
            highest[p] = max(highest.get(p, ts[-1]), ts[-1])
    expected: dict[str, ExpectedHours] = {}
    for device, (tz, ts) in times.items():
        p = partition_of(device, partitions)
        if p not in highest:
            continue
        closed = closed_hours(ts, tz, highest[p] - lateness, max_silent)
        expected[device] = ExpectedHours(
            hourly=frozenset(h.start for h in closed),
            forecasts=frozenset(hour_of(h.end, tz).start for h in closed[history_hours - 1 :]),
        )
    return expected
