"""Where a window's local wall clock stops being a fixed shift of UTC: pure.

Between two *cuts* a zone's UTC offset and the local month do not change, so a 15-minute
bucket's local month, weekday, hour and minute (everything a tariff band or an hourly carbon
profile looks at) follow from its UTC quarter of the week alone. The device KPI statement
(:data:`api.kpi.queries.DEVICE_SLOTS`) groups a device's quarters by (segment, UTC quarter of
the week) with integer arithmetic instead of converting every bucket to local time: a month
is one to three segments, so a few hundred groups (each priced once) from ~3,000 quarters.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

QUARTER = timedelta(minutes=15)
_DAY = timedelta(days=1)


def _offset(zone: ZoneInfo, instant: datetime) -> timedelta | None:
    return instant.astimezone(zone).utcoffset()


def _offset_changes(zone: ZoneInfo, first: datetime, last: datetime) -> list[datetime]:
    """The 15-minute boundaries in ``(first, last)`` where ``zone``'s UTC offset changes
    (every offset and transition in use lies on a quarter hour; ``first`` is on one)."""
    changes = []
    lo = first
    while lo < last:
        hi = min(lo + _DAY, last)
        before = _offset(zone, lo)
        if before == _offset(zone, hi):
            lo = hi
            continue
        # Bisect, in quarters, for the first boundary after lo with another offset.
        a, b = lo, hi
        while b - a > QUARTER:
            middle = a + (b - a) // QUARTER // 2 * QUARTER
            if _offset(zone, middle) == before:
                a = middle
            else:
                b = middle
        if b < last:
            changes.append(b)
        lo = b
    return changes


def _month_starts(zone: ZoneInfo, first: datetime, last: datetime) -> list[datetime]:
    """First instants of the local months that begin inside ``(first, last)``."""
    starts = []
    local = first.astimezone(zone).date().replace(day=1)
    while True:
        month = local.month % 12 + 1
        local = local.replace(year=local.year + (local.month == 12), month=month)
        start = datetime.combine(local, time(0), tzinfo=zone).astimezone(UTC)
        if start >= last:
            return starts
        if start > first:
            starts.append(start)


@functools.lru_cache(maxsize=256)
def cuts(tz: str, region_tz: str | None, first: datetime, last: datetime) -> tuple[datetime, ...]:
    """``first`` and every instant in ``(first, last)`` where the local month of ``tz``, its
    offset, or the offset of ``region_tz`` (a carbon profile's own zone) changes; sorted."""
    zone = ZoneInfo(tz)
    found = {first, *_offset_changes(zone, first, last), *_month_starts(zone, first, last)}
    if region_tz is not None:
        found.update(_offset_changes(ZoneInfo(region_tz), first, last))
    return tuple(sorted(found))
