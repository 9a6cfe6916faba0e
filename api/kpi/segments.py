"""Where a window's local wall clock stops being a fixed shift of UTC, and the price tables
that lets the database price a device's quarters itself: pure.

Between two *cuts* a zone's UTC offset and the local month do not change (nor the offset of a
carbon profile's own zone), so a 15-minute bucket's local month, weekday, hour and minute
(everything a tariff band or an hourly carbon profile looks at) follow from its epoch by
integer arithmetic: local quarter of the week = ``(epoch + offset) % 604800 // 900``. A month
is one to three segments; :func:`price_tables` gives, per segment, the offset, the rate of each
local quarter of the week and the intensity of each local quarter of the day, and the device KPI
statement (:data:`api.kpi.queries.DEVICE_FIGURES`) looks them up per quarter and returns totals,
converting nothing to local time and sending back one row instead of ~3,000. It receives them
packed (:func:`packed_tables`): the few distinct prices once, and each table entry as a
one-byte index into them, so a month's ~2,000 entries travel as ~2 KB of ``bytea`` that cost
nothing to encode, not as ~2,000 floats.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from api.kpi.tariffs import Region, Tariff

QUARTER = timedelta(minutes=15)
_DAY = timedelta(days=1)


def _offset(zone: ZoneInfo, instant: datetime) -> timedelta | None:
    return instant.astimezone(zone).utcoffset()


def _offset_changes(zone: ZoneInfo, first: datetime, last: datetime) -> list[datetime]:
    """The 15-minute boundaries in ``(first, last)`` where ``zone``'s UTC offset changes
    (every offset and transition in use lies on a quarter hour; ``first`` is on one)."""
    changes: list[datetime] = []
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
    starts: list[datetime] = []
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


QUARTERS_PER_DAY = 96
QUARTERS_PER_WEEK = 7 * QUARTERS_PER_DAY
WEEK_S = 604_800
EPOCH_WEEKDAY = 3
"""1970-01-01 was a Thursday (Monday = 0): local quarter of the week 0 starts on a Thursday."""


@dataclass(frozen=True, slots=True)
class PriceTables:
    """What the database needs to price a device's quarters itself, per segment of a window
    (``cuts``): its zone's UTC offset (seconds), the tariff's rate for each local quarter of
    the week counted as ``(epoch + offset) % 604800 // 900`` (Thursday 00:00 first), and the
    region's intensity for each local quarter of the day; flat, segment after segment."""

    cuts: tuple[datetime, ...]
    offsets: tuple[int, ...]
    rates: tuple[float, ...]
    intensities: tuple[float, ...]


def _local(month: int, quarter_of_week: int) -> datetime:
    """A wall-clock time in ``month`` on the weekday, hour and minute of ``quarter_of_week``:
    all a tariff band looks at (the year and day are otherwise arbitrary)."""
    weekday = (EPOCH_WEEKDAY + quarter_of_week // QUARTERS_PER_DAY) % 7
    first = datetime(2026, month, 1, tzinfo=UTC)
    minutes = (quarter_of_week % QUARTERS_PER_DAY) * 15
    return first + timedelta(days=(weekday - first.weekday()) % 7, minutes=minutes)


@functools.lru_cache(maxsize=256)
def _rates(tariff: Tariff, month: int) -> tuple[float, ...]:
    return tuple(tariff.rate_at(_local(month, k)) for k in range(QUARTERS_PER_WEEK))


@functools.lru_cache(maxsize=256)
def _intensities(region: Region, shift_s: int) -> tuple[float, ...]:
    """Per local quarter of the day; ``shift_s``: the profile zone's offset minus the
    device's (0 without a zone of its own)."""
    if region.hourly_kg_per_kwh is None:
        assert region.kg_per_kwh is not None  # exactly one is set
        return (region.kg_per_kwh,) * QUARTERS_PER_DAY
    hourly = region.hourly_kg_per_kwh
    return tuple(hourly[(q * 900 + shift_s) % 86_400 // 3600] for q in range(QUARTERS_PER_DAY))


def _seconds(offset: timedelta | None) -> int:
    assert offset is not None  # a ZoneInfo always has one
    return int(offset.total_seconds())


@functools.lru_cache(maxsize=256)
def price_tables(
    tariff: Tariff, region: Region, tz: str, first: datetime, last: datetime
) -> PriceTables:
    """The tables for a device of zone ``tz`` priced by ``tariff`` and ``region`` over
    ``[first, last)``."""
    zone = ZoneInfo(tz)
    edges = cuts(tz, region.tz, first, last)
    offsets: list[int] = []
    rates: list[float] = []
    intensities: list[float] = []
    for start in edges:
        offset = _seconds(start.astimezone(zone).utcoffset())
        shift = 0
        if region.tz is not None:
            shift = _seconds(start.astimezone(ZoneInfo(region.tz)).utcoffset()) - offset
        offsets.append(offset)
        rates += _rates(tariff, start.astimezone(zone).month)
        intensities += _intensities(region, shift)
    return PriceTables(edges, tuple(offsets), tuple(rates), tuple(intensities))


@dataclass(frozen=True, slots=True)
class PackedTables:
    """:class:`PriceTables` as the device KPI statement takes them: cheap to send (a month's
    ~2,000 entries as ~2 KB of ``bytea``, not ~2,000 floats to encode one by one). Segment
    ``k`` (from 1) covers ``[starts[k-1], ends[k-1])`` at UTC offset ``shifts[k-1]`` minus a
    week (so that ``epoch + shift`` is never negative, even for an instant of 1 January 1970
    in a zone behind UTC: SQL's ``%`` keeps the sign of the dividend); the
    rate of its local quarter of the week ``q`` is ``rate_palette[rates[(k-1) * 672 + q]]``
    and the intensity of its local quarter of the day ``d`` is
    ``intensity_palette[intensities[(k-1) * 96 + d]]`` (one byte an entry: an index into the
    palette, the few distinct values)."""

    starts: tuple[datetime, ...]
    ends: tuple[datetime, ...]
    shifts: tuple[int, ...]
    rate_palette: tuple[float, ...]
    rates: bytes
    intensity_palette: tuple[float, ...]
    intensities: bytes


def _palette(values: tuple[float, ...]) -> tuple[tuple[float, ...], bytes] | None:
    """The distinct values and each value's index among them; ``None`` beyond 256 of them."""
    palette = sorted(set(values))
    if len(palette) > 256:
        return None
    position = {value: k for k, value in enumerate(palette)}
    return tuple(palette), bytes(position[v] for v in values)


@functools.lru_cache(maxsize=256)
def packed_tables(
    tariff: Tariff, region: Region, tz: str, first: datetime, last: datetime
) -> PackedTables | None:
    """:func:`price_tables` packed for the database; ``None`` for a tariff with more than 256
    distinct rates (a region has at most 24 intensities), which is priced in Python."""
    tables = price_tables(tariff, region, tz, first, last)
    rates = _palette(tables.rates)
    intensities = _palette(tables.intensities)
    if rates is None or intensities is None:
        return None
    shifts = tuple(offset + WEEK_S for offset in tables.offsets)
    return PackedTables(tables.cuts, (*tables.cuts[1:], last), shifts, *rates, *intensities)
