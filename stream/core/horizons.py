"""Forecast horizons in device-local time: pure, no model, no I/O.

* **Hourly trajectory**: issued when a device-local hour closes, the next
  :data:`TRAJECTORY_HOURS` device-local hours (:func:`trajectory_targets`), each a
  :class:`~stream.core.localtime.LocalHour` (so a Kathmandu hour runs :15 to :15 UTC and a Lord
  Howe hour may last 30 minutes).
* **Local days**: a local day holds 23, 24 or 25 hourly windows (Berlin's spring and autumn
  changes; Lord Howe's 30-minute change gives 24 windows in 23.5 h and 25 windows in 24.5 h):
  :func:`local_day_hours`. At local midnight, :data:`DAILY_TARGETS` daily totals, one per
  local day from that midnight (:func:`daily_targets`).
* **Intervals**: P10 <= P50 <= P90 (:func:`ordered_quantiles` sorts crossed quantiles, the
  monotone rearrangement), and their coverage of actuals (:func:`interval_coverage`).
* **Peak**: the predicted peak hour of the next local day (:func:`day_peak`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from stream.core.localtime import LocalHour, local_hour, next_local_hour

TRAJECTORY_HOURS = 24
DAILY_TARGETS = 7
QUANTILES = (0.1, 0.5, 0.9)
"""P10, P50, P90: the model's outputs per target, in this order."""


class Horizon(StrEnum):
    """What a stored forecast row is: its target's length and how far ahead it reaches."""

    HOUR = "1h"
    """The next local hour (the product's original forecast)."""
    DAY = "24h"
    """One hour of the 24-hour hourly trajectory."""
    WEEK = "7d"
    """One local day of the 7 daily totals."""


@dataclass(frozen=True, slots=True)
class LocalDay:
    """A device-local calendar day as a UTC interval."""

    local_date: date
    start: datetime
    """UTC instant of its first local hour's start (local midnight, or 01:00 if midnight
    does not exist that day)."""
    end: datetime

    @property
    def duration(self) -> timedelta:
        return self.end - self.start


def _aware(at: datetime) -> None:
    if at.tzinfo is None:
        raise ValueError(f"naive datetime {at.isoformat()}: times must be aware")


def trajectory_targets(
    closed: LocalHour, tz: str, hours: int = TRAJECTORY_HOURS
) -> list[LocalHour]:
    """The ``hours`` device-local hours following the just-closed hour ``closed``."""
    if hours < 1:
        raise ValueError("a trajectory has at least one hour")
    targets = [next_local_hour(closed, tz)]
    while len(targets) < hours:
        targets.append(next_local_hour(targets[-1], tz))
    return targets


def trajectory_from(first: LocalHour, tz: str, hours: int = TRAJECTORY_HOURS) -> list[LocalHour]:
    """``first`` and the local hours following it, ``hours`` in all."""
    if hours < 1:
        raise ValueError("a trajectory has at least one hour")
    return [first, *trajectory_targets(first, tz, hours - 1)] if hours > 1 else [first]


def day_start(day: date, tz: str) -> LocalHour:
    """The first local hour of ``day`` in ``tz``."""
    zone = ZoneInfo(tz)
    midnight = datetime.combine(day, time(0), tzinfo=zone)
    first = local_hour(midnight, tz)
    # A zone may skip midnight (e.g. a change at 00:00): then its first hour starts later.
    while first.local_date < day:
        first = next_local_hour(first, tz)
    return first


def local_day_hours(day: date, tz: str) -> list[LocalHour]:
    """Every hourly window of the local day ``day``, in order."""
    hours = [day_start(day, tz)]
    while (following := next_local_hour(hours[-1], tz)).local_date == day:
        hours.append(following)
    return hours


def local_day(day: date, tz: str) -> LocalDay:
    hours = local_day_hours(day, tz)
    return LocalDay(day, hours[0].start, hours[-1].end)


def daily_targets(issued_at: datetime, tz: str, days: int = DAILY_TARGETS) -> list[LocalDay]:
    """The ``days`` local days from the local midnight ``issued_at`` (that day first)."""
    _aware(issued_at)
    first = local_hour(issued_at, tz)
    if first.start != issued_at or day_start(first.local_date, tz) != first:
        raise ValueError(f"{issued_at.isoformat()} is not the start of a local day in {tz}")
    return [local_day(first.local_date + timedelta(days=k), tz) for k in range(days)]


def is_local_midnight(at: datetime, tz: str) -> bool:
    """Whether the aware instant ``at`` starts a local day in ``tz``."""
    _aware(at)
    hour = local_hour(at, tz)
    return hour.start == at and day_start(hour.local_date, tz) == hour


def day_fraction(day: LocalDay) -> float:
    """The day's length in 24-hour days (23/24 on a spring day): scales a 24-hour total."""
    return day.duration / timedelta(hours=24)


FloatArray = npt.NDArray[np.float64]


def ordered_quantiles(values: FloatArray) -> FloatArray:
    """Quantiles along the last axis, sorted so that P10 <= P50 <= P90 (crossed quantiles are
    rearranged, which never makes a pinball loss worse)."""
    array = np.asarray(values, dtype=np.float64)
    if array.shape[-1] != len(QUANTILES):
        raise ValueError(f"the last axis must hold {len(QUANTILES)} quantiles: {array.shape}")
    return np.sort(array, axis=-1)


def interval_coverage(actual: FloatArray, low: FloatArray, high: FloatArray) -> float:
    """Share of ``actual`` inside ``[low, high]``."""
    if actual.shape != low.shape or actual.shape != high.shape or actual.size == 0:
        raise ValueError(f"need equal, non-empty shapes: {actual.shape}, {low.shape}")
    return float(np.mean((actual >= low) & (actual <= high)))


@dataclass(frozen=True, slots=True)
class Peak:
    hour: LocalHour
    kwh: float
    covered_hours: int
    """How many of the day's hours the trajectory held (the peak is among those)."""
    day_hours: int


def next_local_date(closed: LocalHour) -> date:
    """The local day after the closed hour's own day."""
    return closed.local_date + timedelta(days=1)


def day_peak(targets: Sequence[LocalHour], kwh: Sequence[float], day: date, tz: str) -> Peak | None:
    """The hour of ``day`` with the largest predicted energy among ``targets`` (None if the
    trajectory holds none of that day). Ties go to the earlier hour."""
    if len(targets) != len(kwh):
        raise ValueError(f"{len(targets)} targets but {len(kwh)} values")
    best: tuple[LocalHour, float] | None = None
    covered = 0
    for target, value in zip(targets, kwh, strict=True):
        if target.local_date != day:
            continue
        covered += 1
        if best is None or value > best[1]:
            best = (target, float(value))
    if best is None:
        return None
    return Peak(best[0], best[1], covered, len(local_day_hours(day, tz)))
