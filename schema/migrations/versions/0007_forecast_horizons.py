"""Multi-horizon forecasts: the 24-hour hourly trajectory and the 7 daily totals, P10-P90.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

Frozen: everything is inlined here; nothing is imported from live modules. Under TimescaleDB
the table is a hypertable on ``issue_time`` (its primary key holds it).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timescaledb_mode() -> bool:
    mode = (
        op.get_bind().exec_driver_sql("SELECT value FROM storage_info WHERE key = 'mode'").scalar()
    )
    return mode == "timescaledb"


def upgrade() -> None:
    tstz = sa.DateTime(timezone=True)
    op.create_table(
        "forecast_horizons",
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column(
            "issue_time",
            tstz,
            nullable=False,
            comment="UTC instant the first target starts: the end of the closed hour the "
            "trajectory is based on (for 7d: a local midnight)",
        ),
        sa.Column(
            "target_start",
            tstz,
            nullable=False,
            comment="UTC instant the target (a local hour or day) starts",
        ),
        sa.Column("target_end", tstz, nullable=False),
        sa.Column(
            "horizon",
            sa.Text(),
            nullable=False,
            comment="'24h': an hour of the hourly trajectory; '7d': a local day of the daily "
            "totals",
        ),
        sa.Column("model_id", sa.Text(), nullable=False),
        sa.Column(
            "step", sa.SmallInteger(), nullable=False, comment="1-based: hours or days ahead"
        ),
        sa.Column(
            "local_date", sa.Date(), nullable=False, comment="the target's device-local date"
        ),
        sa.Column(
            "local_hour", sa.SmallInteger(), nullable=True, comment="an hourly target's local hour"
        ),
        sa.Column("p10_kwh", sa.Double(), nullable=False),
        sa.Column("p50_kwh", sa.Double(), nullable=False),
        sa.Column("p90_kwh", sa.Double(), nullable=False),
        sa.Column("issued_at", tstz, nullable=False, comment="when the worker computed it"),
        sa.CheckConstraint("horizon IN ('24h', '7d')", name=op.f("ck_forecast_horizons_horizon")),
        sa.CheckConstraint(
            "p10_kwh <= p50_kwh AND p50_kwh <= p90_kwh", name=op.f("ck_forecast_horizons_ordered")
        ),
        sa.CheckConstraint("step >= 1", name=op.f("ck_forecast_horizons_step")),
        sa.PrimaryKeyConstraint(
            "device_id",
            "issue_time",
            "target_start",
            "horizon",
            "model_id",
            name=op.f("pk_forecast_horizons"),
        ),
        comment="Multi-horizon forecasts with P10-P90 intervals: one row per device, issue "
        "time, target, horizon and model (rewritten idempotently).",
    )
    op.create_index(
        op.f("ix_forecast_horizons_horizon_target_start"),
        "forecast_horizons",
        ["horizon", "target_start"],
        unique=False,
    )
    if _timescaledb_mode():
        op.execute(
            "SELECT create_hypertable('forecast_horizons', by_range('issue_time', "
            "INTERVAL '1 day'), create_default_indexes => false, migrate_data => true, "
            "if_not_exists => true)"
        )


def downgrade() -> None:
    op.drop_index(op.f("ix_forecast_horizons_horizon_target_start"), table_name="forecast_horizons")
    op.drop_table("forecast_horizons")
