"""Local wall-clock fields of an instant in an IANA zone, fast enough for months of history.

``datetime.fromtimestamp(t, ZoneInfo(zone))`` costs a microsecond or two per call; a device
model needs the local time of millions of instants (the history export). The UTC offset of a
zone only changes at its transitions, so :func:`utc_offset_s` finds them once per zone and
~388-day span (hourly scan, then bisection to the second) and answers by bisecting that short
list. Its answers equal ``zoneinfo``'s (a unit test checks every DST change of the fleet's zones).
"""

from __future__ import annotations

import bisect
import functools
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

_SPAN_BITS = 25
"""Transitions are cached per span of 2**25 s (~388 days)."""
_SCAN_STEP_S = 3600
"""No zone changes its offset twice within an hour."""

UNIX_EPOCH_WEEKDAY = 3
"""1970-01-01 was a Thursday (Monday = 0)."""


def _zone_offset_s(zone: ZoneInfo, t: int) -> int:
    offset = datetime.fromtimestamp(t, UTC).astimezone(zone).utcoffset()
    assert offset is not None
    return int(offset.total_seconds())


@functools.lru_cache(maxsize=1024)
def _transitions(zone_name: str, span: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(instants where an offset starts, the offsets) covering one span, first entry its start."""
    zone = ZoneInfo(zone_name)
    lo = span << _SPAN_BITS
    hi = (span + 1) << _SPAN_BITS
    starts, offsets = [lo], [_zone_offset_s(zone, lo)]
    t = lo
    while t < hi:
        nxt = min(t + _SCAN_STEP_S, hi)
        after = _zone_offset_s(zone, nxt)
        if after != offsets[-1]:
            a, b = t, nxt  # offset(a) == offsets[-1] != offset(b): bisect to the second
            while b - a > 1:
                mid = (a + b) // 2
                if _zone_offset_s(zone, mid) == offsets[-1]:
                    a = mid
                else:
                    b = mid
            starts.append(b)
            offsets.append(after)
        t = nxt
    return tuple(starts), tuple(offsets)


def utc_offset_s(zone_name: str, t: int) -> int:
    """UTC offset in seconds of ``zone_name`` at the Unix instant ``t`` (whole seconds)."""
    starts, offsets = _transitions(zone_name, t >> _SPAN_BITS)
    return offsets[bisect.bisect_right(starts, t) - 1]


def local_datetime(zone_name: str, t: int) -> datetime:
    """The aware local datetime of the Unix instant ``t`` in ``zone_name``."""
    return datetime.fromtimestamp(t, ZoneInfo(zone_name))


def next_transition(zone_name: str, after_t: int, *, horizon_spans: int = 3) -> int:
    """The first instant after ``after_t`` where ``zone_name`` changes its UTC offset."""
    span = after_t >> _SPAN_BITS
    for s in range(span, span + horizon_spans):
        starts, _offsets = _transitions(zone_name, s)
        for start in starts[1:]:
            if start > after_t:
                return start
    raise ValueError(f"{zone_name} does not change its offset within ~{horizon_spans} years")
