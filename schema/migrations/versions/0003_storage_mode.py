"""Storage mode: hypertables + continuous aggregates, or trigger-maintained rollup tables.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24

The mode is detected here (see :func:`detect_mode`) and recorded in ``storage_info``. Both modes create the same four rollup relations with the same columns:

* ``readings_15m``        per device and 15-minute UTC bucket, from ``readings``
* ``readings_hourly_utc`` per device and UTC hour, from ``readings_15m``
* ``fleet_hourly``        per UTC hour over all devices, from ``readings_hourly_utc``
* ``daily_local``         per device and LOCAL date: a view over ``readings_15m``

``daily_local`` is a view in both modes because a continuous aggregate can only bucket by one
constant time zone, and each device has its own. It is exact: every UTC offset in use is a
multiple of 15 minutes (Kathmandu +05:45, Chatham +12:45, Lord Howe's 30-minute DST), so a
local midnight always falls on a 15-minute UTC bucket boundary and a bucket lies wholly inside
one local day. Each bucket carries its readings' zone (``tz``, the greatest if a device changed
zone inside one bucket), and a local day lasts 23, 24 or 25 hours (23.5/24.5 at Lord Howe):
``hours`` is measured between the day's first instant and the next day's.

Plain PostgreSQL keeps the rollup tables current with statement-level triggers on ``readings``
whose transition tables name the touched (device, 15-minute bucket) groups; only those groups,
their hours and their fleet hours are recomputed (see ``wattstream_refresh_rollups``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Protocol

from alembic import op
from sqlalchemy import Connection, text

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- frozen helpers
# A revision imports no live module: what this one needs from the storage layer is copied here
# as it was when the revision was written, so later edits of schema/storage.py cannot change
# what it does. wattstream migrate (through env.py) may pass its storage options in.
class StorageOptions(Protocol):
    """What this revision reads of the options env.py passes in (``storage_options``)."""

    @property
    def mode(self) -> str: ...
    @property
    def compress_after(self) -> timedelta | None: ...
    @property
    def retention(self) -> timedelta | None: ...


def _lookback(options: StorageOptions) -> timedelta:
    # Later options have no lookback (revision 0005 replaced the refresh policies); this
    # revision still sets the policies as it did when it was written, and 0005 removes them.
    value = getattr(options, "refresh_lookback", None)
    return value if isinstance(value, timedelta) else _DefaultOptions.refresh_lookback


class _DefaultOptions:
    """The options when none are passed in (Alembic run by hand without ``-x``)."""

    mode = "auto"
    compress_after: timedelta | None = timedelta(days=7)
    retention: timedelta | None = None
    refresh_lookback = timedelta(days=30)


class StorageError(RuntimeError):
    """The database cannot provide the storage mode asked for."""


CONTINUOUS_AGGREGATES = ("readings_15m", "readings_hourly_utc", "fleet_hourly")
HYPERTABLES = {  # table -> (time column, chunk interval)
    "readings": ("ts", "1 day"),
    "hourly": ("hour_start", "30 days"),
    "forecasts": ("hour_start", "30 days"),
    "health": ("hour_start", "30 days"),
}
# Per continuous aggregate: (end_offset, schedule_interval). Buckets newer than end_offset are
# served by real-time aggregation, so the policies only need to settle the past.
_REFRESH = {
    "readings_15m": ("15 minutes", "5 minutes"),
    "readings_hourly_utc": ("1 hour", "15 minutes"),
    "fleet_hourly": ("1 hour", "15 minutes"),
}


def sql_interval(value: timedelta) -> str:
    """A timedelta as a PostgreSQL interval literal in the largest whole unit."""
    seconds = int(value.total_seconds())
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds % size == 0:
            return f"INTERVAL '{seconds // size} {unit}'"
    return f"INTERVAL '{seconds} seconds'"


def _describe(value: timedelta | None) -> str:
    return "off" if value is None else sql_interval(value).split("'")[1]


def detect_mode(bind: Connection, choice: str) -> str:
    """The mode for this database: TimescaleDB when asked for or (``auto``) when usable."""
    installed = bind.execute(
        text("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
    ).scalar()
    available = bind.execute(
        text("SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'")
    ).scalar()
    preload = str(bind.execute(text("SHOW shared_preload_libraries")).scalar() or "")
    usable = installed is not None or (available is not None and "timescaledb" in preload)
    if choice == "postgresql":
        return "postgresql"
    if usable:
        return "timescaledb"
    if choice == "timescaledb":
        reason = (
            "the extension is not installed on this server"
            if available is None
            else "the server does not preload it (shared_preload_libraries)"
        )
        raise StorageError(f"storage mode 'timescaledb' was asked for, but {reason}")
    if available is not None:
        log.warning("timescaledb is installed but not preloaded; using plain PostgreSQL")
    return "postgresql"


def recorded_mode(bind: Connection) -> str | None:
    """The mode recorded by this revision, or ``None`` before it ran."""
    exists = bind.execute(text("SELECT to_regclass('storage_info') IS NOT NULL")).scalar()
    if not exists:
        return None
    value = bind.execute(text("SELECT value FROM storage_info WHERE key = 'mode'")).scalar()
    return value if value in ("timescaledb", "postgresql") else None


def record(bind: Connection, values: Mapping[str, str]) -> None:
    for key, value in values.items():
        bind.execute(
            text(
                "INSERT INTO storage_info (key, value) VALUES (:key, :value)"
                " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            ),
            {"key": key, "value": value},
        )


def policy_statements(options: StorageOptions) -> list[str]:
    """SQL that (re)sets every TimescaleDB policy to ``options``; idempotent."""
    lookback = sql_interval(_lookback(options))
    statements = [
        "SELECT remove_compression_policy('readings', if_exists => true)",
        "SELECT remove_retention_policy('readings', if_exists => true)",
    ]
    if options.compress_after is not None:
        statements.append(
            "SELECT add_compression_policy('readings', compress_after => "
            f"{sql_interval(options.compress_after)})"
        )
    if options.retention is not None:
        statements.append(
            f"SELECT add_retention_policy('readings', drop_after => "
            f"{sql_interval(options.retention)})"
        )
    for view, (end_offset, schedule) in _REFRESH.items():
        statements += [
            f"SELECT remove_continuous_aggregate_policy('{view}', if_exists => true)",
            f"SELECT add_continuous_aggregate_policy('{view}', start_offset => {lookback},"
            f" end_offset => INTERVAL '{end_offset}',"
            f" schedule_interval => INTERVAL '{schedule}')",
        ]
    return statements


def apply_policies(bind: Connection, options: StorageOptions) -> None:
    """Set the TimescaleDB policies to ``options`` and record them; nothing in plain mode."""
    if recorded_mode(bind) != "timescaledb":
        return
    for statement in policy_statements(options):
        bind.execute(text(statement))
    described = {
        "compress_after": _describe(options.compress_after),
        "retention": _describe(options.retention),
        "refresh_lookback": _describe(_lookback(options)),
    }
    record(bind, described)
    log.info("storage policies: %s", described)


# Buckets are aligned to TIMESTAMPTZ '2000-01-03 00:00:00+00' in both modes (time_bucket's
# default origin; any UTC midnight gives the same 15-minute and hourly grid).

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
           AS hours
FROM (
    SELECT device_id,
           tz,
           (bucket AT TIME ZONE tz)::date AS local_date,
           sum(energy_kwh) AS energy_kwh,
           sum(reading_count)::bigint AS reading_count
    FROM readings_15m
    GROUP BY device_id, tz, (bucket AT TIME ZONE tz)::date
) AS days
"""

# ----------------------------------------------------------------------------- TimescaleDB
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
           max(tz) AS tz
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
           max(power_max_kw) AS power_max_kw
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
           count(*) AS devices
    FROM readings_hourly_utc
    GROUP BY time_bucket(INTERVAL '1 hour', bucket)
    WITH NO DATA
    """,
)


def _upgrade_timescaledb(options: StorageOptions) -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    for table, (column, chunk) in HYPERTABLES.items():
        # The primary keys already index (device_id, time); no extra default time index.
        # if_not_exists: after a downgrade to 0002 the tables are still hypertables.
        op.execute(
            f"SELECT create_hypertable('{table}', by_range('{column}', INTERVAL '{chunk}'),"
            " create_default_indexes => false, migrate_data => true, if_not_exists => true)"
        )
    op.execute(
        "ALTER TABLE readings SET (timescaledb.compress,"
        " timescaledb.compress_segmentby = 'device_id', timescaledb.compress_orderby = 'ts DESC')"
    )
    for statement in TIMESCALE_CAGGS:
        op.execute(statement)
    op.execute(DAILY_LOCAL)
    bind = op.get_bind()
    version = bind.exec_driver_sql(
        "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
    ).scalar()
    record(bind, {"mode": "timescaledb", "timescaledb_version": str(version)})
    apply_policies(bind, options)


def _downgrade_timescaledb() -> None:
    op.execute("DROP VIEW IF EXISTS daily_local")
    for view in reversed(CONTINUOUS_AGGREGATES):
        op.execute(f"DROP MATERIALIZED VIEW IF EXISTS {view}")
    op.execute("SELECT remove_compression_policy('readings', if_exists => true)")
    op.execute("SELECT remove_retention_policy('readings', if_exists => true)")
    op.execute("SELECT decompress_chunk(c, if_compressed => true) FROM show_chunks('readings') c")
    op.execute("ALTER TABLE readings SET (timescaledb.compress = false)")
    # The tables stay hypertables (there is no way back); 0002/0001 drop them. The extension
    # stays too: it may have been there before (the image creates it in every database).


# ----------------------------------------------------------------------------- PostgreSQL
PLAIN_TABLES = (
    # fillfactor leaves room on each page so the frequent rewrites of a group are HOT updates.
    """
    CREATE TABLE readings_15m (
        device_id text NOT NULL,
        bucket timestamptz NOT NULL,
        energy_kwh double precision,
        reading_count bigint,
        power_mean_kw double precision,
        power_min_kw double precision,
        power_max_kw double precision,
        tz text,
        CONSTRAINT pk_readings_15m PRIMARY KEY (device_id, bucket)
    ) WITH (fillfactor = 80)
    """,
    # daily_local filters on the device and its local date: this index serves it.
    """
    CREATE INDEX ix_readings_15m_device_id_local_date
        ON readings_15m (device_id, ((bucket AT TIME ZONE tz)::date))
    """,
    """
    CREATE TABLE readings_hourly_utc (
        device_id text NOT NULL,
        bucket timestamptz NOT NULL,
        energy_kwh double precision,
        reading_count bigint,
        power_mean_kw double precision,
        power_min_kw double precision,
        power_max_kw double precision,
        CONSTRAINT pk_readings_hourly_utc PRIMARY KEY (device_id, bucket)
    ) WITH (fillfactor = 80)
    """,
    # fleet_hourly is recomputed from every device's row of one hour.
    "CREATE INDEX ix_readings_hourly_utc_bucket ON readings_hourly_utc (bucket)",
    """
    CREATE TABLE fleet_hourly (
        bucket timestamptz NOT NULL,
        energy_kwh double precision,
        reading_count bigint,
        devices bigint,
        CONSTRAINT pk_fleet_hourly PRIMARY KEY (bucket)
    ) WITH (fillfactor = 80)
    """,
)

# Recompute the given (device, 15-minute bucket) groups and everything built on them.
#
# Concurrency: two writers may touch the same group (always the same fleet hour). Each level
# first LOCKS its rows, creating missing ones, in key order (no deadlocks), and only then
# recomputes them in a new statement: under READ COMMITTED that statement's snapshot holds every
# transaction that held the lock before, so the last writer always sees all the data. Without
# the lock, two writers would each compute from a snapshot missing the other's rows, and the
# later upsert would overwrite the earlier one (a lost update).
REFRESH_FUNCTION = """
CREATE FUNCTION wattstream_refresh_rollups(p_device text[], p_bucket timestamptz[])
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
        power_max_kw = s.power_max_kw, tz = s.tz
    FROM unnest(p_device, p_bucket) AS k(d, b)
    CROSS JOIN LATERAL (
        SELECT sum(r.energy_kwh) AS energy_kwh, count(*) AS reading_count,
               avg(r.power_kw) AS power_mean_kw, min(r.power_kw) AS power_min_kw,
               max(r.power_kw) AS power_max_kw, max(r.tz) AS tz
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
        power_max_kw = s.power_max_kw
    FROM unnest(h_device, h_bucket) AS k(d, h)
    CROSS JOIN LATERAL (
        SELECT sum(q.energy_kwh) AS energy_kwh,
               coalesce(sum(q.reading_count), 0)::bigint AS reading_count,
               sum(q.power_mean_kw * q.reading_count) / sum(q.reading_count)::double precision
                   AS power_mean_kw,
               min(q.power_min_kw) AS power_min_kw, max(q.power_max_kw) AS power_max_kw
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
    SET energy_kwh = s.energy_kwh, reading_count = s.reading_count, devices = s.devices
    FROM unnest(f_bucket) AS h
    CROSS JOIN LATERAL (
        SELECT sum(q.energy_kwh) AS energy_kwh,
               coalesce(sum(q.reading_count), 0)::bigint AS reading_count,
               count(*) AS devices
        FROM readings_hourly_utc AS q
        WHERE q.bucket = h
    ) AS s
    WHERE t.bucket = h;
    DELETE FROM fleet_hourly AS t WHERE t.bucket = ANY (f_bucket) AND t.devices = 0;
END
$fn$
"""

# One function for the three statement-level triggers; each names only the transition tables
# its event has (PostgreSQL allows transition tables on single-event triggers only).
TRIGGER_FUNCTION = """
CREATE FUNCTION wattstream_readings_rollup() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
    d text[];
    b timestamptz[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(x.device_id ORDER BY x.device_id, x.bucket),
               array_agg(x.bucket ORDER BY x.device_id, x.bucket)
        INTO d, b
        FROM (SELECT DISTINCT device_id, date_bin(INTERVAL '15 minutes', ts, TIMESTAMPTZ '2000-01-03 00:00:00+00') AS bucket
              FROM new_rows) AS x;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(x.device_id ORDER BY x.device_id, x.bucket),
               array_agg(x.bucket ORDER BY x.device_id, x.bucket)
        INTO d, b
        FROM (SELECT DISTINCT device_id, date_bin(INTERVAL '15 minutes', ts, TIMESTAMPTZ '2000-01-03 00:00:00+00') AS bucket
              FROM old_rows) AS x;
    ELSE
        SELECT array_agg(x.device_id ORDER BY x.device_id, x.bucket),
               array_agg(x.bucket ORDER BY x.device_id, x.bucket)
        INTO d, b
        FROM (SELECT device_id, date_bin(INTERVAL '15 minutes', ts, TIMESTAMPTZ '2000-01-03 00:00:00+00') AS bucket
              FROM new_rows
              UNION
              SELECT device_id, date_bin(INTERVAL '15 minutes', ts, TIMESTAMPTZ '2000-01-03 00:00:00+00') AS bucket
              FROM old_rows) AS x;
    END IF;
    IF d IS NOT NULL THEN  -- e.g. every row of an INSERT ... ON CONFLICT DO NOTHING existed
        PERFORM wattstream_refresh_rollups(d, b);
    END IF;
    RETURN NULL;
END
$fn$
"""

TRUNCATE_FUNCTION = """
CREATE FUNCTION wattstream_readings_truncate() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
    TRUNCATE readings_15m, readings_hourly_utc, fleet_hourly;
    RETURN NULL;
END
$fn$
"""

PLAIN_TRIGGERS = (
    """
    CREATE TRIGGER readings_rollup_insert AFTER INSERT ON readings
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION wattstream_readings_rollup()
    """,
    """
    CREATE TRIGGER readings_rollup_update AFTER UPDATE ON readings
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION wattstream_readings_rollup()
    """,
    """
    CREATE TRIGGER readings_rollup_delete AFTER DELETE ON readings
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION wattstream_readings_rollup()
    """,
    """
    CREATE TRIGGER readings_rollup_truncate AFTER TRUNCATE ON readings
    FOR EACH STATEMENT EXECUTE FUNCTION wattstream_readings_truncate()
    """,
)


def _upgrade_postgresql() -> None:
    for statement in PLAIN_TABLES:
        op.execute(statement)
    op.execute(REFRESH_FUNCTION)
    op.execute(TRIGGER_FUNCTION)
    op.execute(TRUNCATE_FUNCTION)
    for statement in PLAIN_TRIGGERS:
        op.execute(statement)
    # Readings stored before this migration: roll them up once.
    op.execute(
        """
        SELECT wattstream_refresh_rollups(array_agg(device_id), array_agg(bucket))
        FROM (SELECT DISTINCT device_id, date_bin(INTERVAL '15 minutes', ts, TIMESTAMPTZ '2000-01-03 00:00:00+00') AS bucket
              FROM readings ORDER BY 1, 2) AS k
        HAVING count(*) > 0
        """
    )
    op.execute(DAILY_LOCAL)
    record(op.get_bind(), {"mode": "postgresql"})


def _downgrade_postgresql() -> None:
    op.execute("DROP VIEW IF EXISTS daily_local")
    for trigger in ("insert", "update", "delete", "truncate"):
        op.execute(f"DROP TRIGGER IF EXISTS readings_rollup_{trigger} ON readings")
    op.execute("DROP FUNCTION IF EXISTS wattstream_readings_truncate()")
    op.execute("DROP FUNCTION IF EXISTS wattstream_readings_rollup()")
    op.execute("DROP FUNCTION IF EXISTS wattstream_refresh_rollups(text[], timestamptz[])")
    op.execute("DROP TABLE IF EXISTS fleet_hourly, readings_hourly_utc, readings_15m")


# ----------------------------------------------------------------------------- entry points
def upgrade() -> None:
    options: StorageOptions = op.get_context().opts.get("storage_options") or _DefaultOptions()
    mode = detect_mode(op.get_bind(), options.mode)
    if mode == "timescaledb":
        _upgrade_timescaledb(options)
    else:
        _upgrade_postgresql()


def downgrade() -> None:
    if recorded_mode(op.get_bind()) == "timescaledb":
        _downgrade_timescaledb()
    else:
        _downgrade_postgresql()
    op.execute("DELETE FROM storage_info")
