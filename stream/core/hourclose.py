"""What happens when a device-local hour closes (or is restated): pure, no model, no I/O.

When several hours of a device close at once (a worker catching up), they are handled in
rounds, one hour per device per round, so that each round's forecasts exist before the next
round's hours are scored against them.

For each closed hour the worker needs an ``hourly`` row, the scoring of the forecast that was
made for it (health metrics and maybe a residual alert) and, when the device has enough
history, a request for the next hour's forecast. The model call itself happens outside, batched
over every request of a close burst; :func:`record_forecast` then stores the result as the
device's pending forecast, to be scored when that hour closes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import AwareDatetime, BaseModel, ConfigDict

from schema.results import Alert, Forecast, Health, HourlyAggregate
from stream.core.alerts import Silence, advance, confirmed_silence, detect, quiet
from stream.core.health import WINDOW_HOURS, ScoredHour, device_health
from stream.core.localtime import LocalHour, local_hour
from stream.core.windowing import ClosedHour, DeviceWindows, HourWindow


class PendingForecast(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hour_start: AwareDatetime
    predicted_kwh: float
    baseline_kwh: float | None
    model_id: str


class DeviceState(BaseModel):
    """The value of the worker's per-device table entry."""

    model_config = ConfigDict(extra="forbid")

    windows: DeviceWindows
    kind: str | None = None
    """Device type from its birth message (the model needs it); None until one is seen."""
    online: bool | None = None
    pending: PendingForecast | None = None
    scored: list[ScoredHour] = []
    alerts: dict[str, Alert] = {}
    """The device's open alerts by kind, as last written (:mod:`stream.core.alerts`)."""
    silence: Silence | None = None
    """Empty hours not yet judged silent (:func:`stream.core.alerts.quiet`)."""
    last_arrival: AwareDatetime | None = None
    """Processing time the device's last reading was applied."""


@dataclass(frozen=True, slots=True)
class ForecastRequest:
    device_id: str
    kind: str
    tz: str
    target: LocalHour
    history_kwh: tuple[float, ...]
    baseline_kwh: float | None
    based_on_hour: datetime


@dataclass(slots=True)
class HourOutputs:
    hourly: list[HourlyAggregate] = field(default_factory=list)
    health: list[Health] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    requests: list[ForecastRequest] = field(default_factory=list)

    def extend(self, other: HourOutputs) -> None:
        self.hourly += other.hourly
        self.health += other.health
        self.alerts += other.alerts
        self.requests += other.requests


def hourly_row(device_id: str, tz: str, w: HourWindow, closed_at: datetime) -> HourlyAggregate:
    return HourlyAggregate(
        device_id=device_id,
        hour_start=w.start,
        hour_end=w.end,
        tz=tz,
        local_date=w.local_date,
        local_hour=w.local_hour,
        energy_kwh=w.energy_kwh,
        power_mean_kw=w.power_mean_kw,
        power_min_kw=w.power_min_kw,
        power_max_kw=w.power_max_kw,
        production_units=w.production_units,
        reading_count=w.count,
        expected_count=w.expected_count,
        completeness=w.completeness,
        late_count=w.late_count,
        duplicate_count=w.duplicate_count,
        first_ts=w.first_ts,
        last_ts=w.last_ts,
        revision=w.revision,
        closed_at=closed_at,
    )


def seasonal_naive(windows: DeviceWindows, target: LocalHour) -> float | None:
    """Energy of the same local hour the local day before ``target`` (24 hours back if that
    hour did not exist, e.g. across a DST change)."""
    yesterday = target.local_date - timedelta(days=1)
    for window in windows.closed:
        if window.local_date == yesterday and window.local_hour == target.local_hour:
            return window.energy_kwh
    back = target.start - timedelta(hours=24)
    for window in windows.closed:
        if window.start <= back < window.end:
            return window.energy_kwh
    return None


def _scored(window: HourWindow, pending: PendingForecast | None) -> ScoredHour:
    forecast = pending if pending is not None and pending.hour_start == window.start else None
    return ScoredHour(
        hour_start=window.start,
        actual_kwh=window.energy_kwh,
        predicted_kwh=forecast.predicted_kwh if forecast else None,
        baseline_kwh=forecast.baseline_kwh if forecast else None,
        reading_count=window.count,
        expected_count=window.expected_count,
        late_count=window.late_count,
        duplicate_count=window.duplicate_count,
        power_min_kw=window.power_min_kw,
        power_max_kw=window.power_max_kw,
    )


def _health_row(state: DeviceState, upto: int, now: datetime) -> Health:
    return device_health(
        state.windows.device_id,
        state.scored[: upto + 1],
        online=state.online,
        last_seen=state.windows.last_event_ts,
        computed_at=now,
    )


def _alerts(state: DeviceState, index: int, now: datetime) -> list[Alert]:
    device_id, previous, current = (
        state.windows.device_id,
        state.scored[:index],
        state.scored[index],
    )
    detections = detect(previous, current)
    rows = []
    suspected = state.silence
    state.silence, silent = quiet(
        suspected, previous, current, last_arrival=state.last_arrival, now=now
    )
    if silent is not None:
        detections.append(silent)
    elif suspected is not None and state.silence is None and "silent" not in state.alerts:
        # The device spoke again after hours that stayed empty: silent it was.
        rows.append(confirmed_silence(device_id, suspected, current.hour_start, now))
    return rows + advance(device_id, state.alerts, current.hour_start, detections, now=now)


def on_closed(
    state: DeviceState, closed: ClosedHour, *, now: datetime, history_hours: int
) -> HourOutputs:
    """Rows for one closed (or restated) hour, updating the device's scoring state."""
    window, tz = closed.window, closed.tz
    out = HourOutputs(hourly=[hourly_row(closed.device_id, tz, window, now)])
    scored = _scored(window, state.pending)
    index = next((i for i, s in enumerate(state.scored) if s.hour_start == window.start), None)
    if index is None:
        if closed.restated:  # scored history no longer holds it: the row alone is restated
            return out
        state.scored.append(scored)
        del state.scored[: -(WINDOW_HOURS + 1)]  # the window, plus the hour it judges
        index = len(state.scored) - 1
    else:
        previous = state.scored[index]
        state.scored[index] = scored.model_copy(
            update={"predicted_kwh": previous.predicted_kwh, "baseline_kwh": previous.baseline_kwh}
        )
        silence = state.silence
        if silence is not None and window.count and window.start >= silence.first_hour:
            state.silence = None  # its readings were late, not missing
    out.health.append(_health_row(state, index, now))
    if not closed.restated:
        # Alerts follow newly closed hours only: a restatement (late readings) changes the
        # hour's figures but not what was alerted while it was the newest hour.
        out.alerts += _alerts(state, index, now)
    # Every newly closed hour asks for the hour after it (in a catch-up burst too: each round's
    # forecasts are scored by the next round); a restatement only re-asks for the newest hour.
    latest = state.windows.closed[-1] if state.windows.closed else None
    if not closed.restated or (latest is not None and latest.start == window.start):
        request = forecast_request(state, window, history_hours)
        if request is not None:
            out.requests.append(request)
    return out


def forecast_request(
    state: DeviceState, based_on: HourWindow, history_hours: int
) -> ForecastRequest | None:
    """The next hour's forecast request, or None without a device type or enough history."""
    history = state.windows.history_kwh(history_hours, until=based_on.start)
    if state.kind is None or len(history) < history_hours:
        return None
    tz = state.windows.tz
    target = local_hour(based_on.end, tz)
    return ForecastRequest(
        device_id=state.windows.device_id,
        kind=state.kind,
        tz=tz,
        target=target,
        history_kwh=tuple(history),
        baseline_kwh=seasonal_naive(state.windows, target),
        based_on_hour=based_on.start,
    )


def record_forecast(
    state: DeviceState, request: ForecastRequest, predicted_kwh: float, model_id: str, now: datetime
) -> Forecast:
    """Keep the forecast to score when its hour closes; return its row."""
    state.pending = PendingForecast(
        hour_start=request.target.start,
        predicted_kwh=predicted_kwh,
        baseline_kwh=request.baseline_kwh,
        model_id=model_id,
    )
    return Forecast(
        device_id=request.device_id,
        hour_start=request.target.start,
        model_id=model_id,
        predicted_kwh=predicted_kwh,
        baseline_kwh=request.baseline_kwh,
        based_on_hour=request.based_on_hour,
        issued_at=now,
    )
