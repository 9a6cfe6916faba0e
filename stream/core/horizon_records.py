"""Rows of a multi-horizon forecast from one model output: pure, no model, no I/O.

When a device-local hour closes the model gives, besides the next hour, P10/P50/P90 of the next
24 hours and of the next 7 blocks of 24 hours. :func:`horizon_records` turns them into
:class:`~schema.results.HorizonForecast` rows: the 24 hourly targets always (the device-local
hours from the forecast's target hour on, across DST as they fall), and the 7 local days only
when the target hour starts a local day (its issue time is the local midnight). A 23- or
25-hour local day's total is the 24-hour block's scaled by the day's length.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from schema.results import HorizonForecast
from stream.core.horizons import (
    Horizon,
    daily_targets,
    day_fraction,
    is_local_midnight,
    trajectory_from,
)
from stream.core.localtime import LocalHour

Quantiles = Sequence[Sequence[float]]
"""Per step, (P10, P50, P90) in kWh."""


def horizon_records(
    *,
    device_id: str,
    tz: str,
    first: LocalHour,
    hourly: Quantiles,
    daily: Quantiles,
    model_id: str,
    now: datetime,
) -> list[HorizonForecast]:
    """Rows of the trajectory issued at ``first.start`` (and of the days, at local midnight)."""
    issue = first.start
    rows = [
        HorizonForecast(
            device_id=device_id,
            issue_time=issue,
            target_start=target.start,
            target_end=target.end,
            horizon=Horizon.DAY.value,
            model_id=model_id,
            step=step,
            local_date=target.local_date,
            local_hour=target.local_hour,
            p10_kwh=float(p10),
            p50_kwh=float(p50),
            p90_kwh=float(p90),
            issued_at=now,
        )
        for step, (target, (p10, p50, p90)) in enumerate(
            zip(trajectory_from(first, tz, len(hourly)), hourly, strict=True), start=1
        )
    ]
    if daily and is_local_midnight(issue, tz):
        for step, (day, (p10, p50, p90)) in enumerate(
            zip(daily_targets(issue, tz, len(daily)), daily, strict=True), start=1
        ):
            scale = day_fraction(day)
            rows.append(
                HorizonForecast(
                    device_id=device_id,
                    issue_time=issue,
                    target_start=day.start,
                    target_end=day.end,
                    horizon=Horizon.WEEK.value,
                    model_id=model_id,
                    step=step,
                    local_date=day.local_date,
                    local_hour=None,
                    p10_kwh=float(p10) * scale,
                    p50_kwh=float(p50) * scale,
                    p90_kwh=float(p90) * scale,
                    issued_at=now,
                )
            )
    return rows
