"""Request and response models of the API (separate from the wire and table models).

Every timestamp is ISO-8601 with a UTC offset: the device's own zone where one device is
concerned, the requested zone for aggregates, UTC for fleet-wide figures.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from schema.device_messages import AnomalyKind, CommandAction, DeviceCommand
from schema.results import AlertFigures, AlertKind, HealthFigures, HealthStatus, Presence
from schema.wire import FiniteFloat


class Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class ReadingOut(Out):
    device_id: str
    seq: int
    ts: AwareDatetime
    """Event time with the device's UTC offset at that instant."""
    tz: str
    interval_s: int
    energy_kwh: float
    power_kw: float


class ReadingsPage(Out):
    device_id: str
    start: AwareDatetime
    end: AwareDatetime
    count: int
    truncated: bool
    """More readings are in the range than one answer holds (``max_rows``): ask again from the
    last ``ts``."""
    items: list[ReadingOut]


class DeviceSummary(Out):
    device_id: str
    kind: str | None
    tz: str | None
    """IANA zone from the device's birth message (else from its latest reading)."""
    location_name: str | None
    latitude: float | None
    longitude: float | None
    nominal_kw: float | None
    status: Presence | None
    """Presence from the device's status messages; ``None`` if it never sent one."""
    status_changed_at: AwareDatetime | None
    last_seen: AwareDatetime | None
    health: HealthStatus | None
    """Status of the latest health row; ``None`` before the first closed hour."""


class DevicesPage(Out):
    items: list[DeviceSummary]
    next_cursor: str | None
    """Pass as ``cursor`` for the next page; ``None`` on the last page."""


class HealthOut(HealthFigures):
    """One health row: the figures of the health record (:mod:`schema.results`)."""


class DeviceDetail(DeviceSummary):
    firmware: str | None
    interval_s: int | None
    first_seen: AwareDatetime | None
    updated_at: AwareDatetime | None
    last_reading_at: AwareDatetime | None
    latest_health: HealthOut | None


class AggregateOut(Out):
    start: AwareDatetime
    end: AwareDatetime
    energy_kwh: float
    reading_count: int
    power_mean_kw: float | None
    power_min_kw: float | None
    power_max_kw: float | None
    quarters: int
    """15-minute buckets with data."""
    expected_quarters: int
    """15-minute buckets in the bucket: 4 an hour; 92, 96 or 100 a local day (DST)."""


class AggregatesPage(Out):
    device_id: str
    bucket: Literal["15m", "1h", "1d"]
    tz: str
    """The zone buckets are local to and timestamps are shown in."""
    start: AwareDatetime
    """Start of the first bucket of the range (the requested start, widened to a bucket)."""
    end: AwareDatetime
    items: list[AggregateOut]


class ForecastOut(Out):
    hour_start: AwareDatetime
    hour_end: AwareDatetime
    model_id: str
    predicted_kwh: float
    baseline_kwh: float | None
    """Seasonal naive: the same local hour yesterday."""
    actual_kwh: float | None
    """Energy of the closed hour; ``None`` while the hour is open."""
    completeness: float | None
    based_on_hour: AwareDatetime
    issued_at: AwareDatetime


class ForecastsPage(Out):
    device_id: str
    tz: str
    start: AwareDatetime
    end: AwareDatetime
    items: list[ForecastOut]
    latest: ForecastOut | None
    """The forecast of the latest hour (the next hour, while the pipeline keeps up)."""


class HealthPage(Out):
    device_id: str
    tz: str
    latest: HealthOut | None
    start: AwareDatetime
    end: AwareDatetime
    items: list[HealthOut]


class EnergyVsForecast(Out):
    hour_start: AwareDatetime | None
    """UTC hour in which the compared device-local hours started."""
    actual_kwh: float | None
    forecast_kwh: float | None
    device_hours: int
    """Device-hours with both an actual and a forecast."""


class FleetSummary(Out):
    at: AwareDatetime
    devices: int
    presence: dict[str, int]
    """``online``, ``offline``, ``unknown`` (never sent a status)."""
    health: dict[str, int]
    """``green``, ``amber``, ``red``, ``unknown`` (incl. no health yet)."""
    current_hour_start: AwareDatetime
    current_hour_kwh: float | None
    """Fleet energy so far in the UTC hour that holds ``at``."""
    current_hour_forecast_kwh: float | None
    """Sum of the latest forecasts of the device-local hours that hold ``at``."""
    last_closed_hour: EnergyVsForecast


AlertState = Literal["open", "acknowledged", "resolved"]


class AlertOut(AlertFigures):
    """One alert: the alert record's figures (:mod:`schema.results`), its kind, its state
    (resolved once the condition cleared, else acknowledged once a person did, else open) and
    who acknowledged it, when, with what note."""

    kind: AlertKind
    state: AlertState
    acknowledged_at: AwareDatetime | None
    acknowledged_by: str | None
    note: str | None


class AcknowledgeIn(BaseModel):
    """Who acknowledges an alert, and why (optional)."""

    model_config = ConfigDict(extra="forbid")

    by: Annotated[str, Field(min_length=1, max_length=100)]
    note: Annotated[str, Field(max_length=2000)] | None = None


class AlertsPage(Out):
    items: list[AlertOut]
    next_cursor: str | None


class CommandIn(BaseModel):
    """A command for one device; the server adds ``command_id`` and ``issued_at``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: CommandAction
    anomaly: AnomalyKind | None = None
    """Required with ``action=anomaly``."""
    magnitude: Annotated[FiniteFloat, Field(gt=0, le=100)] | None = None
    duration_s: Annotated[int, Field(gt=0, le=7 * 86_400)] | None = None
    interval_s: Annotated[int, Field(gt=0, le=86_400)] | None = None
    """Required with ``action=set_interval``."""

    @model_validator(mode="after")
    def _fields_fit_the_action(self) -> CommandIn:
        if self.action is CommandAction.ANOMALY and self.anomaly is None:
            raise ValueError("action 'anomaly' needs 'anomaly' (spike, drift, stuck, dropout)")
        if self.action is not CommandAction.ANOMALY and (
            self.anomaly is not None or self.magnitude is not None
        ):
            raise ValueError("'anomaly' and 'magnitude' go only with action 'anomaly'")
        if self.action is CommandAction.SET_INTERVAL and self.interval_s is None:
            raise ValueError("action 'set_interval' needs 'interval_s'")
        if self.action is not CommandAction.SET_INTERVAL and self.interval_s is not None:
            raise ValueError("'interval_s' goes only with action 'set_interval'")
        return self


class CommandAccepted(Out):
    device_id: str
    topic: str
    command: DeviceCommand
    """As published (JSON, QoS 1, acknowledged by the broker)."""


class ModelOut(Out):
    model_id: str
    active: bool
    activated_at: AwareDatetime | None
    created_at: AwareDatetime
    metrics: dict[str, Any]


class KpiFigures(Out):
    """Energy KPIs of a device or a group over a period (see ``docs/kpis.md``)."""

    group: str
    """The device id, the kind, the location, or ``fleet``."""
    devices: int
    """Devices with readings in the period."""
    energy_kwh: float
    cost: float | None
    """In ``currency``; ``None`` when the group's tariffs use several (see ``cost_by_currency``)."""
    currency: str | None
    cost_by_currency: dict[str, float]
    carbon_kg: float
    """kg CO2e: energy times the grid intensity at its local time."""
    peak_kw: float | None
    """Peak demand: the highest 15-minute mean power."""
    peak_at: AwareDatetime | None
    """Start of the peak 15 minutes, local (the device's zone, else the requested one)."""
    mean_power_kw: float | None
    load_factor: float | None
    """Mean power / peak demand, in (0, 1]; ``None`` without positive mean power."""
    quarters: int
    """Device-quarters with readings."""
    expected_quarters: int
    completeness: float
    """``quarters / expected_quarters``: below 1 the figures cover a gap."""
    production_units: float | None
    sec_kwh_per_unit: float | None
    """Specific energy consumption; ``None`` until devices report production."""


class KpiPeriod(Out):
    period: Literal["day", "week", "month", "range"]
    tz: str
    """The zone of the period's days (``device``: each device's own)."""
    start: AwareDatetime | None
    end: AwareDatetime | None
    """Bounds of the period in ``tz``; ``None`` with ``tz=device`` over a fleet (each
    device's own local days from ``start_date`` to ``end_date``)."""
    start_date: date | None
    end_date: date | None
    """Local dates ``[start_date, end_date)`` of a day, week or month period."""


class DeviceKpis(Out):
    device_id: str
    period: KpiPeriod
    kpis: KpiFigures


class FleetKpis(Out):
    period: KpiPeriod
    group_by: Literal["kind", "location"] | None
    fleet: KpiFigures
    groups: list[KpiFigures]
    """One entry per kind or location (with ``group_by``), largest energy first."""


class TariffsSaved(Out):
    saved_to: str | None
    """The file the book was written to; ``None``: in force until the API restarts."""
