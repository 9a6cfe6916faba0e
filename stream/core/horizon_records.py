"""Rows of multi-horizon forecasts from one batched model output: pure, no model, no I/O.

When device-local hours close the model gives, per device, besides the next hour, P10/P50/P90
of the next 24 hours and of the next 7 blocks of 24 hours. :func:`trajectory_records` turns a
whole batch into :class:`TrajectoryRow` rows of ``forecast_trajectories``: one per device with
the 24 hourly targets (the device-local hours from the forecast's target hour on, across DST as
they fall), and one more with the 7 local days only when the target hour starts a local day
(its issue time is the local midnight). A 23- or 25-hour local day's total is the 24-hour
block's scaled by the day's length.

An hour close of 10,000 devices must be stored in well under 2 s, so nothing here makes a Python
object per value: a row holds its targets and quantiles as arrays (the targets computed once per
(zone, issue hour) and shared by every device there; the quantiles sliced from the model's array
with one ``tolist`` per quantile), and the database stores the row as it is. The view
``forecast_horizons`` (and :func:`targets` here) reads it one row per target. Rows are not
published on Kafka.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from stream.core.horizons import (
    Horizon,
    daily_targets,
    day_fraction,
    is_local_midnight,
    trajectory_from,
)
from stream.core.localtime import LocalHour

Quantiles = npt.ArrayLike
"""Per device and step, (P10, P50, P90) in kWh: shape (devices, steps, 3)."""


class TrajectoryRow(NamedTuple):
    """One row of ``forecast_trajectories`` (its columns, in table order)."""

    device_id: str
    issue_time: datetime
    """Start of the first target: the end of the closed hour it is based on."""
    horizon: str
    """``24h`` (the hourly trajectory) or ``7d`` (the local days)."""
    model_id: str
    bounds: Sequence[datetime]
    """Target k (0-based here) runs from ``bounds[k]`` to ``bounds[k + 1]``."""
    local_dates: Sequence[date]
    local_hours: Sequence[int] | None
    """Each hourly target's local hour; ``None`` for days."""
    p10_kwh: Sequence[float]
    p50_kwh: Sequence[float]
    p90_kwh: Sequence[float]
    issued_at: datetime


class Issue(NamedTuple):
    """A device whose hour closed: the first target hour of its forecast."""

    device_id: str
    tz: str
    first: LocalHour


@dataclass(frozen=True, slots=True)
class Targets:
    """The targets of one horizon issued at one instant in one zone (shared by its devices)."""

    bounds: tuple[datetime, ...]
    local_dates: tuple[date, ...]
    local_hours: tuple[int, ...] | None
    scale: tuple[float, ...] = ()
    """Days only: each day's length in 24-hour days (scales a 24-hour block's total)."""


@lru_cache(maxsize=4096)
def hour_targets(first: LocalHour, tz: str, count: int) -> Targets:
    hours = trajectory_from(first, tz, count)
    return Targets(
        bounds=(*(h.start for h in hours), hours[-1].end),
        local_dates=tuple(h.local_date for h in hours),
        local_hours=tuple(h.local_hour for h in hours),
    )


@lru_cache(maxsize=1024)
def day_targets(issue: datetime, tz: str, count: int) -> Targets | None:
    """The ``count`` local days from ``issue``; ``None`` unless ``issue`` is local midnight."""
    if not count or not is_local_midnight(issue, tz):
        return None
    days = daily_targets(issue, tz, count)
    return Targets(
        bounds=(*(d.start for d in days), days[-1].end),
        local_dates=tuple(d.local_date for d in days),
        local_hours=None,
        scale=tuple(day_fraction(d) for d in days),
    )


def _quantile_lists(values: npt.NDArray[np.float64]) -> list[list[list[float]]]:
    """(P10, P50, P90), each a list per device of a list per step: one ``tolist`` call (of a
    contiguous copy with the quantiles first, which converts faster than strided views)."""
    quantiles: list[list[list[float]]] = np.ascontiguousarray(np.moveaxis(values, -1, 0)).tolist()
    return quantiles


def trajectory_records(
    issues: Sequence[Issue],
    hourly: Quantiles,
    daily: Quantiles | None,
    *,
    model_id: str,
    now: datetime,
) -> list[TrajectoryRow]:
    """The rows of a batch: each device's trajectory, and its days if issued at local midnight."""
    hours = np.asarray(hourly, dtype=np.float64)
    if hours.ndim != 3 or hours.shape[0] != len(issues):
        raise ValueError(f"hourly must be (devices, steps, 3) for {len(issues)}: {hours.shape}")
    if not issues:
        return []
    p10, p50, p90 = _quantile_lists(hours)
    day_horizon = Horizon.DAY.value
    rows = []
    for index, (device_id, tz, first) in enumerate(issues):
        t = hour_targets(first, tz, hours.shape[1])
        rows.append(
            TrajectoryRow(
                device_id, first.start, day_horizon, model_id, t.bounds, t.local_dates,
                t.local_hours, p10[index], p50[index], p90[index], now,
            )
        )  # fmt: skip
    if daily is not None:
        rows += _day_records(issues, np.asarray(daily, dtype=np.float64), model_id, now)
    return rows


def _day_records(
    issues: Sequence[Issue], days: npt.NDArray[np.float64], model_id: str, now: datetime
) -> list[TrajectoryRow]:
    if days.ndim != 3 or days.shape[0] != len(issues) or not days.shape[1]:
        return []
    found = [
        (i, day_targets(issue.first.start, issue.tz, days.shape[1]))
        for i, issue in enumerate(issues)
    ]
    at_midnight = [(i, t) for i, t in found if t is not None]
    if not at_midnight:
        return []
    picked = [i for i, _ in at_midnight]
    scale = np.array([t.scale for _, t in at_midnight])
    p10, p50, p90 = _quantile_lists(days[picked] * scale[..., None])
    week = Horizon.WEEK.value
    return [
        TrajectoryRow(
            issues[i].device_id, issues[i].first.start, week, model_id, t.bounds, t.local_dates,
            None, p10[k], p50[k], p90[k], now,
        )
        for k, (i, t) in enumerate(at_midnight)
    ]  # fmt: skip


class Target(NamedTuple):
    """One target of a trajectory row: a row of the ``forecast_horizons`` view."""

    step: int
    """1-based: hours or days ahead."""
    target_start: datetime
    target_end: datetime
    local_date: date
    local_hour: int | None
    p10_kwh: float
    p50_kwh: float
    p90_kwh: float


def targets(row: TrajectoryRow) -> list[Target]:
    """The row's targets one by one, as the view ``forecast_horizons`` reads them."""
    hours: Sequence[int | None] = row.local_hours or [None] * len(row.p50_kwh)
    return [
        Target(step, start, end, day, hour, p10, p50, p90)
        for step, (start, end, day, hour, p10, p50, p90) in enumerate(
            zip(
                row.bounds[:-1], row.bounds[1:], row.local_dates, hours, row.p10_kwh,
                row.p50_kwh, row.p90_kwh, strict=True,
            ),
            start=1,
        )
    ]  # fmt: skip
