"""Request and response models of the API (separate from the wire and table models).

Every timestamp is ISO-8601 with a UTC offset: the device's own zone where one device is
concerned, the requested zone for aggregates, UTC for fleet-wide figures.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from api.params import TEXT
from schema.device_messages import AnomalyKind, DeviceCommand
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
    horizon: Literal["1h"] = "1h"
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
    horizons: list[HorizonHealth]
    """Next to the next-hour health: the rolling error of the next-hour, 24-hour-ahead and
    7-day-ahead forecasts against the actuals up to now."""
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
    (resolved once the condition cleared or a person resolved it, else acknowledged once a
    person did, else open), who acknowledged it, when, with what note, and who resolved it with
    what note (``resolved_by`` ``None``: the condition cleared, or still open)."""

    kind: AlertKind
    state: AlertState
    acknowledged_at: AwareDatetime | None
    acknowledged_by: str | None
    note: str | None
    """The acknowledgement's note."""
    resolved_by: str | None
    resolution_note: str | None


class AcknowledgeIn(BaseModel):
    """Who acknowledges an alert, and why (optional)."""

    model_config = ConfigDict(extra="forbid")

    by: Annotated[str, Field(min_length=1, max_length=100, pattern=TEXT)]
    note: Annotated[str, Field(max_length=2000, pattern=TEXT)] | None = None


class ResolveIn(AcknowledgeIn):
    """Who resolves an alert by hand, and why (optional)."""


class KindQuality(BaseModel):
    """How good one kind of alert is against the injected anomalies (``api.alertscore``)."""

    kind: AlertKind
    alerts: int
    """Alerts of this kind in the range (precision's denominator)."""
    true_alerts: int
    """Of those, the ones about a device that really had an injected anomaly then."""
    injected: int
    """Injected anomalies this kind of alert is meant to catch (recall's denominator)."""
    detected: int
    """Of those, the ones such an alert caught."""
    precision: float | None
    """``true_alerts / alerts``; ``None`` without alerts."""
    recall: float | None
    """``detected / injected``; ``None`` without injected anomalies."""


class AlertQuality(Out):
    """Precision and recall of the alerts per kind over ``[start, end)``: the alerts whose
    hours overlap the range against the ground-truth labels of the anomalies the simulator
    injected in it. Empty ``kinds`` when there were neither."""

    start: AwareDatetime
    end: AwareDatetime
    labels: int
    kinds: list[KindQuality]


class AlertsPage(Out):
    items: list[AlertOut]
    next_cursor: str | None


class _Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    duration_s: Annotated[int, Field(gt=0, le=7 * 86_400)] | None = None


class AnomalyCommand(_Command):
    """Inject an anomaly: ``spike``, ``drift``, ``stuck`` or ``dropout``."""

    action: Literal["anomaly"]
    anomaly: AnomalyKind
    magnitude: Annotated[FiniteFloat, Field(gt=0, le=100)] | None = None
    """Spike/drift size as a factor of nominal power (e.g. 3.0)."""


class PresenceCommand(_Command):
    """Take the device ``offline`` or bring it back ``online``."""

    action: Literal["online", "offline"]


class SetIntervalCommand(_Command):
    """Change the device's reporting interval."""

    action: Literal["set_interval"]
    interval_s: Annotated[int, Field(gt=0, le=86_400)]


CommandIn = Annotated[
    AnomalyCommand | PresenceCommand | SetIntervalCommand, Field(discriminator="action")
]
"""A command for one device, by its ``action`` (a discriminated union: each action has exactly
its own fields, and the OpenAPI document says which); the server adds ``command_id`` and
``issued_at``."""


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
    """Units produced by the devices that report production (industrial lines); ``None``
    when none of them reported any in the period."""
    sec_kwh_per_unit: float | None
    """Specific energy consumption: the energy of the devices that reported production over
    the units they produced (kWh/unit); ``None`` where there is no production."""


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


class HorizonTarget(Out):
    """One target of a multi-horizon forecast with its P10-P90 interval (kWh)."""

    step: int
    """Hours (``24h``) or local days (``7d``) ahead, from 1."""
    target_start: AwareDatetime
    target_end: AwareDatetime
    local_date: date
    local_hour: int | None
    """The local hour of an hourly target; ``None`` for a day."""
    p10_kwh: float
    p50_kwh: float
    p90_kwh: float
    actual_kwh: float | None
    """The energy the target period had, once known (closed hour or local day)."""


class PeakOut(Out):
    """The predicted peak hour (highest P50) of the local day after the issue hour."""

    local_date: date
    target_start: AwareDatetime
    local_hour: int
    p50_kwh: float
    covered_hours: int
    """Hours of that day the trajectory holds (the peak is among them)."""


class HorizonPage(Out):
    device_id: str
    tz: str
    horizon: Literal["24h", "7d"]
    model_id: str | None
    issue_time: AwareDatetime | None
    """Start of the first target; ``None`` when the device has no such forecast yet."""
    issued_at: AwareDatetime | None
    items: list[HorizonTarget]
    peak: PeakOut | None
    """``24h`` only: the predicted peak hour of the next local day."""


class FleetHorizonTarget(Out):
    bucket: AwareDatetime | None
    """``24h``: the UTC hour the device-local target hours start in."""
    local_date: date | None
    """``7d``: the devices' local date."""
    devices: int
    p10_kwh: float
    p50_kwh: float
    p90_kwh: float


class FleetHorizonPage(Out):
    horizon: Literal["24h", "7d"]
    model_id: str | None
    issued_from: AwareDatetime | None
    issued_until: AwareDatetime | None
    """The range of the devices' latest issue times summed here."""
    items: list[FleetHorizonTarget]
    """P50 is the sum of the devices' P50; P10 and P90 are sums too, so the band is as wide
    as if every device erred the same way at once (a conservative band)."""
    peak: FleetHorizonTarget | None
    """``24h``: the hour with the highest summed P50."""


class ModelSummary(Out):
    model_id: str
    active: bool
    activated_at: AwareDatetime | None
    created_at: AwareDatetime
    metrics: dict[str, Any]
    """Held-out scorecard: next hour (``held_out``, ``validation``) and, for a multi-horizon
    model, ``horizons`` per step and kind and ``horizons_summary``."""


class ModelDetail(ModelSummary):
    card: dict[str, Any]
    """The whole model card (data, training, architecture, libraries, files)."""


class HorizonAccuracy(Out):
    horizon: Literal["1h", "24h", "7d"]
    """``1h``: next-hour forecasts; ``24h``: the 24th hour of each trajectory; ``7d``: the 7th
    day of each 7-day forecast."""
    n: int
    rmse_kwh: float | None
    mae_kwh: float | None
    bias_kwh: float | None
    """Predicted minus actual: positive = over-forecast."""
    coverage_p10_p90: float | None
    """Share of actuals inside P10-P90 (target 0.8); ``None`` for ``1h`` (no interval)."""


class HorizonHealth(HorizonAccuracy):
    """A horizon's rolling error over its trailing window: 24 hours for ``1h`` and ``24h``, 14
    days for ``7d`` (one target a day)."""

    window_start: AwareDatetime
    window_end: AwareDatetime


class ForecastAccuracy(Out):
    device_id: str
    tz: str
    model_id: str | None
    start: AwareDatetime
    end: AwareDatetime
    horizons: list[HorizonAccuracy]


class TrainingIn(BaseModel):
    """A training run of the multi-horizon GRU (``wattstream train``) started from the API."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    preset: Literal["tiny", "quick", "full"] = "quick"
    """``tiny``: 8 devices, 2 epochs (about a minute, not a usable model); ``quick``: 21
    devices, 42 days (a few minutes); ``full``: the committed model's run (about 10 minutes
    on 2 cores)."""
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 7
    """Seeds the simulated history, the window sample and TensorFlow (same seed, same model)."""


class TrainingOut(Out):
    training_id: str
    preset: Literal["tiny", "quick", "full"]
    seed: int
    state: Literal["running", "succeeded", "failed"]
    started_at: AwareDatetime
    finished_at: AwareDatetime | None
    model_id: str | None
    """The trained model (registered in ``GET /api/v1/models``, not active) once succeeded."""
    events: int
    """Progress events so far (``events_url`` streams them)."""
    last_event: dict[str, Any] | None
    events_url: str
    """Server-sent events: ``started``, ``stage``, ``epoch`` (loss, val_loss,
    validation_skill, validation_coverage), then ``done`` or ``failed``."""
