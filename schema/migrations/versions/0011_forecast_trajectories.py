"""Multi-horizon forecasts stored as one row per trajectory (arrays), read per target by a view.

``forecast_horizons`` held one row per target: 10,000 devices made 240,000 rows (and index
entries) an hour, more than a commit can take in the 2 s an hour close has. The new table
``forecast_trajectories`` holds one row per (device, issue time, horizon, model) with the
targets as arrays; the view ``forecast_horizons`` unnests it into the old table's columns, so
every query by horizon, issue time and target reads as before. Existing rows move over.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30

Frozen: everything is inlined here; nothing is imported from live modules. Under TimescaleDB
the table is a hypertable on ``issue_time`` (its primary key holds it).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ORDERED = """
CREATE FUNCTION wattstream_quantiles_ordered(
    p10 double precision[], p50 double precision[], p90 double precision[]
) RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT coalesce(bool_and(a <= b AND b <= c), true) FROM unnest(p10, p50, p90) AS q(a, b, c) $$
"""

_VIEW = """
CREATE VIEW forecast_horizons AS
SELECT t.device_id, t.issue_time,
       t.bounds[u.step] AS target_start, t.bounds[u.step + 1] AS target_end,
       t.horizon, t.model_id, u.step::smallint AS step,
       t.local_dates[u.step] AS local_date, t.local_hours[u.step] AS local_hour,
       t.p10_kwh[u.step] AS p10_kwh, t.p50_kwh[u.step] AS p50_kwh, t.p90_kwh[u.step] AS p90_kwh,
       t.issued_at
FROM forecast_trajectories AS t
CROSS JOIN LATERAL generate_subscripts(t.p50_kwh, 1) AS u(step)
"""

_MOVE_UP = """
INSERT INTO forecast_trajectories
SELECT device_id, issue_time, horizon, model_id,
       array_agg(target_start ORDER BY step) || max(target_end),
       array_agg(local_date ORDER BY step),
       CASE WHEN horizon = '24h' THEN array_agg(local_hour ORDER BY step) END,
       array_agg(p10_kwh ORDER BY step), array_agg(p50_kwh ORDER BY step),
       array_agg(p90_kwh ORDER BY step), max(issued_at)
FROM forecast_horizons_rows
GROUP BY device_id, issue_time, horizon, model_id
"""

_ROWS_TABLE = """
CREATE TABLE forecast_horizons (
    device_id text NOT NULL,
    issue_time timestamptz NOT NULL,
    target_start timestamptz NOT NULL,
    target_end timestamptz NOT NULL,
    horizon text NOT NULL,
    model_id text NOT NULL,
    step smallint NOT NULL,
    local_date date NOT NULL,
    local_hour smallint,
    p10_kwh double precision NOT NULL,
    p50_kwh double precision NOT NULL,
    p90_kwh double precision NOT NULL,
    issued_at timestamptz NOT NULL,
    CONSTRAINT pk_forecast_horizons
        PRIMARY KEY (device_id, issue_time, target_start, horizon, model_id),
    CONSTRAINT ck_forecast_horizons_horizon CHECK (horizon IN ('24h', '7d')),
    CONSTRAINT ck_forecast_horizons_ordered CHECK (p10_kwh <= p50_kwh AND p50_kwh <= p90_kwh),
    CONSTRAINT ck_forecast_horizons_step CHECK (step >= 1)
)
"""


def _timescaledb_mode() -> bool:
    mode = (
        op.get_bind().exec_driver_sql("SELECT value FROM storage_info WHERE key = 'mode'").scalar()
    )
    return mode == "timescaledb"


def _hypertable(name: str) -> None:
    op.execute(
        f"SELECT create_hypertable('{name}', by_range('issue_time', INTERVAL '1 day'), "
        "create_default_indexes => false, migrate_data => true, if_not_exists => true)"
    )


def upgrade() -> None:
    tstz = sa.DateTime(timezone=True)
    op.execute(_ORDERED)
    op.create_table(
        "forecast_trajectories",
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column(
            "issue_time",
            tstz,
            nullable=False,
            comment="UTC instant the first target starts: the end of the closed hour the "
            "trajectory is based on (for 7d: a local midnight)",
        ),
        sa.Column(
            "horizon",
            sa.Text(),
            nullable=False,
            comment="'24h': the hourly trajectory (24 local hours); '7d': the daily totals (7 "
            "local days)",
        ),
        sa.Column("model_id", sa.Text(), nullable=False),
        sa.Column(
            "bounds",
            sa.ARRAY(tstz),
            nullable=False,
            comment="UTC instants: target k (1-based) runs from bounds[k] to bounds[k + 1]",
        ),
        sa.Column(
            "local_dates", sa.ARRAY(sa.Date()), nullable=False, comment="each target's local date"
        ),
        sa.Column(
            "local_hours",
            sa.ARRAY(sa.SmallInteger()),
            nullable=True,
            comment="each hourly target's local hour (NULL for days)",
        ),
        sa.Column("p10_kwh", sa.ARRAY(sa.Double()), nullable=False),
        sa.Column("p50_kwh", sa.ARRAY(sa.Double()), nullable=False),
        sa.Column("p90_kwh", sa.ARRAY(sa.Double()), nullable=False),
        sa.Column("issued_at", tstz, nullable=False, comment="when the worker computed it"),
        sa.CheckConstraint(
            "horizon IN ('24h', '7d')", name=op.f("ck_forecast_trajectories_horizon")
        ),
        sa.CheckConstraint(
            "cardinality(bounds) = cardinality(p50_kwh) + 1"
            " AND cardinality(local_dates) = cardinality(p50_kwh)"
            " AND cardinality(p10_kwh) = cardinality(p50_kwh)"
            " AND cardinality(p90_kwh) = cardinality(p50_kwh)"
            " AND cardinality(p50_kwh) >= 1",
            name=op.f("ck_forecast_trajectories_steps"),
        ),
        sa.CheckConstraint(
            "wattstream_quantiles_ordered(p10_kwh, p50_kwh, p90_kwh)",
            name=op.f("ck_forecast_trajectories_ordered"),
        ),
        sa.PrimaryKeyConstraint(
            "device_id", "issue_time", "horizon", "model_id", name=op.f("pk_forecast_trajectories")
        ),
        comment="Multi-horizon forecasts with P10-P90 intervals: one row per device, issue "
        "time, horizon and model holding every target as arrays (rewritten idempotently); the "
        "view forecast_horizons has one row per target.",
    )
    op.create_index(
        op.f("ix_forecast_trajectories_horizon_issue_time"),
        "forecast_trajectories",
        ["horizon", "issue_time"],
        unique=False,
    )
    if _timescaledb_mode():
        _hypertable("forecast_trajectories")
    op.execute("ALTER TABLE forecast_horizons RENAME TO forecast_horizons_rows")
    op.execute(_MOVE_UP)
    op.execute("DROP TABLE forecast_horizons_rows")
    op.execute(_VIEW)


def downgrade() -> None:
    op.execute("ALTER VIEW forecast_horizons RENAME TO forecast_horizons_view")
    op.execute(_ROWS_TABLE)
    op.execute(
        "CREATE INDEX ix_forecast_horizons_horizon_target_start"
        " ON forecast_horizons (horizon, target_start)"
    )
    if _timescaledb_mode():
        _hypertable("forecast_horizons")
    op.execute("INSERT INTO forecast_horizons SELECT * FROM forecast_horizons_view")
    op.execute("DROP VIEW forecast_horizons_view")
    op.drop_index(
        op.f("ix_forecast_trajectories_horizon_issue_time"), table_name="forecast_trajectories"
    )
    op.drop_table("forecast_trajectories")
    op.execute(
        "DROP FUNCTION wattstream_quantiles_ordered(double precision[], double precision[], double precision[])"
    )
