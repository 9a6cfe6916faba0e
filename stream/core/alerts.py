"""Alert detectors and the alert lifecycle: pure, no I/O.

Each closed hour of a device is judged by four detectors (:func:`detect`, :func:`quiet`), each
returning at most one :class:`Detection`. Those comparing with the forecast judge only hours
with at least :data:`COMPLETE_SHARE` of their readings (a short hour is low because readings
are late or lost, which is the ``silent`` detector's business):

* ``residual``: the hour's residual (actual - forecast) is far from the device's usual
  residuals: ``|z| >= RESIDUAL_WARNING_Z`` against a robust sigma (1.4826 x the median absolute
  deviation of the previous scored residuals, floored) *and* larger than
  :data:`RESIDUAL_SCALE` times the largest hourly energy of the window before it. The second
  condition keeps ordinary surprises quiet: an EV charger starting its session an hour early is
  many sigma off a flat standby forecast, but no larger than a normal session.
* ``level_shift``: the hour and the hour before it are both off the forecast in the same
  direction by at least :data:`SHIFT_Z` sigma, :data:`SHIFT_MEAN_Z` on average (sigma: the
  larger of the robust sigma and the residuals' root mean square), and the hour's energy is
  outside the range of the day before: the device's level moved and stayed there (a single
  hour off is a residual, not a shift).
* ``silent``: a device that has reported before sends nothing in an hour (``warning``), or
  in two in a row (``critical``), and the readings do not arrive late either (:func:`quiet`).
* ``stuck``: a meter reports the very same power all hour long (at least
  :data:`STUCK_MIN_READINGS` readings) although most of its recent hours (at least
  :data:`STUCK_MIN_HISTORY` of them) varied. A series that
  is flat by nature (an idle EV charger's standby draw) does not alert.

The lifecycle (:func:`advance`) keeps at most one open alert per device and kind. A detection
while the kind's alert is open updates that alert (its last hour, its hour count, the worst
severity, the latest figures) instead of adding one; the first hour without the condition
resolves it. Every change is a :class:`schema.results.Alert` row keyed by (device, kind, hour
the alert opened): upserting it is idempotent, so a replayed batch writes the same rows again.
Acknowledging is a person's act through the API and is not part of this state.

A person may also resolve an alert through the API while its condition still holds. The worker
never writes that alert again (the sink leaves its row alone and reports it); if the condition
still holds, :func:`after_manual_resolution` opens a new alert in its place from the last hour
the condition held, which the lifecycle then updates and resolves as usual. A resolved alert is
never reopened, by a person or by the worker.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import AwareDatetime, BaseModel, ConfigDict

from schema.results import Alert, AlertKind, Severity
from stream.core.health import MIN_SCORED, SIGMA_FLOOR_KWH, WINDOW_HOURS, ScoredHour

RESIDUAL_WARNING_Z = 4.0
RESIDUAL_CRITICAL_Z = 6.0
RESIDUAL_SCALE = 1.0
"""A residual alert also needs ``|residual| > RESIDUAL_SCALE x`` the largest hourly energy of
the window before it."""
SHIFT_Z = 3.0
SHIFT_MEAN_Z = 5.0
"""A level shift needs each of its two hours ``SHIFT_Z`` sigma off, and both ``SHIFT_MEAN_Z`` on
average."""
SHIFT_CRITICAL_Z = 6.0
MAD_TO_SIGMA = 1.4826
"""Median absolute deviation -> standard deviation, for normally distributed residuals."""
COMPLETE_SHARE = 0.9
"""Residuals and level shifts judge only hours with at least this share of their readings: a
short hour (readings late or lost) is low because of the data, not the device."""
SIGMA_FLOOR_SHARE = 0.05
"""The robust sigma is at least this share of the window's mean absolute hourly energy."""
SILENT_AFTER = timedelta(hours=1)
"""Processing time without any reading of a device after which its empty hour is silence."""
STUCK_MIN_READINGS = 3
STUCK_MIN_HISTORY = 12
"""Hours with enough readings to tell flat from varying before a flat hour can be stuck."""


@dataclass(frozen=True, slots=True)
class Detection:
    kind: AlertKind
    severity: Severity
    message: str
    residual_kwh: float | None = None
    sigma: float | None = None
    z: float | None = None


def alert_id(device_id: str, kind: str, opened_hour: datetime) -> str:
    """The alert's stable id: device, kind and the Unix time of the hour it opened."""
    return f"{device_id}.{kind}.{int(opened_hour.timestamp())}"


# ----------------------------------------------------------------------------- detectors
def _robust_sigma(residuals: Sequence[float], scale_kwh: float) -> float:
    median = statistics.median(residuals)
    mad = statistics.median(abs(r - median) for r in residuals)
    return max(MAD_TO_SIGMA * mad, SIGMA_FLOOR_SHARE * scale_kwh, SIGMA_FLOOR_KWH)


def _window(previous: Sequence[ScoredHour]) -> tuple[list[float], float, float] | None:
    """(scored residuals, robust sigma, largest |energy|) of the window, or None if too few."""
    window = list(previous)[-WINDOW_HOURS:]
    residuals = [r for s in window if (r := s.residual) is not None]
    if len(residuals) < MIN_SCORED:
        return None
    energies = [abs(s.actual_kwh) for s in window]
    mean_abs = sum(energies) / len(energies)
    return residuals, _robust_sigma(residuals, mean_abs), max(energies)


def _complete(hour: ScoredHour) -> bool:
    return hour.reading_count >= COMPLETE_SHARE * hour.expected_count


def residual(previous: Sequence[ScoredHour], current: ScoredHour) -> Detection | None:
    value = current.residual
    window = _window(previous)
    if value is None or window is None or not _complete(current):
        return None
    _, sigma, largest = window
    z = value / sigma
    if abs(z) < RESIDUAL_WARNING_Z or abs(value) <= RESIDUAL_SCALE * largest:
        return None
    severity: Severity = "critical" if abs(z) >= RESIDUAL_CRITICAL_Z else "warning"
    assert current.predicted_kwh is not None  # a residual needs a forecast
    return Detection(
        "residual",
        severity,
        f"energy {current.actual_kwh:.3f} kWh vs forecast {current.predicted_kwh:.3f} kWh: "
        f"{z:+.1f} sigma",
        value,
        sigma,
        z,
    )


def level_shift(previous: Sequence[ScoredHour], current: ScoredHour) -> Detection | None:
    if not previous:
        return None
    before, last = previous[:-1], previous[-1]
    window = _window(before)
    now_r, last_r = current.residual, last.residual
    complete = _complete(current) and _complete(last)
    if window is None or now_r is None or last_r is None or not complete:
        return None
    residuals, robust, _ = window
    # Not the robust sigma alone: a device whose forecast misses now and then (an EV charger's
    # sessions) has a tiny median deviation but is often off by a lot, so a level shift is
    # measured against the plain root mean square of its residuals too.
    sigma = max(robust, math.sqrt(sum(r * r for r in residuals) / len(residuals)))
    z_now, z_last = now_r / sigma, last_r / sigma
    if min(abs(z_now), abs(z_last)) < SHIFT_Z or (z_now > 0) != (z_last > 0):
        return None
    if abs(z_now + z_last) / 2 < SHIFT_MEAN_Z:
        return None
    # And the level left the range of the day before: a forecast that is merely late to follow
    # the weather or a habit is off by a lot within the range the device has shown.
    energies = [s.actual_kwh for s in list(before)[-WINDOW_HOURS:]]
    if min(energies) <= current.actual_kwh <= max(energies):
        return None
    z = (z_now + z_last) / 2
    severity: Severity = "critical" if abs(z) >= SHIFT_CRITICAL_Z else "warning"
    direction = "above" if z > 0 else "below"
    return Detection(
        "level_shift",
        severity,
        f"two hours {direction} forecast ({z_last:+.1f} then {z_now:+.1f} sigma)",
        (now_r + last_r) / 2,
        sigma,
        z,
    )


class Silence(BaseModel):
    """Hours a device that had reported closed without a reading, not yet judged silent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    first_hour: AwareDatetime
    last_hour: AwareDatetime
    hours: int

    def then(self, hour_start: datetime) -> Silence:
        return self.model_copy(update={"last_hour": hour_start, "hours": self.hours + 1})


def silent_detection(hours: int) -> Detection:
    severity: Severity = "critical" if hours >= 2 else "warning"
    return Detection("silent", severity, f"no readings for {hours} h")


def quiet(
    silence: Silence | None,
    previous: Sequence[ScoredHour],
    current: ScoredHour,
    *,
    last_arrival: datetime | None,
    now: datetime,
) -> tuple[Silence | None, Detection | None]:
    """The device's silence after ``current`` closed, and a silent detection if it is one.

    An empty hour alone is only a suspicion: in a catch-up the partition's other devices can
    close a device's hours before its readings, hours late, arrive (they then restate them, and
    :meth:`Silence` is dropped). It is silence when nothing arrived for :data:`SILENT_AFTER` of
    processing time either; otherwise :func:`confirmed_silence` judges it once the device's next
    hour closes with readings while the empty ones stayed empty.
    """
    if current.reading_count:
        return None, None  # it spoke: any silence before is over (the caller judges it)
    if silence is None and not any(s.reading_count for s in previous):
        return None, None  # never reported yet: nothing went quiet
    silence = (
        silence.then(current.hour_start)
        if silence is not None
        else Silence(first_hour=current.hour_start, last_hour=current.hour_start, hours=1)
    )
    if last_arrival is not None and now - last_arrival < SILENT_AFTER:
        return silence, None
    return silence, silent_detection(silence.hours)


def confirmed_silence(
    device_id: str, silence: Silence, resolved_hour: datetime, now: datetime
) -> Alert:
    """A silence judged after the fact: the alert opened and resolved at once."""
    opened = _alert(device_id, None, silent_detection(silence.hours), silence.last_hour, now)
    return opened.model_copy(
        update={
            "hour_start": silence.first_hour,
            "alert_id": alert_id(device_id, "silent", silence.first_hour),
            "hours": silence.hours,
            "resolved_hour": resolved_hour,
            "resolved_at": now,
        }
    )


def _flat(hour: ScoredHour) -> bool | None:
    """Whether every reading of the hour had the same power; None with too few readings."""
    low, high = hour.power_min_kw, hour.power_max_kw
    if hour.reading_count < STUCK_MIN_READINGS or low is None or high is None:
        return None
    return math.isclose(low, high, rel_tol=0.0, abs_tol=1e-9)


def stuck(previous: Sequence[ScoredHour], current: ScoredHour) -> Detection | None:
    if not _flat(current):
        return None
    judged = [f for s in list(previous)[-WINDOW_HOURS:] if (f := _flat(s)) is not None]
    if len(judged) < STUCK_MIN_HISTORY or sum(judged) * 2 >= len(judged):
        return None  # flat by nature, or too little history to tell
    return Detection(
        "stuck",
        "warning",
        f"power stuck at {current.power_max_kw:g} kW for {current.reading_count} readings",
    )


DETECTORS = (residual, level_shift, stuck)


def detect(previous: Sequence[ScoredHour], current: ScoredHour) -> list[Detection]:
    """Every detector's verdict on ``current``, given the scored hours before it (silence,
    which needs more than the hours, is :func:`quiet`)."""
    return [d for detector in DETECTORS if (d := detector(previous, current)) is not None]


# ----------------------------------------------------------------------------- lifecycle
_RANK: Mapping[str, int] = {"warning": 1, "critical": 2}


def _alert(
    device_id: str, current: Alert | None, detection: Detection, hour_start: datetime, now: datetime
) -> Alert:
    """The alert ``detection`` opens (``current`` None) or updates, as of ``hour_start``."""
    kind = detection.kind
    return Alert(
        alert_id=alert_id(device_id, kind, hour_start) if current is None else current.alert_id,
        device_id=device_id,
        alert_kind=kind,
        hour_start=hour_start if current is None else current.hour_start,
        last_hour_start=hour_start,
        hours=1 if current is None else current.hours + 1,
        severity=detection.severity
        if current is None
        else max(current.severity, detection.severity, key=_RANK.__getitem__),
        residual_kwh=detection.residual_kwh,
        sigma=detection.sigma,
        z=detection.z,
        message=detection.message,
        raised_at=now if current is None else current.raised_at,
        updated_at=now,
        resolved_hour=None,
        resolved_at=None,
    )


def advance(
    device_id: str,
    open_alerts: dict[str, Alert],
    hour_start: datetime,
    detections: Sequence[Detection],
    *,
    now: datetime,
) -> list[Alert]:
    """Apply one newly closed hour's detections to ``open_alerts`` (the device's open alerts by
    kind, changed in place); return the rows that changed: opened, updated or resolved."""
    rows: list[Alert] = []
    firing = {d.kind: d for d in detections}
    for kind in list(open_alerts):
        if kind not in firing:
            resolved = {"resolved_hour": hour_start, "resolved_at": now, "updated_at": now}
            rows.append(open_alerts.pop(kind).model_copy(update=resolved))
    for kind, detection in firing.items():
        current = open_alerts.get(kind)
        if current is not None and current.last_hour_start >= hour_start:
            continue  # already counted (the same hour again): nothing changes
        open_alerts[kind] = _alert(device_id, current, detection, hour_start, now)
        rows.append(open_alerts[kind])
    return rows


def after_manual_resolution(
    open_alerts: dict[str, Alert], resolved: Collection[str], *, now: datetime
) -> list[Alert]:
    """Replace the alerts of ``open_alerts`` (a device's, by kind, changed in place) that a
    person resolved (their ids in ``resolved``) while the worker still saw their condition:
    each by a new alert opening at the last hour the condition held, with that hour's figures
    and the severity so far. Return the new alerts (rows to write).

    An alert resolved in the very hour it opened has no later hour to continue from: it is only
    dropped, and the condition's next hour opens a new alert.
    """
    rows = []
    for kind, alert in list(open_alerts.items()):
        if alert.alert_id not in resolved:
            continue
        hour = alert.last_hour_start
        if hour == alert.hour_start:
            del open_alerts[kind]
            continue
        opened = {"alert_id": alert_id(alert.device_id, kind, hour), "hour_start": hour}
        open_alerts[kind] = alert.model_copy(
            update={**opened, "hours": 1, "raised_at": now, "updated_at": now}
        )
        rows.append(open_alerts[kind])
    return rows
