"""Table definitions (SQLAlchemy Core), the target metadata of the Alembic migrations.

These describe storage, not messages: a column here may differ from a field of the wire model
in :mod:`schema.wire`, and each can change without the other.

Every table has a natural primary key, so every sink write is idempotent (``INSERT ... ON
CONFLICT (key) DO NOTHING`` or ``DO UPDATE``). The rollups the API reads (``readings_15m``,
``readings_hourly_utc``, ``daily_local``, ``fleet_hourly``) are not here: they are continuous
aggregates under TimescaleDB and trigger-maintained tables under plain PostgreSQL, created by
the migrations (see :mod:`schema.storage`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Double,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

DEVICE_STATUSES = ("online", "offline")
HEALTH_STATUSES = ("green", "amber", "red", "unknown")
ALERT_SEVERITIES = ("warning", "critical")
ALERT_KINDS = ("residual", "level_shift", "silent", "stuck")
ANOMALY_KINDS = ("spike", "drift", "stuck", "dropout")
LABEL_SOURCES = ("command", "schedule")
STORAGE_MODES = ("timescaledb", "postgresql")


def _tstz(
    name: str, *, nullable: bool = False, now: bool = False, comment: str = ""
) -> Column[datetime]:
    return Column(
        name,
        DateTime(timezone=True),
        nullable=nullable,
        server_default=func.now() if now else None,
        comment=comment or None,
    )


def _one_of(column: str, values: tuple[str, ...]) -> CheckConstraint:
    allowed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=column)


readings = Table(
    "readings",
    metadata,
    Column("device_id", Text, nullable=False),
    Column("ts", DateTime(timezone=True), nullable=False, comment="event time, stored in UTC"),
    Column("seq", BigInteger, nullable=False),
    Column("tz", Text, nullable=False, comment="the device's IANA zone at the time"),
    Column("interval_s", Integer, nullable=False),
    Column("energy_kwh", Double, nullable=False),
    Column("power_kw", Double, nullable=False),
    Column(
        "ingested_at",
        DateTime(timezone=True),
        nullable=False,
        server_default=func.now(),
    ),
    Column(
        "production_units",
        Double,
        nullable=True,
        comment="units produced in the interval (devices that report production only)",
    ),
    # (device_id, ts) makes every sink write idempotent (ON CONFLICT DO NOTHING) and, holding
    # the time column, is also a valid unique key for a TimescaleDB hypertable. It also serves
    # every per-device time-range query.
    PrimaryKeyConstraint("device_id", "ts"),
    comment="Raw device readings, one row per (device, event time).",
)

devices = Table(
    "devices",
    metadata,
    Column("device_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("tz", Text, nullable=False, comment="IANA zone the device reports in"),
    Column("latitude", Double, nullable=True),
    Column("longitude", Double, nullable=True),
    Column("location_name", Text, nullable=True),
    Column("nominal_kw", Double, nullable=True),
    Column("firmware", Text, nullable=True),
    Column("interval_s", Integer, nullable=True),
    _tstz("first_seen", now=True),
    _tstz("updated_at", now=True),
    PrimaryKeyConstraint("device_id"),
    comment="One row per device, from its birth message (upserted).",
)

device_status = Table(
    "device_status",
    metadata,
    Column("device_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    _tstz("changed_at"),
    _tstz("last_seen", nullable=True),
    PrimaryKeyConstraint("device_id"),
    _one_of("status", DEVICE_STATUSES),
    comment="Presence of each device (online/offline), last change wins.",
)

hourly = Table(
    "hourly",
    metadata,
    Column("device_id", Text, nullable=False),
    _tstz("hour_start", comment="UTC instant the device-local hour starts"),
    _tstz("hour_end"),
    Column("tz", Text, nullable=False),
    Column("local_date", Date, nullable=False),
    Column("local_hour", SmallInteger, nullable=False),
    Column("energy_kwh", Double, nullable=False),
    Column("power_mean_kw", Double, nullable=True),
    Column("power_min_kw", Double, nullable=True),
    Column("power_max_kw", Double, nullable=True),
    Column("reading_count", Integer, nullable=False),
    Column("expected_count", Integer, nullable=False),
    Column("completeness", Double, nullable=False),
    Column("late_count", Integer, nullable=False, server_default=text("0")),
    Column("duplicate_count", Integer, nullable=False, server_default=text("0")),
    _tstz("first_ts", nullable=True),
    _tstz("last_ts", nullable=True),
    Column(
        "revision",
        Integer,
        nullable=False,
        server_default=text("0"),
        comment="incremented each time the hour is restated",
    ),
    _tstz("closed_at", now=True),
    Column("production_units", Double, nullable=True, comment="NULL: none reported"),
    PrimaryKeyConstraint("device_id", "hour_start"),
    CheckConstraint("local_hour BETWEEN 0 AND 23", name="local_hour"),
    comment="Closed device-local hours computed by the stream worker.",
)
Index("ix_hourly_device_id_local_date", hourly.c.device_id, hourly.c.local_date)

forecasts = Table(
    "forecasts",
    metadata,
    Column("device_id", Text, nullable=False),
    _tstz("hour_start", comment="the target hour"),
    Column("model_id", Text, nullable=False),
    Column("predicted_kwh", Double, nullable=False),
    Column(
        "baseline_kwh",
        Double,
        nullable=True,
        comment="seasonal naive: the same local hour yesterday",
    ),
    _tstz("based_on_hour"),
    _tstz("issued_at", now=True),
    PrimaryKeyConstraint("device_id", "hour_start", "model_id"),
    comment="Next-hour energy forecasts per device and model.",
)

FORECAST_HORIZONS = ("24h", "7d")

forecast_trajectories = Table(
    "forecast_trajectories",
    metadata,
    Column("device_id", Text, nullable=False),
    _tstz(
        "issue_time",
        comment="UTC instant the first target starts: the end of the closed "
        "hour the trajectory is based on (for 7d: a local midnight)",
    ),
    Column(
        "horizon",
        Text,
        nullable=False,
        comment="'24h': the hourly trajectory (24 local hours); '7d': the daily totals (7 local "
        "days)",
    ),
    Column("model_id", Text, nullable=False),
    Column(
        "bounds",
        ARRAY(DateTime(timezone=True)),
        nullable=False,
        comment="UTC instants: target k (1-based) runs from bounds[k] to bounds[k + 1]",
    ),
    Column("local_dates", ARRAY(Date), nullable=False, comment="each target's local date"),
    Column(
        "local_hours",
        ARRAY(SmallInteger),
        nullable=True,
        comment="each hourly target's local hour (NULL for days)",
    ),
    Column("p10_kwh", ARRAY(Double), nullable=False),
    Column("p50_kwh", ARRAY(Double), nullable=False),
    Column("p90_kwh", ARRAY(Double), nullable=False),
    _tstz("issued_at", comment="when the worker computed it"),
    PrimaryKeyConstraint("device_id", "issue_time", "horizon", "model_id"),
    _one_of("horizon", FORECAST_HORIZONS),
    CheckConstraint(
        "cardinality(bounds) = cardinality(p50_kwh) + 1"
        " AND cardinality(local_dates) = cardinality(p50_kwh)"
        " AND cardinality(p10_kwh) = cardinality(p50_kwh)"
        " AND cardinality(p90_kwh) = cardinality(p50_kwh)"
        " AND cardinality(p50_kwh) >= 1",
        name="steps",
    ),
    # P10 <= P50 <= P90 at every step (a function of migration 0011: a check takes no subquery).
    CheckConstraint("wattstream_quantiles_ordered(p10_kwh, p50_kwh, p90_kwh)", name="ordered"),
    comment="Multi-horizon forecasts with P10-P90 intervals: one row per device, issue time, "
    "horizon and model holding every target as arrays (rewritten idempotently); the view "
    "forecast_horizons has one row per target.",
)
# The fleet's newest forecasts read across devices.
Index(
    "ix_forecast_trajectories_horizon_issue_time",
    forecast_trajectories.c.horizon,
    forecast_trajectories.c.issue_time,
)

health = Table(
    "health",
    metadata,
    Column("device_id", Text, nullable=False),
    _tstz("hour_start"),
    Column("rmse_24h", Double, nullable=True),
    Column("mae_24h", Double, nullable=True),
    Column("mape_24h", Double, nullable=True),
    Column("bias_24h", Double, nullable=True),
    Column("naive_rmse_24h", Double, nullable=True),
    Column("rmse_ratio", Double, nullable=True),
    Column("status", Text, nullable=False),
    Column("completeness_24h", Double, nullable=False),
    Column("gaps_24h", Integer, nullable=False, server_default=text("0")),
    Column("late_24h", Integer, nullable=False, server_default=text("0")),
    Column("duplicates_24h", Integer, nullable=False, server_default=text("0")),
    Column("presence", Text, nullable=True),
    _tstz("last_seen", nullable=True),
    _tstz("computed_at", now=True),
    PrimaryKeyConstraint("device_id", "hour_start"),
    _one_of("status", HEALTH_STATUSES),
    comment="Per device and hour: forecast accuracy and data quality over the last 24 h.",
)
# The fleet's health for one hour (dashboard) reads across devices.
Index("ix_health_hour_start", health.c.hour_start)

alerts = Table(
    "alerts",
    metadata,
    Column("device_id", Text, nullable=False),
    _tstz("hour_start", comment="the hour the alert opened"),
    Column("kind", Text, nullable=False),
    Column("severity", Text, nullable=False, comment="the worst severity while open"),
    Column("residual_kwh", Double, nullable=True),
    Column("sigma", Double, nullable=True),
    Column("z", Double, nullable=True),
    Column("message", Text, nullable=False),
    _tstz("raised_at", now=True),
    Column("alert_id", Text, nullable=False, comment="device.kind.unix time it opened"),
    _tstz("last_hour_start", comment="the last hour the condition held"),
    Column("hours", Integer, nullable=False, server_default=text("1")),
    _tstz("updated_at", now=True),
    _tstz("resolved_hour", nullable=True, comment="the first hour without the condition"),
    _tstz("resolved_at", nullable=True),
    _tstz("acknowledged_at", nullable=True),
    Column("acknowledged_by", Text, nullable=True),
    Column("note", Text, nullable=True, comment="the acknowledgement's note"),
    Column("resolved_by", Text, nullable=True, comment="who resolved it by hand (API)"),
    Column("resolution_note", Text, nullable=True),
    PrimaryKeyConstraint("device_id", "hour_start", "kind"),
    _one_of("severity", ALERT_SEVERITIES),
    _one_of("kind", ALERT_KINDS),
    comment="Alerts per device and kind, one row from the hour each opened until resolved (by "
    "the worker once the condition cleared, or by a person through the API); acknowledged "
    "through the API.",
)
# The recent-alerts feed reads across devices, newest first.
Index("ix_alerts_raised_at", alerts.c.raised_at)
# The API addresses an alert by its id.
Index("uq_alerts_alert_id", alerts.c.alert_id, unique=True)
# Open alerts, across devices (the dashboard's list).
Index("ix_alerts_open", alerts.c.raised_at, postgresql_where=alerts.c.resolved_hour.is_(None))

anomaly_labels = Table(
    "anomaly_labels",
    metadata,
    *(Column(name, Text, nullable=False) for name in ("label_id", "device_id", "anomaly")),
    _tstz("start", comment="event time of the first affected reading"),
    _tstz("end", comment="exclusive"),
    Column("first_seq", BigInteger, nullable=False),
    Column("magnitude", Double, nullable=True),
    Column("nominal_kw", Double, nullable=False),
    *(Column(name, Text, nullable=False) for name in ("source", "command_id")),
    _tstz("received_at", now=True),
    PrimaryKeyConstraint("label_id"),
    _one_of("anomaly", ANOMALY_KINDS),
    _one_of("source", LABEL_SOURCES),
    comment="Ground truth of the anomalies the simulator injected (its labels topic), upserted "
    "by label id: what the alerts are scored against.",
)
# Scoring reads the labels of a time range.
Index("ix_anomaly_labels_start", anomaly_labels.c.start)

models = Table(
    "models",
    metadata,
    Column("model_id", Text, nullable=False),
    _tstz("created_at", now=True),
    Column("metrics", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("card", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("active", Boolean, nullable=False, server_default=text("false")),
    _tstz("activated_at", nullable=True),
    PrimaryKeyConstraint("model_id"),
    comment="Trained forecast models; at most one is active.",
)
# At most one row has active = true: a unique index over the constant-valued rows it covers.
Index(
    "uq_models_active",
    models.c.active,
    unique=True,
    postgresql_where=models.c.active,
)

storage_info = Table(
    "storage_info",
    metadata,
    Column("key", Text, nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("key"),
    comment="Facts about the storage layer recorded at migrate time, e.g. mode.",
)

stream_offsets = Table(
    "stream_offsets",
    metadata,
    Column("group_id", Text, nullable=False),
    Column("topic", Text, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("next_offset", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("group_id", "topic", "partition"),
    comment="Next source offset per stream-worker group and partition, written in the same "
    "transaction as the rows the events produced: the worker seeks back to it when Kafka's "
    "committed offset ran ahead of what is in the database.",
)

command_requests = Table(
    "command_requests",
    metadata,
    Column("client", Text, nullable=False, comment="SHA-256 of the caller's API key (hex)."),
    Column("idempotency_key", Text, nullable=False),
    Column("request_hash", Text, nullable=False, comment="SHA-256 of device id and body."),
    Column("status_code", SmallInteger, nullable=True),
    Column("response", JSONB, nullable=True, comment="NULL while the first request runs."),
    _tstz("created_at", now=True),
    PrimaryKeyConstraint("client", "idempotency_key"),
    comment="Device commands sent with an Idempotency-Key: a retry with the same key (within "
    "the API's idempotency_ttl) answers the first answer and publishes nothing.",
)
# Expired keys are deleted by age.
Index("ix_command_requests_created_at", command_requests.c.created_at)
