"""Composing 15-minute UTC rollup rows into local hours and days of any zone: pure, no I/O.

A local hour or day is the set of 15-minute UTC buckets whose start falls inside it (exact:
every UTC offset is a multiple of 15 minutes). Counts and energy add up; the mean power is
weighted by reading counts; min and max are taken over the parts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import NamedTuple
from zoneinfo import ZoneInfo

from api.timerange import QUARTER, Bucket, floor, following


class QuarterRow(NamedTuple):
    """One row of ``readings_15m``: a tuple, so a database record of these columns in this
    order (:data:`api.queries.QUARTERS` selects them from these fields) becomes one without a
    dict or keyword arguments (a frozen dataclass's ``__init__`` cost more than composing)."""

    bucket: datetime
    energy_kwh: float
    reading_count: int
    power_mean_kw: float | None
    power_min_kw: float | None
    power_max_kw: float | None


@dataclass(frozen=True, slots=True)
class Aggregate:
    start: datetime
    """Bucket start, with the offset of the requested zone at that instant."""
    end: datetime
    energy_kwh: float
    reading_count: int
    power_mean_kw: float | None
    power_min_kw: float | None
    power_max_kw: float | None
    quarters: int
    """15-minute buckets with data in this bucket."""
    expected_quarters: int
    """15-minute buckets the bucket spans (4 an hour; 92, 96 or 100 a day around DST)."""


@dataclass(slots=True)
class _Accumulator:
    energy_kwh: float = 0.0
    reading_count: int = 0
    power_weighted: float = 0.0
    power_weight: int = 0
    power_min_kw: float | None = None
    power_max_kw: float | None = None
    quarters: int = 0

    def add(self, row: QuarterRow) -> None:
        # Unpacked once; comparisons rather than min()/max() calls (this runs per row).
        _, energy, count, mean, low, high = row
        self.energy_kwh += energy
        self.reading_count += count
        self.quarters += 1
        if mean is not None and count > 0:
            self.power_weighted += mean * count
            self.power_weight += count
        if low is not None and (self.power_min_kw is None or low < self.power_min_kw):
            self.power_min_kw = low
        if high is not None and (self.power_max_kw is None or high > self.power_max_kw):
            self.power_max_kw = high


_BUCKET = itemgetter(0)


def compose(rows: Iterable[QuarterRow], bucket: Bucket, tz: ZoneInfo) -> list[Aggregate]:
    """Group ``rows`` into buckets of ``tz`` in time order; buckets without rows are absent."""
    groups: dict[datetime, tuple[datetime, _Accumulator]] = {}
    end: datetime | None = None
    current = _Accumulator()
    # In time order, a bucket's bounds are computed once, not per row (zone lookups dominate).
    for row in sorted(rows, key=_BUCKET):
        if end is None or row.bucket >= end:
            start = floor(row.bucket, bucket, tz)
            end = following(start, bucket, tz)
            current = _Accumulator()
            groups[start] = (end, current)
        current.add(row)
    out = []
    for start, (end, acc) in groups.items():
        out.append(
            Aggregate(
                start=start.astimezone(tz),
                end=end.astimezone(tz),
                energy_kwh=acc.energy_kwh,
                reading_count=acc.reading_count,
                power_mean_kw=acc.power_weighted / acc.power_weight if acc.power_weight else None,
                power_min_kw=acc.power_min_kw,
                power_max_kw=acc.power_max_kw,
                quarters=acc.quarters,
                expected_quarters=round((end - start) / QUARTER),
            )
        )
    return out
