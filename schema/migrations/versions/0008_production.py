"""Production: units produced per reading, summed by the worker's hours and by every rollup.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30

Devices that make things (industrial lines) report the units produced per interval, so that
the KPIs can give specific energy consumption (kWh per unit). This revision adds a nullable
``production_units`` column (NULL: the device reports no production) to ``readings`` and
``hourly``, and the same column, last, to every rollup in both storage modes: the sum of the
readings' production, NULL where none reported any.

* Plain PostgreSQL: the columns are added to the rollup tables and
  ``wattstream_refresh_rollups`` is replaced by one that fills them. No reading had production
  before this revision, so every existing row is right with NULL.
* TimescaleDB: a continuous aggregate's query cannot be altered, so ``readings_15m``,
  ``readings_hourly_utc`` and ``fleet_hourly`` are dropped and created again with the column
  (``daily_local``, a view over them, too). They are real-time aggregates: the answers are
  right at once, computed from ``readings`` until ``wattstream_settle_rollups()`` (0005, which
  names them and so survives) has materialized them. Rollup buckets whose raw chunks a
  retention policy already dropped are lost by the rebuild (retention is off by default; the
  migration logs a warning when it is on).

Frozen: everything is inlined here; nothing is imported from live modules. The SQL of both
versions (with and without production) comes from one template, so the downgrade restores
exactly what 0003 created.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger(__name__)

ROLLUP_TABLES = ("readings_15m", "readings_hourly_utc", "fleet_hourly")
COLUMN_COMMENTS = {
    "readings": "units produced in the interval (devices that report production only)",
    "hourly": "NULL: none reported",
}

# Each template has {p} slots: "" without production, the fragment with it.
DAILY_LOCAL = """
CREATE VIEW daily_local AS
SELECT device_id,
       local_date,
       tz,
       (local_date::timestamp AT TIME ZONE tz) AS day_start,
       ((local_date + 1)::timestamp AT TIME ZONE tz) AS day_end,
       energy_kwh,
       reading_count,
       (extract(epoch FROM ((local_date + 1)::timestamp AT TIME ZONE tz)
                          - (local_date::timestamp AT TIME ZONE tz)) / 3600)::double precision
           AS hours{p_outer}
FROM (
    SELECT device_id,
           tz,
           (bucket AT TIME ZONE tz)::date AS local_date,
           sum(energy_kwh) AS energy_kwh,
           sum(reading_count)::bigint AS reading_count{p_sum}
    FROM readings_15m
    GROUP BY device_id, tz, (bucket AT TIME ZONE tz)::date
) AS days
"""

TIMESCALE_CAGGS = (
    """
    CREATE MATERIALIZED VIEW readings_15m
    WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
    SELECT device_id,
           time_bucket(INTERVAL '15 minutes', ts) AS bucket,
           sum(energy_kwh) AS energy_kwh,
           count(*) AS reading_count,
           avg(power_kw) AS power_mean_kw,
           min(power_kw) AS power_min_kw,
           max(power_kw) AS power_max_kw,
           max(tz) AS tz{p_sum}
    FROM readings
    GROUP BY device_id, time_bucket(INTERVAL '15 minutes', ts)
    WITH NO DATA
    """,
    """
    CREATE MATERIALIZED VIEW readings_hourly_utc
    WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
    SELECT device_id,
           time_bucket(INTERVAL '1 hour', bucket) AS bucket,
           sum(energy_kwh) AS energy_kwh,
           sum(reading_count)::bigint AS reading_count,
           sum(power_mean_kw * reading_count) / sum(reading_count)::double precision
               AS power_mean_kw,
           min(power_min_kw) AS power_min_kw,
           max(power_max_kw) AS power_max_kw{p_sum}
    FROM readings_15m
    GROUP BY device_id, time_bucket(INTERVAL '1 hour', bucket)
    WITH NO DATA
    """,
    """
    CREATE MATERIALIZED VIEW fleet_hourly
    WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
    SELECT time_bucket(INTERVAL '1 hour', bucket) AS bucket,
           sum(energy_kwh) AS energy_kwh,
           sum(reading_count)::bigint AS reading_count,
           count(*) AS devices{p_sum}
    FROM readings_hourly_utc
    GROUP BY time_bucket(INTERVAL '1 hour', bucket)
    WITH NO DATA
    """,
)

# 0003's function (see its comments on locking), with {p_*} slots for production.
REFRESH_FUNCTION = """
CREATE OR REPLACE FUNCTION wattstream_refresh_rollups(p_device text[], p_bucket timestamptz[])
RETURNS void LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT AS $fn$
DECLARE
    h_device text[];
    h_bucket timestamptz[];
    f_bucket timestamptz[];
BEGIN
    -- 1. readings_15m: lock the groups (creating missing ones), recompute from readings.
    INSERT INTO readings_15m (device_id, bucket)
    SELECT k.d, k.b FROM unnest(p_device, p_bucket) AS k(d, b) ORDER BY k.d, k.b
    ON CONFLICT (device_id, bucket) DO NOTHING;
    PERFORM 1 FROM readings_15m AS t JOIN unnest(p_device, p_bucket) AS k(d, b)
        ON t.device_id = k.d AND t.bucket = k.b
    ORDER BY t.device_id, t.bucket FOR UPDATE OF t;
    UPDATE readings_15m AS t
    SET energy_kwh = s.energy_kwh, reading_count = s.reading_count,
        power_mean_kw = s.power_mean_kw, power_min_kw = s.power_min_kw,
        power_max_kw = s.power_max_kw, tz = s.tz{p_set}
    FROM unnest(p_device, p_bucket) AS k(d, b)
    CROSS JOIN LATERAL (
        SELECT sum(r.energy_kwh) AS energy_kwh, count(*) AS reading_count,
               avg(r.power_kw) AS power_mean_kw, min(r.power_kw) AS power_min_kw,
               max(r.power_kw) AS power_max_kw, max(r.tz) AS tz{p_sum_r}
        FROM readings AS r
        WHERE r.device_id = k.d AND r.ts >= k.b AND r.ts < k.b + INTERVAL '15 minutes'
    ) AS s
    WHERE t.device_id = k.d AND t.bucket = k.b;
    DELETE FROM readings_15m AS t USING unnest(p_device, p_bucket) AS k(d, b)
    WHERE t.device_id = k.d AND t.bucket = k.b AND t.reading_count = 0;

    -- 2. readings_hourly_utc: the hours of those groups, from readings_15m.
    SELECT array_agg(x.d ORDER BY x.d, x.h), array_agg(x.h ORDER BY x.d, x.h)
    INTO h_device, h_bucket
    FROM (SELECT DISTINCT k.d, date_bin(INTERVAL '1 hour', k.b, TIMESTAMPTZ '2000-01-03 00:00:00+00') AS h
          FROM unnest(p_device, p_bucket) AS k(d, b)) AS x;
    INSERT INTO readings_hourly_utc (device_id, bucket)
    SELECT k.d, k.h FROM unnest(h_device, h_bucket) AS k(d, h) ORDER BY k.d, k.h
    ON CONFLICT (device_id, bucket) DO NOTHING;
    PERFORM 1 FROM readings_hourly_utc AS t JOIN unnest(h_device, h_bucket) AS k(d, h)
        ON t.device_id = k.d AND t.bucket = k.h
    ORDER BY t.device_id, t.bucket FOR UPDATE OF t;
    UPDATE readings_hourly_utc AS t
    SET energy_kwh = s.energy_kwh, reading_count = s.reading_count,
        power_mean_kw = s.power_mean_kw, power_min_kw = s.power_min_kw,
        power_max_kw = s.power_max_kw{p_set}
    FROM unnest(h_device, h_bucket) AS k(d, h)
    CROSS JOIN LATERAL (
        SELECT sum(q.energy_kwh) AS energy_kwh,
               coalesce(sum(q.reading_count), 0)::bigint AS reading_count,
               sum(q.power_mean_kw * q.reading_count) / sum(q.reading_count)::double precision
                   AS power_mean_kw,
               min(q.power_min_kw) AS power_min_kw, max(q.power_max_kw) AS power_max_kw{p_sum_q}
        FROM readings_15m AS q
        WHERE q.device_id = k.d AND q.bucket >= k.h AND q.bucket < k.h + INTERVAL '1 hour'
    ) AS s
    WHERE t.device_id = k.d AND t.bucket = k.h;
    DELETE FROM readings_hourly_utc AS t USING unnest(h_device, h_bucket) AS k(d, h)
    WHERE t.device_id = k.d AND t.bucket = k.h AND t.reading_count = 0;

    -- 3. fleet_hourly: those hours over all devices, from readings_hourly_utc.
    SELECT array_agg(DISTINCT h ORDER BY h) INTO f_bucket FROM unnest(h_bucket) AS h;
    INSERT INTO fleet_hourly (bucket)
    SELECT h FROM unnest(f_bucket) AS h ORDER BY h
    ON CONFLICT (bucket) DO NOTHING;
    PERFORM 1 FROM fleet_hourly AS t WHERE t.bucket = ANY (f_bucket)
    ORDER BY t.bucket FOR UPDATE OF t;
    UPDATE fleet_hourly AS t
    SET energy_kwh = s.energy_kwh, reading_count = s.reading_count, devices = s.devices{p_set}
    FROM unnest(f_bucket) AS h
    CROSS JOIN LATERAL (
        SELECT sum(q.energy_kwh) AS energy_kwh,
               coalesce(sum(q.reading_count), 0)::bigint AS reading_count,
               count(*) AS devices{p_sum_q}
        FROM readings_hourly_utc AS q
        WHERE q.bucket = h
    ) AS s
    WHERE t.bucket = h;
    DELETE FROM fleet_hourly AS t WHERE t.bucket = ANY (f_bucket) AND t.devices = 0;
END
$fn$
"""


def _slots(production: bool) -> dict[str, str]:
    if not production:
        return dict.fromkeys(("p_outer", "p_sum", "p_set", "p_sum_r", "p_sum_q"), "")
    return {
        "p_outer": ",\n       production_units",
        "p_sum": ",\n           sum(production_units) AS production_units",
        "p_set": ", production_units = s.production_units",
        "p_sum_r": ", sum(r.production_units) AS production_units",
        "p_sum_q": ", sum(q.production_units) AS production_units",
    }


def _mode() -> str | None:
    bind = op.get_bind()
    return bind.exec_driver_sql("SELECT value FROM storage_info WHERE key = 'mode'").scalar()


def _rebuild_timescaledb(production: bool) -> None:
    slots = _slots(production)
    # The settle job (0005) refreshes these aggregates every 30 s: dropping one under a running
    # refresh fails ("tuple concurrently deleted"). The lock waits for a running refresh and
    # holds the next ones off until this transaction commits.
    op.execute("LOCK TABLE readings IN ACCESS EXCLUSIVE MODE")
    op.execute("DROP VIEW IF EXISTS daily_local")
    for view in reversed(ROLLUP_TABLES):
        op.execute(f"DROP MATERIALIZED VIEW IF EXISTS {view}")
    for statement in TIMESCALE_CAGGS:
        op.execute(statement.format(**slots))
    op.execute(DAILY_LOCAL.format(**slots))


def _warn_if_retention() -> None:
    retention = (
        op.get_bind()
        .exec_driver_sql("SELECT value FROM storage_info WHERE key = 'retention'")
        .scalar()
    )
    if retention not in (None, "off"):
        log.warning(
            "retention is %s: the rebuilt continuous aggregates hold no buckets of readings"
            " chunks it already dropped",
            retention,
        )


def upgrade() -> None:
    for table, comment in COLUMN_COMMENTS.items():
        op.execute(f"ALTER TABLE {table} ADD COLUMN production_units double precision")
        op.execute(f"COMMENT ON COLUMN {table}.production_units IS '{comment}'")
    if _mode() == "timescaledb":
        _warn_if_retention()
        _rebuild_timescaledb(production=True)
        return
    for table in ROLLUP_TABLES:
        op.execute(f"ALTER TABLE {table} ADD COLUMN production_units double precision")
    op.execute(REFRESH_FUNCTION.format(**_slots(production=True)))
    op.execute("DROP VIEW daily_local")
    op.execute(DAILY_LOCAL.format(**_slots(production=True)))


def downgrade() -> None:
    if _mode() == "timescaledb":
        _rebuild_timescaledb(production=False)
    else:
        op.execute("DROP VIEW daily_local")
        op.execute(REFRESH_FUNCTION.format(**_slots(production=False)))
        for table in ROLLUP_TABLES:
            op.execute(f"ALTER TABLE {table} DROP COLUMN production_units")
        op.execute(DAILY_LOCAL.format(**_slots(production=False)))
    for table in COLUMN_COMMENTS:
        op.execute(f"ALTER TABLE {table} DROP COLUMN production_units")
