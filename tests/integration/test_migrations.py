"""Migrations on the real PostgreSQL: up from empty, down to empty, up again, no drift.

Each test that takes ``storage_database`` runs once per storage mode: plain PostgreSQL here, and
TimescaleDB on ``$WATTSTREAM_TEST_TIMESCALEDB_URL`` or through testcontainers where a Docker
engine answers (skipped with the reason elsewhere).
"""

from __future__ import annotations

import ast
import asyncio
import json
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import CheckConstraint, Connection, Table, inspect, pool
from sqlalchemy.ext.asyncio import create_async_engine

from schema import migrations, storage
from schema.tables import metadata
from tests.conftest import Services
from tests.fixtures.rollups import settle_rollups
from wattstream import migrate

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)


async def objects(url: str) -> dict[str, set[str]]:
    """The project's objects in schema public, by kind."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            r"""
            SELECT CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table'
                                  WHEN 'v' THEN 'view' WHEN 'm' THEN 'view' END AS kind,
                   c.relname AS name
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')
              AND c.relname <> 'alembic_version'
            UNION ALL
            SELECT 'function', p.proname FROM pg_proc p
            JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = 'public' AND p.proname LIKE 'wattstream%'
            UNION ALL
            SELECT 'trigger', t.tgname FROM pg_trigger t
            JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND NOT t.tgisinternal
              AND t.tgname NOT LIKE 'ts\_%'  -- TimescaleDB's own (insert blocker, invalidation)
            """
        )
    finally:
        await conn.close()
    found: dict[str, set[str]] = {
        "table": set(),
        "view": set(),
        "function": set(),
        "trigger": set(),
    }
    for row in rows:
        found[row["kind"]].add(row["name"])
    return found


def same_mode(mode: str) -> storage.StorageOptions:
    """Options that migrate again in the storage mode a database has."""
    return storage.StorageOptions(mode="timescaledb" if mode == "timescaledb" else "postgresql")


async def mode_of(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        value: str = await conn.fetchval("SELECT value FROM storage_info WHERE key = 'mode'")
    finally:
        await conn.close()
    return value


def shape(table: Table) -> dict[str, object]:
    """What autogenerate does not compare: column order, primary key, check constraints."""
    return {
        "columns": [c.name for c in table.columns],
        "primary_key": [c.name for c in table.primary_key.columns],
        "checks": sorted(str(c.name) for c in table.constraints if isinstance(c, CheckConstraint)),
    }


async def drift(url: str) -> list[object]:
    """Every difference between the migrated database and :mod:`schema.tables`."""
    engine = create_async_engine(migrate.alembic_url(url), poolclass=pool.NullPool)

    def compare(connection: Connection) -> list[object]:
        context = MigrationContext.configure(
            connection,
            opts={
                "include_object": storage.include_object,
                "compare_type": True,
                "compare_server_default": True,
            },
        )
        found: list[object] = list(compare_metadata(context, metadata))
        inspector = inspect(connection)
        for name, table in metadata.tables.items():
            want = shape(table)
            got = {
                "columns": [c["name"] for c in inspector.get_columns(name)],
                "primary_key": inspector.get_pk_constraint(name)["constrained_columns"],
                "checks": sorted(str(c["name"]) for c in inspector.get_check_constraints(name)),
            }
            found += [(name, key, got[key], want[key]) for key in want if got[key] != want[key]]
        return found

    try:
        async with engine.connect() as connection:
            return await connection.run_sync(compare)
    finally:
        await engine.dispose()


def expected_objects(mode: str) -> dict[str, set[str]]:
    tables = set(metadata.tables)
    if mode == "timescaledb":
        # Continuous aggregates are (materialized) views; no triggers; the settle procedure.
        return {
            "table": tables,
            "view": {*storage.ROLLUPS, "forecast_horizons"},
            "function": {"wattstream_settle_rollups", "wattstream_quantiles_ordered"},
            "trigger": set(),
        }
    return {
        "table": tables | {"readings_15m", "readings_hourly_utc", "fleet_hourly"},
        "view": {"daily_local", "forecast_horizons"},
        "function": {
            "wattstream_quantiles_ordered",
            "wattstream_refresh_rollups",
            "wattstream_readings_rollup",
            "wattstream_readings_truncate",
        },
        "trigger": {
            "readings_rollup_insert",
            "readings_rollup_update",
            "readings_rollup_delete",
            "readings_rollup_truncate",
        },
    }


def test_revisions_import_no_live_module() -> None:
    """Migrations are frozen: a revision carries what it needs, so editing schema/ (tables,
    storage, ...) never changes what an old revision does."""
    versions = Path(migrations.__file__).parent / "versions"
    revisions = sorted(versions.glob("*.py"))
    assert len(revisions) >= 4
    for path in revisions:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""] if node.level == 0 else ["(relative)"]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            for module in modules:
                root = module.split(".")[0]
                assert root in {"__future__", "alembic", "sqlalchemy", *sys.stdlib_module_names}, (
                    f"{path.name} imports {module}"
                )


async def test_upgrade_downgrade_upgrade_without_drift(storage_database: str) -> None:
    url = storage_database
    mode = await mode_of(url)
    assert await objects(url) == expected_objects(mode)
    assert await drift(url) == []

    await asyncio.to_thread(migrate.downgrade, url, "base")
    assert await objects(url) == {
        "table": set(),
        "view": set(),
        "function": set(),
        "trigger": set(),
    }

    options = same_mode(mode)
    await asyncio.to_thread(migrate.upgrade, url, "head", options)
    assert await mode_of(url) == mode
    assert await objects(url) == expected_objects(mode)
    assert await drift(url) == []


async def test_readings_stored_before_the_storage_migration_are_rolled_up(
    storage_database: str,
) -> None:
    url = storage_database
    mode = await mode_of(url)
    await asyncio.to_thread(migrate.downgrade, url, "0002")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO readings (device_id, ts, seq, tz, interval_s, energy_kwh, power_kw)"
            " SELECT 'd' || d, $1::timestamptz + m * INTERVAL '1 minute', m, 'Asia/Kathmandu',"
            " 60, 0.25, 1 FROM generate_series(0, 1) d, generate_series(0, 119) m",
            T0,
        )
        options = same_mode(mode)
        await asyncio.to_thread(migrate.upgrade, url, "head", options)
        fleet = await conn.fetch(
            "SELECT bucket, energy_kwh, reading_count, devices FROM fleet_hourly ORDER BY bucket"
        )
        assert [tuple(r) for r in fleet] == [
            (T0, 30.0, 120, 2),
            (T0 + timedelta(hours=1), 30.0, 120, 2),
        ]
        assert await conn.fetchval("SELECT count(*) FROM readings_15m") == 2 * 8
        days = await conn.fetch(
            "SELECT local_date, energy_kwh FROM daily_local WHERE device_id = 'd0'"
        )
        assert [tuple(r) for r in days] == [(date(2026, 3, 29), 30.0)]
    finally:
        await conn.close()


async def test_0010_keeps_alerts_across_upgrade_and_downgrade(database: str) -> None:
    """Alerts of 0009 gain who resolved them; a downgrade keeps every alert resolved as it was
    and drops only who, why and the labels."""
    conn = await asyncpg.connect(database)
    try:
        await asyncio.to_thread(migrate.downgrade, database, "0009")
        await conn.execute(
            "INSERT INTO alerts (device_id, hour_start, kind, severity, message, alert_id,"
            " last_hour_start, hours, resolved_hour, resolved_at)"
            " VALUES ('d1', $1, 'stuck', 'warning', 'm', 'd1.stuck.1', $1, 1, $2, $2)",
            T0,
            T0 + timedelta(hours=1),
        )
        await asyncio.to_thread(migrate.upgrade, database, "0010")
        row = await conn.fetchrow("SELECT resolved_by, resolution_note, resolved_hour FROM alerts")
        assert tuple(row) == (None, None, T0 + timedelta(hours=1))
        await conn.execute("UPDATE alerts SET resolved_by = 'ana', resolution_note = 'fixed'")
        await conn.execute(
            'INSERT INTO anomaly_labels (label_id, device_id, anomaly, start, "end",'
            " first_seq, nominal_kw, source, command_id)"
            " VALUES ('c:d1', 'd1', 'stuck', $1, $2, 0, 1.0, 'schedule', 'c')",
            T0,
            T0 + timedelta(hours=1),
        )
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                'INSERT INTO anomaly_labels (label_id, device_id, anomaly, start, "end",'
                " first_seq, nominal_kw, source, command_id)"
                " VALUES ('x', 'd1', 'meteor', $1, $1, 0, 1.0, 'schedule', 'c')",
                T0,
            )
        await asyncio.to_thread(migrate.downgrade, database, "0009")
        columns = {
            r["column_name"]
            for r in await conn.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'alerts'"
            )
        }
        assert not {"resolved_by", "resolution_note"} & columns
        assert await conn.fetchval("SELECT to_regclass('anomaly_labels')") is None
        row = await conn.fetchrow("SELECT alert_id, resolved_hour FROM alerts")
        assert tuple(row) == ("d1.stuck.1", T0 + timedelta(hours=1))
    finally:
        await conn.close()


async def test_rollups_have_the_same_columns_in_every_mode(storage_database: str) -> None:
    conn = await asyncpg.connect(storage_database)
    try:
        for relation, columns in storage.ROLLUP_COLUMNS.items():
            rows = await conn.fetch(
                "SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute"
                " WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped"
                " ORDER BY attnum",
                relation,
            )
            assert tuple((r["attname"], r["type"]) for r in rows) == columns, relation
    finally:
        await conn.close()


async def test_auto_mode_records_what_the_server_offers(database: str) -> None:
    conn = await asyncpg.connect(database)
    try:
        preload = await conn.fetchval("SHOW shared_preload_libraries")
        installed = await conn.fetchval(
            "SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'"
        )
    finally:
        await conn.close()
    usable = installed > 0 or "timescaledb" in preload
    assert await mode_of(database) == ("timescaledb" if usable else "postgresql")


async def test_asking_for_timescaledb_without_it_fails_clearly_and_leaves_nothing(
    services: Services,
) -> None:
    admin = await asyncpg.connect(services.admin_database_url)
    try:
        if await admin.fetchval(
            "SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'"
        ):
            pytest.skip("this server has TimescaleDB")
        await admin.execute('CREATE DATABASE "wattstream_test_forced_tsdb"')
    finally:
        await admin.close()
    url = services.database_url.rsplit("/", 1)[0] + "/wattstream_test_forced_tsdb"
    try:
        # The revision's own StorageError (a revision imports nothing of schema).
        with pytest.raises(
            RuntimeError,
            match="storage mode 'timescaledb' was asked for, but the extension is not installed",
        ):
            await asyncio.to_thread(
                migrate.upgrade, url, "head", storage.StorageOptions(mode="timescaledb")
            )
        # One transaction: nothing of 0001/0002 is left behind either.
        assert (await objects(url))["table"] == set()
    finally:
        admin = await asyncpg.connect(services.admin_database_url)
        try:
            await admin.execute(
                'DROP DATABASE IF EXISTS "wattstream_test_forced_tsdb" WITH (FORCE)'
            )
        finally:
            await admin.close()


async def test_keys_and_checks_hold(storage_database: str) -> None:
    conn = await asyncpg.connect(storage_database)
    try:
        await conn.execute(
            "INSERT INTO models (model_id, active) VALUES ('m1', true), ('m2', false)"
        )
        with pytest.raises(asyncpg.UniqueViolationError, match="uq_models_active"):
            await conn.execute("INSERT INTO models (model_id, active) VALUES ('m3', true)")
        # Switching the active model in one transaction is fine.
        async with conn.transaction():
            await conn.execute("UPDATE models SET active = false WHERE model_id = 'm1'")
            await conn.execute(
                "UPDATE models SET active = true, activated_at = now() WHERE model_id = 'm2'"
            )
        assert await conn.fetchval("SELECT model_id FROM models WHERE active") == "m2"

        # The trajectories' check (PL/pgSQL since 0012): P10 <= P50 <= P90 at every step.
        ordered = "SELECT wattstream_quantiles_ordered($1::float8[], $2::float8[], $3::float8[])"
        assert await conn.fetchval(ordered, [1, 2, 3], [1, 2.5, 3], [1, 3, 3]) is True
        assert await conn.fetchval(ordered, [1, 2.6, 3], [1, 2.5, 3], [1, 3, 3]) is False
        assert await conn.fetchval(ordered, [1, 2, 3], [1, 2.5, 3.5], [1, 3, 3]) is False
        assert await conn.fetchval(ordered, [], [], []) is True

        with pytest.raises(asyncpg.CheckViolationError, match="ck_device_status_status"):
            await conn.execute("INSERT INTO device_status VALUES ('d', 'sleeping', now(), NULL)")
        with pytest.raises(asyncpg.CheckViolationError, match="ck_alerts_severity"):
            await conn.execute(
                "INSERT INTO alerts (device_id, hour_start, kind, severity, message, alert_id,"
                " last_hour_start) VALUES ('d', $1, 'residual', 'info', 'x', 'a', $1)",
                T0,
            )
        with pytest.raises(asyncpg.CheckViolationError, match="ck_alerts_kind"):
            await conn.execute(
                "INSERT INTO alerts (device_id, hour_start, kind, severity, message, alert_id,"
                " last_hour_start) VALUES ('d', $1, 'gremlins', 'warning', 'x', 'a', $1)",
                T0,
            )
        with pytest.raises(asyncpg.CheckViolationError, match="ck_health_status"):
            await conn.execute(
                "INSERT INTO health (device_id, hour_start, status, completeness_24h)"
                " VALUES ('d', $1, 'purple', 1)",
                T0,
            )

        # A restated closed hour: the key makes the write an upsert, the revision counts.
        upsert = """
            INSERT INTO hourly (device_id, hour_start, hour_end, tz, local_date, local_hour,
                energy_kwh, reading_count, expected_count, completeness)
            VALUES ('d', $1::timestamptz, $1::timestamptz + INTERVAL '1 hour', 'Europe/Berlin',
                '2026-03-29', 1, $2, 60, 60, 1)
            ON CONFLICT (device_id, hour_start) DO UPDATE
            SET energy_kwh = EXCLUDED.energy_kwh, revision = hourly.revision + 1
        """
        await conn.execute(upsert, T0, 1.0)
        await conn.execute(upsert, T0, 1.5)
        row = await conn.fetchrow("SELECT energy_kwh, revision FROM hourly")
        assert (row["energy_kwh"], row["revision"]) == (1.5, 1)
    finally:
        await conn.close()


async def test_cli_migrates_in_the_mode_asked_for(services: Services) -> None:
    name = "wattstream_test_cli_mode"
    admin = await asyncpg.connect(services.admin_database_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = services.database_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "wattstream",
            "migrate",
            "--database-url",
            url,
            "--storage-mode",
            "postgresql",
            "--compress-after",
            "3 days",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        assert process.returncode == 0, output.decode()
        assert await mode_of(url) == "postgresql"
    finally:
        admin = await asyncpg.connect(services.admin_database_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.mark.timescaledb
async def test_timescaledb_policies_follow_the_migrate_options(storage_database: str) -> None:
    url = storage_database
    if await mode_of(url) != "timescaledb":
        pytest.skip("policies exist in TimescaleDB mode only")

    async def jobs() -> dict[tuple[str, str], dict[str, object]]:
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch(
                "SELECT proc_name, hypertable_name, config::text AS config"
                " FROM timescaledb_information.jobs WHERE proc_schema = '_timescaledb_functions'"
                " AND hypertable_name IS NOT NULL"
            )
            views = {
                r["materialization_hypertable_name"]: r["view_name"]
                for r in await conn.fetch(
                    "SELECT view_name, materialization_hypertable_name"
                    " FROM timescaledb_information.continuous_aggregates"
                )
            }
        finally:
            await conn.close()
        return {
            (r["proc_name"], views.get(r["hypertable_name"], r["hypertable_name"])): json.loads(
                r["config"]
            )
            for r in rows
        }

    found = await jobs()
    # The fixture migrates with compression off; the rollups have no refresh policies (0005).
    assert found == {}
    conn = await asyncpg.connect(url)
    try:
        settle = await conn.fetch(
            "SELECT schedule_interval FROM timescaledb_information.jobs"
            " WHERE proc_name = 'wattstream_settle_rollups'"
        )
    finally:
        await conn.close()
    assert [r["schedule_interval"] for r in settle] == [timedelta(seconds=30)]

    options = storage.StorageOptions(
        mode="timescaledb", compress_after=timedelta(days=3), retention=timedelta(days=400)
    )
    await asyncio.to_thread(migrate.upgrade, url, "head", options)
    found = await jobs()
    assert found["policy_compression", "readings"]["compress_after"] == "3 days"
    assert found["policy_retention", "readings"]["drop_after"] == "400 days"
    assert {name for name, _ in found} == {"policy_compression", "policy_retention"}
    conn = await asyncpg.connect(url)
    try:
        recorded = dict(await conn.fetch("SELECT key, value FROM storage_info"))
    finally:
        await conn.close()
    assert recorded["compress_after"] == "3 days"
    assert "refresh_lookback" not in recorded


async def test_downgrade_and_upgrade_with_compressed_chunks(storage_database: str) -> None:
    """Down to 0002 and back with compressed chunks present: no reading lost, rollups whole."""
    url = storage_database
    mode = await mode_of(url)
    old = T0 - timedelta(days=400)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO readings (device_id, ts, seq, tz, interval_s, energy_kwh, power_kw)"
            " SELECT 'd' || d, $1::timestamptz + m * INTERVAL '5 minutes', m, 'UTC', 300, 0.25,"
            " 3 FROM generate_series(0, 2) d, generate_series(0, 3 * 288 - 1) m",
            old,
        )
        if mode == "timescaledb":
            compressed = await conn.fetchval(
                "SELECT count(*) FROM (SELECT compress_chunk(c) FROM show_chunks('readings') c)"
                " AS x"
            )
            assert compressed == 3
        for revision in ("0004", "0002"):
            await asyncio.to_thread(migrate.downgrade, url, revision)
        assert await conn.fetchval("SELECT count(*) FROM readings") == 3 * 3 * 288
        if mode == "timescaledb":
            assert not await conn.fetchval(
                "SELECT bool_or(is_compressed) FROM timescaledb_information.chunks"
                " WHERE hypertable_name = 'readings'"
            )
        options = same_mode(mode)
        await asyncio.to_thread(migrate.upgrade, url, "head", options)
        assert await objects(url) == expected_objects(mode)
        # The database's settle job may have refreshed the aggregates built on aggregates
        # while the upgrade was refilling the ones below (partial sums until its next run):
        # settle them in order now, as the job would within its interval.
        await settle_rollups(conn)
        fleet = await conn.fetch(
            "SELECT sum(energy_kwh) AS kwh, sum(reading_count) AS n, max(devices) AS devices"
            " FROM fleet_hourly"
        )
        assert tuple(fleet[0]) == (3 * 3 * 288 * 0.25, 3 * 3 * 288, 3)
        await asyncio.to_thread(migrate.downgrade, url, "base")
        assert (await objects(url))["table"] == set()
    finally:
        await conn.close()


def test_alembic_url_refuses_other_databases() -> None:
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        migrate.alembic_url("mysql://u@h/db")


async def test_forecast_rows_move_to_trajectories_and_back(storage_database: str) -> None:
    """0011 turns the per-target rows of 0007 into one row per trajectory (the view reads the
    same rows back); its downgrade restores them."""
    url = storage_database
    mode = await mode_of(url)
    await asyncio.to_thread(migrate.downgrade, url, "0010")
    hour = timedelta(hours=1)
    rows = [
        ("d1", T0, T0 + k * hour, T0 + (k + 1) * hour, "24h", "m", k + 1, date(2026, 3, 29),
         k, 1.0 + k, 2.0 + k, 3.0 + k, T0)
        for k in range(24)
    ] + [
        ("d1", T0, T0 + timedelta(days=k), T0 + timedelta(days=k + 1), "7d", "m", k + 1,
         date(2026, 3, 29) + timedelta(days=k), None, 10.0, 20.0 + k, 30.0 + k, T0)
        for k in range(7)
    ]  # fmt: skip
    read_back = "SELECT * FROM forecast_horizons ORDER BY horizon, step"
    conn = await asyncpg.connect(url)
    try:
        await conn.executemany(
            "INSERT INTO forecast_horizons VALUES"
            " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            rows,
        )
        options = same_mode(mode)
        await asyncio.to_thread(migrate.upgrade, url, "head", options)
        assert await conn.fetchval("SELECT count(*) FROM forecast_trajectories") == 2
        assert [tuple(r) for r in await conn.fetch(read_back)] == rows
        await asyncio.to_thread(migrate.downgrade, url, "0010")
        assert [tuple(r) for r in await conn.fetch(read_back)] == rows
        await asyncio.to_thread(migrate.upgrade, url, "head", options)
    finally:
        await conn.close()
