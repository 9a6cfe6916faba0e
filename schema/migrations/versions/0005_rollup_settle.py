"""TimescaleDB rollups: refreshed over their whole history, in order, never the open bucket.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29

0003 gave each continuous aggregate its own refresh policy with a 30-day ``start_offset``: the
first run dropped every older bucket from the aggregates (a refresh window that ends at the
watermark replaces what lies below), late readings stayed invisible until the next run, and
the three policies ran in no order. This revision replaces them with one procedure,
``wattstream_settle_rollups()``, which refreshes ``readings_15m``, then
``readings_hourly_utc``, then ``fleet_hourly``, each from the beginning of time (``NULL``) up
to the start of its open bucket, committing between levels so that each sees the one below.
A refresh only recomputes the ranges TimescaleDB has recorded as invalidated (writes below the
watermark), so an idle run costs a few catalogue reads whatever the window.

Who calls it: the stream worker, right after it commits readings that fall before the open
15-minute bucket (``stream/worker/rollup_settle.py``), and a job every 30 seconds for every
other writer. Plain PostgreSQL mode has triggers (0003) and needs none of this.

Frozen: everything is inlined here; nothing is imported from live modules.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# In refresh order: each aggregate is built on the one before.
AGGREGATES = ("readings_15m", "readings_hourly_utc", "fleet_hourly")
SETTLE_INTERVAL = "30 seconds"

# No SET clause (search_path): a procedure with one cannot COMMIT. job_id and config are the
# arguments a TimescaleDB job passes; a plain CALL passes none.
SETTLE_PROCEDURE = """
CREATE PROCEDURE wattstream_settle_rollups(job_id integer DEFAULT NULL, config jsonb DEFAULT NULL)
LANGUAGE plpgsql AS $proc$
BEGIN
    CALL refresh_continuous_aggregate('readings_15m', NULL,
                                      time_bucket(INTERVAL '15 minutes', now()));
    COMMIT;
    CALL refresh_continuous_aggregate('readings_hourly_utc', NULL,
                                      time_bucket(INTERVAL '1 hour', now()));
    COMMIT;
    CALL refresh_continuous_aggregate('fleet_hourly', NULL,
                                      time_bucket(INTERVAL '1 hour', now()));
END
$proc$
"""

# 0003's policies, restored by a downgrade: (aggregate, end_offset, schedule_interval).
OLD_POLICIES = (
    ("readings_15m", "15 minutes", "5 minutes"),
    ("readings_hourly_utc", "1 hour", "15 minutes"),
    ("fleet_hourly", "1 hour", "15 minutes"),
)
OLD_LOOKBACK = "30 days"


def _timescaledb_mode() -> bool:
    mode = (
        op.get_bind().exec_driver_sql("SELECT value FROM storage_info WHERE key = 'mode'").scalar()
    )
    return mode == "timescaledb"


def upgrade() -> None:
    if not _timescaledb_mode():
        return
    for view in AGGREGATES:
        op.execute(f"SELECT remove_continuous_aggregate_policy('{view}', if_exists => true)")
    op.execute(SETTLE_PROCEDURE)
    op.execute(
        f"SELECT add_job('wattstream_settle_rollups', INTERVAL '{SETTLE_INTERVAL}',"
        " fixed_schedule => false)"
    )
    op.execute("DELETE FROM storage_info WHERE key = 'refresh_lookback'")
    op.execute(
        "INSERT INTO storage_info (key, value)"
        " VALUES ('rollup_settle', 'every 30 seconds and after each worker commit')"
        " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
    )


def downgrade() -> None:
    if not _timescaledb_mode():
        return
    op.execute(
        "SELECT delete_job(job_id) FROM timescaledb_information.jobs"
        " WHERE proc_name = 'wattstream_settle_rollups'"
    )
    op.execute("DROP PROCEDURE IF EXISTS wattstream_settle_rollups(integer, jsonb)")
    for view, end_offset, schedule in OLD_POLICIES:
        op.execute(
            f"SELECT add_continuous_aggregate_policy('{view}',"
            f" start_offset => INTERVAL '{OLD_LOOKBACK}', end_offset => INTERVAL '{end_offset}',"
            f" schedule_interval => INTERVAL '{schedule}')"
        )
    op.execute("DELETE FROM storage_info WHERE key = 'rollup_settle'")
    op.execute(
        "INSERT INTO storage_info (key, value) VALUES ('refresh_lookback', '30 days')"
        " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
    )
