"""Wire format of the stream worker's results, on the ``hourly``, ``forecasts``, ``health`` and
``alerts`` Kafka topics (keyed by device id) for the API's live feed.

Each carries the same values as its database row (:mod:`schema.tables`); the two are kept
apart so that a message and a table can change independently. The sink writes each record by
field name (``stream/worker/statements.py``), and the API answers with the figures of
:class:`HealthFigures` and :class:`AlertFigures` rather than restating them.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import AwareDatetime

from schema.wire import SCHEMA_VERSION, DeviceId, WireModel, ZoneName


class HourlyAggregate(WireModel):
    """One closed device-local hour; ``revision`` > 0 marks a restatement."""

    schema_version: Literal[1] = SCHEMA_VERSION
    kind: Literal["hourly"] = "hourly"
    device_id: DeviceId
    hour_start: AwareDatetime
    hour_end: AwareDatetime
    tz: ZoneName
    local_date: date
    local_hour: int
    energy_kwh: float
    power_mean_kw: float | None
    power_min_kw: float | None
    power_max_kw: float | None
    production_units: float | None = None
    """Units produced in the hour; ``None`` when the device reported none (most kinds)."""
    reading_count: int
    expected_count: int
    completeness: float
    late_count: int
    duplicate_count: int
    first_ts: AwareDatetime | None
    last_ts: AwareDatetime | None
    revision: int
    closed_at: AwareDatetime


class Forecast(WireModel):
    """Next-hour energy forecast for a device, made when the hour before it closed."""

    schema_version: Literal[1] = SCHEMA_VERSION
    kind: Literal["forecast"] = "forecast"
    device_id: DeviceId
    hour_start: AwareDatetime
    """Start of the forecast (target) local hour, UTC."""
    model_id: str
    predicted_kwh: float
    baseline_kwh: float | None
    """Seasonal naive: the same local hour yesterday."""
    based_on_hour: AwareDatetime
    issued_at: AwareDatetime


HealthStatus = Literal["green", "amber", "red", "unknown"]
Presence = Literal["online", "offline"]
Severity = Literal["warning", "critical"]
AlertKind = Literal["residual", "level_shift", "silent", "stuck"]


class HealthFigures(WireModel):
    """A device's health at one closed hour: forecast accuracy and data quality over the last
    24 hours (the API answers with these fields)."""

    hour_start: AwareDatetime
    rmse_24h: float | None
    mae_24h: float | None
    mape_24h: float | None
    bias_24h: float | None
    naive_rmse_24h: float | None
    rmse_ratio: float | None
    """rmse_24h / naive_rmse_24h: below 1 the model beats the seasonal-naive baseline."""
    status: HealthStatus
    completeness_24h: float
    gaps_24h: int
    late_24h: int
    duplicates_24h: int
    presence: Presence | None
    last_seen: AwareDatetime | None
    computed_at: AwareDatetime


class Health(HealthFigures):
    schema_version: Literal[1] = SCHEMA_VERSION
    kind: Literal["health"] = "health"
    device_id: DeviceId


class AlertFigures(WireModel):
    """One alert, without the kind of alert (the API answers with these fields).

    An alert covers the hours ``hour_start`` (when it opened) to ``last_hour_start`` (the last
    hour its condition held, ``hours`` of them); ``resolved_hour`` is the start of the first
    hour without the condition (``None`` while open). ``residual_kwh`` (actual - forecast),
    ``sigma`` and ``z`` are those of its last hour, for the kinds that compare with the forecast
    (``residual``, ``level_shift``); ``None`` otherwise.
    """

    alert_id: str
    device_id: DeviceId
    hour_start: AwareDatetime
    last_hour_start: AwareDatetime
    hours: int
    severity: Severity
    residual_kwh: float | None
    sigma: float | None
    z: float | None
    message: str
    raised_at: AwareDatetime
    updated_at: AwareDatetime
    resolved_hour: AwareDatetime | None
    resolved_at: AwareDatetime | None


class Alert(AlertFigures):
    schema_version: Literal[1] = SCHEMA_VERSION
    kind: Literal["alert"] = "alert"
    alert_kind: AlertKind = "residual"
