"""Multi-horizon windows for training and evaluation: pure numpy, no TensorFlow.

A trajectory window is the last ``history_hours`` closed hours of a device and what followed
its issue time: the next :data:`~stream.core.horizons.TRAJECTORY_HOURS` hourly energies and,
for the daily head, the next :data:`~stream.core.horizons.DAILY_TARGETS` totals of 24
consecutive hours (at a local midnight these are the local days; a 23- or 25-hour local day is
scaled by its length when served, see :func:`stream.core.horizons.day_fraction`).

Windows are found as indices first (device, offset) and gathered only for the rows kept, so a
long history never materialises every overlapping 192-hour frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from stream.core.horizons import DAILY_TARGETS, TRAJECTORY_HOURS, ordered_quantiles
from stream.forecast.features import (
    DeviceSeries,
    FeatureSpec,
    FloatArray,
    IntArray,
    Scaler,
    calendar_features,
    epoch_hour,
)

DAY_HOURS = 24


@dataclass(frozen=True)
class TrajectoryWindows:
    """Parallel arrays, one row per window."""

    history_kwh: FloatArray
    """[n, H] kWh, oldest first."""
    hourly_kwh: FloatArray
    """[n, TRAJECTORY_HOURS] kWh of the hours after the issue time."""
    daily_kwh: FloatArray
    """[n, days] kWh totals of consecutive 24-hour blocks (days may be 0)."""
    kind_index: IntArray
    calendar: FloatArray
    issue_hour: IntArray
    """Start of the first target hour, whole hours since the Unix epoch (UTC)."""
    device: IntArray

    def __len__(self) -> int:
        return int(self.issue_hour.shape[0])

    def take(self, mask: npt.NDArray[np.bool_] | IntArray) -> TrajectoryWindows:
        return TrajectoryWindows(
            self.history_kwh[mask],
            self.hourly_kwh[mask],
            self.daily_kwh[mask],
            self.kind_index[mask],
            self.calendar[mask],
            self.issue_hour[mask],
            self.device[mask],
        )

    @property
    def last_target_hour(self) -> IntArray:
        """The last hour any of the window's targets covers."""
        days = self.daily_kwh.shape[1]
        return np.asarray(
            self.issue_hour + max(TRAJECTORY_HOURS, days * DAY_HOURS) - 1, dtype=np.int64
        )


def window_index(
    spec: FeatureSpec, series: Sequence[DeviceSeries], future_hours: int
) -> tuple[IntArray, IntArray]:
    """(series number, offset of the first target) of every window whose history and
    ``future_hours`` targets are all present."""
    span = spec.history_hours + future_hours
    devices: list[IntArray] = []
    offsets: list[IntArray] = []
    for number, item in enumerate(series):
        if item.values.size < span:
            continue
        missing = np.concatenate([[0], np.cumsum(~np.isfinite(item.values))])
        gaps = missing[span:] - missing[:-span]  # missing values in each frame
        starts = np.flatnonzero(gaps == 0)
        devices.append(np.full(starts.size, number, dtype=np.int64))
        offsets.append((starts + spec.history_hours).astype(np.int64))
    if not devices:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(devices), np.concatenate(offsets)


def gather(
    spec: FeatureSpec,
    series: Sequence[DeviceSeries],
    devices: IntArray,
    offsets: IntArray,
    days: int = DAILY_TARGETS,
) -> TrajectoryWindows:
    """The windows at ``(devices, offsets)`` (from :func:`window_index` with enough future)."""
    hours = spec.history_hours
    future = max(TRAJECTORY_HOURS, days * DAY_HOURS)
    n = devices.size
    frames = np.empty((n, hours + future), dtype=np.float64)
    calendar = np.empty((n, 4), dtype=np.float64)
    kinds = np.empty(n, dtype=np.int64)
    issue = np.empty(n, dtype=np.int64)
    for row, (number, offset) in enumerate(zip(devices.tolist(), offsets.tolist(), strict=True)):
        item = series[number]
        frames[row] = item.values[offset - hours : offset + future]
        calendar[row] = calendar_features(item.hour_start(offset), item.tz)
        kinds[row] = spec.kind_index(item.kind)
        issue[row] = epoch_hour(item.first_hour) + offset
    blocks = frames[:, hours : hours + days * DAY_HOURS].reshape(n, days, DAY_HOURS)
    return TrajectoryWindows(
        history_kwh=frames[:, :hours],
        hourly_kwh=frames[:, hours : hours + TRAJECTORY_HOURS],
        daily_kwh=blocks.sum(axis=2),
        kind_index=kinds,
        calendar=calendar,
        issue_hour=issue,
        device=devices.astype(np.int64),
    )


def build_trajectory_windows(
    spec: FeatureSpec,
    series: Sequence[DeviceSeries],
    days: int = DAILY_TARGETS,
    *,
    keep: int | None = None,
    seed: int = 0,
    issue_from: int | None = None,
    last_before: int | None = None,
) -> TrajectoryWindows:
    """Windows with ``days`` daily targets, issued at or after ``issue_from`` and with every
    target before ``last_before`` (epoch hours); a seeded sample of ``keep`` of them."""
    future = max(TRAJECTORY_HOURS, days * DAY_HOURS)
    devices, offsets = window_index(spec, series, future)
    if devices.size:
        first = np.array([epoch_hour(s.first_hour) for s in series], dtype=np.int64)
        issue = first[devices] + offsets
        mask = np.ones(devices.size, dtype=bool)
        if issue_from is not None:
            mask &= issue >= issue_from
        if last_before is not None:
            mask &= issue + future - 1 < last_before
        devices, offsets = devices[mask], offsets[mask]
    if keep is not None and devices.size > keep:
        chosen = np.sort(np.random.default_rng(seed).choice(devices.size, keep, replace=False))
        devices, offsets = devices[chosen], offsets[chosen]
    return gather(spec, series, devices, offsets, days)


# ------------------------------------------------------------------------------- baselines


def seasonal_naive_trajectory(history_kwh: FloatArray) -> FloatArray:
    """Each target hour h (1..24) forecast by the value 24 hours before it: the last day again."""
    return history_kwh[:, -TRAJECTORY_HOURS:]


def persistence_trajectory(history_kwh: FloatArray) -> FloatArray:
    """The last closed hour, for every target hour."""
    return np.repeat(history_kwh[:, -1:], TRAJECTORY_HOURS, axis=1)


def seasonal_naive_daily(history_kwh: FloatArray, days: int) -> FloatArray:
    """Every day forecast by the last 24 hours' total."""
    return np.repeat(history_kwh[:, -DAY_HOURS:].sum(axis=1, keepdims=True), days, axis=1)


def persistence_daily(history_kwh: FloatArray, days: int) -> FloatArray:
    """Every day forecast as 24 times the last closed hour."""
    return np.repeat(history_kwh[:, -1:] * DAY_HOURS, days, axis=1)


# --------------------------------------------------------------------------------- scaling


def scale_steps(
    spec: FeatureSpec, scaler: Scaler, kwh: FloatArray, kind_index: IntArray, hours: int = 1
) -> FloatArray:
    """[n, steps] kWh targets of ``hours`` hours each -> scaled mean hourly energy."""
    means, stds = scaler.aligned(spec)
    return (kwh / hours - means[kind_index][:, None]) / stds[kind_index][:, None]


def unscale_quantiles(
    spec: FeatureSpec, scaler: Scaler, scaled: FloatArray, kind_index: IntArray, hours: int = 1
) -> FloatArray:
    """Scaled [n, steps, 3] model quantiles -> kWh over ``hours`` hours, P10 <= P50 <= P90."""
    means, stds = scaler.aligned(spec)
    kwh = (scaled * stds[kind_index][:, None, None] + means[kind_index][:, None, None]) * hours
    return ordered_quantiles(kwh)
