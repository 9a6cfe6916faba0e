"""Rows of a multi-horizon forecast from one model output: pure, no model, no I/O.

When a device-local hour closes the model gives, besides the next hour, P10/P50/P90 of the next
24 hours and of the next 7 blocks of 24 hours. :func:`horizon_records` turns them into
:class:`HorizonRow` rows: the 24 hourly targets always (the device-local
hours from the forecast's target hour on, across DST as they fall), and the 7 local days only
when the target hour starts a local day (its issue time is the local midnight). A 23- or
25-hour local day's total is the 24-hour block's scaled by the day's length.

At an hour close thousands of devices share a zone and an issue hour, so the targets are
computed once per (zone, issue hour) and cached; and a row is a plain named tuple (the
columns of ``forecast_horizons``, in table order): 10,000 devices make 240,000 rows an hour,
too many for a validated model each. They are not published on Kafka.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from functools import lru_cache
from typing import NamedTuple

from stream.core.horizons import (
    Horizon,
    LocalDay,
    daily_targets,
    day_fraction,
    is_local_midnight,
    trajectory_from,
)
from stream.core.localtime import LocalHour

Quantiles = Sequence[Sequence[float]]
"""Per step, (P10, P50, P90) in kWh."""


class HorizonRow(NamedTuple):
    """One row of ``forecast_horizons`` (its columns, in table order)."""

    device_id: str
    issue_time: datetime
    """Start of the first target: the end of the closed hour it is based on."""
    target_start: datetime
    target_end: datetime
    horizon: str
    """``24h`` (an hour of the trajectory) or ``7d`` (a local day)."""
    model_id: str
    step: int
    local_date: date
    local_hour: int | None
    p10_kwh: float
    p50_kwh: float
    p90_kwh: float
    issued_at: datetime


@lru_cache(maxsize=4096)
def _hours(first: LocalHour, tz: str, count: int) -> tuple[LocalHour, ...]:
    return tuple(trajectory_from(first, tz, count))


@lru_cache(maxsize=1024)
def _days(issue: datetime, tz: str, count: int) -> tuple[tuple[LocalDay, float], ...]:
    """The local days from ``issue`` with their length factors; empty if not local midnight."""
    if not count or not is_local_midnight(issue, tz):
        return ()
    return tuple((day, day_fraction(day)) for day in daily_targets(issue, tz, count))


def horizon_records(
    *,
    device_id: str,
    tz: str,
    first: LocalHour,
    hourly: Quantiles,
    daily: Quantiles,
    model_id: str,
    now: datetime,
) -> list[HorizonRow]:
    """Rows of the trajectory issued at ``first.start`` (and of the days, at local midnight)."""
    issue = first.start
    hour_horizon, day_horizon = Horizon.DAY.value, Horizon.WEEK.value
    # Positional, in HorizonRow's (the table's) column order: the hot path of an hour close.
    rows = [
        HorizonRow(
            device_id, issue, target.start, target.end, hour_horizon, model_id, step,
            target.local_date, target.local_hour, p10, p50, p90, now,
        )
        for step, (target, (p10, p50, p90)) in enumerate(
            zip(_hours(first, tz, len(hourly)), hourly, strict=True), start=1
        )
    ]  # fmt: skip
    for step, ((day, scale), (p10, p50, p90)) in enumerate(
        zip(_days(issue, tz, len(daily)), daily, strict=False), start=1
    ):
        rows.append(
            HorizonRow(
                device_id, issue, day.start, day.end, day_horizon, model_id, step,
                day.local_date, None, p10 * scale, p50 * scale, p90 * scale, now,
            )
        )  # fmt: skip
    return rows
