"""Devices, presence, closed hours, forecasts, health, alerts, models, storage facts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    "storage_info",
    "models",
    "alerts",
    "health",
    "forecasts",
    "hourly",
    "device_status",
    "devices",
)


def _tstz(
    name: str, *, nullable: bool = False, now: bool = False, comment: str | None = None
) -> sa.Column:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=sa.func.now() if now else None,
        comment=comment,
    )


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("tz", sa.Text(), nullable=False, comment="IANA zone the device reports in"),
        sa.Column("latitude", sa.Double(), nullable=True),
        sa.Column("longitude", sa.Double(), nullable=True),
        sa.Column("location_name", sa.Text(), nullable=True),
        sa.Column("nominal_kw", sa.Double(), nullable=True),
        sa.Column("firmware", sa.Text(), nullable=True),
        sa.Column("interval_s", sa.Integer(), nullable=True),
        _tstz("first_seen", now=True),
        _tstz("updated_at", now=True),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_devices")),
        comment="One row per device, from its birth message (upserted).",
    )
    op.create_table(
        "device_status",
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        _tstz("changed_at"),
        _tstz("last_seen", nullable=True),
        sa.CheckConstraint("status IN ('online', 'offline')", name=op.f("ck_device_status_status")),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_device_status")),
        comment="Presence of each device (online/offline), last change wins.",
    )
    op.create_table(
        "hourly",
        sa.Column("device_id", sa.Text(), nullable=False),
        _tstz("hour_start", comment="UTC instant the device-local hour starts"),
        _tstz("hour_end"),
        sa.Column("tz", sa.Text(), nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("local_hour", sa.SmallInteger(), nullable=False),
        sa.Column("energy_kwh", sa.Double(), nullable=False),
        sa.Column("power_mean_kw", sa.Double(), nullable=True),
        sa.Column("power_min_kw", sa.Double(), nullable=True),
        sa.Column("power_max_kw", sa.Double(), nullable=True),
        sa.Column("reading_count", sa.Integer(), nullable=False),
        sa.Column("expected_count", sa.Integer(), nullable=False),
        sa.Column("completeness", sa.Double(), nullable=False),
        sa.Column("late_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("duplicate_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        _tstz("first_ts", nullable=True),
        _tstz("last_ts", nullable=True),
        sa.Column(
            "revision",
            sa.Integer(),
            server_default=sa.text("0"),
            nullable=False,
            comment="incremented each time the hour is restated",
        ),
        _tstz("closed_at", now=True),
        sa.CheckConstraint("local_hour BETWEEN 0 AND 23", name=op.f("ck_hourly_local_hour")),
        sa.PrimaryKeyConstraint("device_id", "hour_start", name=op.f("pk_hourly")),
        comment="Closed device-local hours computed by the stream worker.",
    )
    op.create_index("ix_hourly_device_id_local_date", "hourly", ["device_id", "local_date"])
    op.create_table(
        "forecasts",
        sa.Column("device_id", sa.Text(), nullable=False),
        _tstz("hour_start", comment="the target hour"),
        sa.Column("model_id", sa.Text(), nullable=False),
        sa.Column("predicted_kwh", sa.Double(), nullable=False),
        sa.Column(
            "baseline_kwh",
            sa.Double(),
            nullable=True,
            comment="seasonal naive: the same local hour yesterday",
        ),
        _tstz("based_on_hour"),
        _tstz("issued_at", now=True),
        sa.PrimaryKeyConstraint("device_id", "hour_start", "model_id", name=op.f("pk_forecasts")),
        comment="Next-hour energy forecasts per device and model.",
    )
    op.create_table(
        "health",
        sa.Column("device_id", sa.Text(), nullable=False),
        _tstz("hour_start"),
        sa.Column("rmse_24h", sa.Double(), nullable=True),
        sa.Column("mae_24h", sa.Double(), nullable=True),
        sa.Column("mape_24h", sa.Double(), nullable=True),
        sa.Column("bias_24h", sa.Double(), nullable=True),
        sa.Column("naive_rmse_24h", sa.Double(), nullable=True),
        sa.Column("rmse_ratio", sa.Double(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("completeness_24h", sa.Double(), nullable=False),
        sa.Column("gaps_24h", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("late_24h", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("duplicates_24h", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("presence", sa.Text(), nullable=True),
        _tstz("last_seen", nullable=True),
        _tstz("computed_at", now=True),
        sa.CheckConstraint(
            "status IN ('green', 'amber', 'red', 'unknown')", name=op.f("ck_health_status")
        ),
        sa.PrimaryKeyConstraint("device_id", "hour_start", name=op.f("pk_health")),
        comment="Per device and hour: forecast accuracy and data quality over the last 24 h.",
    )
    op.create_index("ix_health_hour_start", "health", ["hour_start"])
    op.create_table(
        "alerts",
        sa.Column("device_id", sa.Text(), nullable=False),
        _tstz("hour_start"),
        sa.Column("kind", sa.Text(), nullable=False, comment="e.g. 'residual'"),
        sa.Column("severity", sa.Text(), nullable=False),
        sa.Column("residual_kwh", sa.Double(), nullable=False),
        sa.Column("sigma", sa.Double(), nullable=False),
        sa.Column("z", sa.Double(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        _tstz("raised_at", now=True),
        sa.CheckConstraint("severity IN ('warning', 'critical')", name=op.f("ck_alerts_severity")),
        sa.PrimaryKeyConstraint("device_id", "hour_start", "kind", name=op.f("pk_alerts")),
        comment="Alerts raised per device, hour and kind (at most one of each).",
    )
    op.create_index("ix_alerts_raised_at", "alerts", ["raised_at"])
    op.create_table(
        "models",
        sa.Column("model_id", sa.Text(), nullable=False),
        _tstz("created_at", now=True),
        sa.Column(
            "metrics",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "card",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("active", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        _tstz("activated_at", nullable=True),
        sa.PrimaryKeyConstraint("model_id", name=op.f("pk_models")),
        comment="Trained forecast models; at most one is active.",
    )
    op.create_index(
        "uq_models_active", "models", ["active"], unique=True, postgresql_where=sa.text("active")
    )
    op.create_table(
        "storage_info",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_storage_info")),
        comment="Facts about the storage layer recorded at migrate time, e.g. mode.",
    )


def downgrade() -> None:
    for table in TABLES:
        op.drop_table(table)
