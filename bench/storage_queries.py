"""Storage: query latency on the rollups, and the load rate through the sink's statement.

In a fresh database (migrated in the mode the server offers, dropped afterwards), loads
``--devices`` x ``--days`` of ``--interval-s`` readings, time-ordered across the fleet as the
stream delivers them, twice:

* baseline: a bare ``COPY`` of the same rows into an unindexed, trigger-less table;
* sink: COPY into a staging table, then ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``, in
  batches of ``--batch`` rows: the statements of stream/worker/sink.py, into ``readings`` with
  everything the storage mode adds (plain PostgreSQL: the rollup triggers; TimescaleDB: chunks,
  invalidation log).

With ``--timescaledb-admin-url`` (default: ``WATTSTREAM_TEST_TIMESCALEDB_URL``), both modes run
on the same data, plain PostgreSQL on ``--admin-url``, and the figures are printed side by side
(bench/results/storage_queries_modes.json).

Then times ``--queries`` runs of each query the API makes for one random device's whole range:
its UTC hours (``readings_hourly_utc``), its local days (``daily_local``), its local hours
(composed from ``readings_15m``) and the fleet's hours, each against the same answer computed
from the raw readings (the baseline). Prints p50/p99 and writes
bench/results/storage_queries.json.

The issue's full size is 1,000 devices x 30 days of 1-minute readings (43.2 M rows); the
default, 200 x 30 (8.6 M), loads in minutes on the shared 2-core box. Pass ``--devices 1000``
for the full size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from schema import storage
from stream.worker.statements import READINGS
from wattstream import migrate

RESULTS = Path(__file__).parent / "results"
DEFAULT_ADMIN_URL = "postgresql://wattstream:wattstream@127.0.0.1:15432/postgres"
START = datetime(2026, 3, 5, tzinfo=UTC)  # 30 days from here cross Europe's DST change
ZONES = (
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Asia/Tokyo",
    "UTC",
)
COPY_CHUNK = 100_000

Row = tuple[str, datetime, int, str, int, float, float]

# name -> (rollup query, the same answer from raw readings); $1 device, $2/$3 the range.
QUERIES = {
    "device_hourly_utc": (
        "SELECT * FROM readings_hourly_utc WHERE device_id = $1 AND bucket >= $2"
        " AND bucket < $3 ORDER BY bucket",
        "SELECT device_id, date_bin('1 hour', ts, TIMESTAMPTZ '2000-01-03 00:00:00+00') AS bucket,"
        " sum(energy_kwh), count(*), avg(power_kw), min(power_kw), max(power_kw)"
        " FROM readings WHERE device_id = $1 AND ts >= $2 AND ts < $3 GROUP BY 1, 2 ORDER BY 2",
    ),
    "device_daily_local": (
        "SELECT * FROM daily_local WHERE device_id = $1"
        " AND local_date >= ($2::timestamptz AT TIME ZONE 'UTC')::date"
        " AND local_date < ($3::timestamptz AT TIME ZONE 'UTC')::date ORDER BY local_date",
        "SELECT device_id, (ts AT TIME ZONE tz)::date AS local_date, sum(energy_kwh), count(*)"
        " FROM readings WHERE device_id = $1 AND ts >= $2::timestamptz - INTERVAL '1 day'"
        " AND ts < $3::timestamptz + INTERVAL '1 day'"
        " AND (ts AT TIME ZONE tz)::date >= ($2::timestamptz AT TIME ZONE 'UTC')::date"
        " AND (ts AT TIME ZONE tz)::date < ($3::timestamptz AT TIME ZONE 'UTC')::date"
        " GROUP BY 1, 2 ORDER BY 2",
    ),
    "device_hourly_local": (
        "SELECT date_trunc('hour', bucket AT TIME ZONE tz) AS local_hour, min(bucket) AS starts,"
        " sum(energy_kwh), sum(reading_count) FROM readings_15m WHERE device_id = $1"
        " AND bucket >= $2 AND bucket < $3 GROUP BY 1 ORDER BY 2",
        "SELECT date_trunc('hour', ts AT TIME ZONE tz) AS local_hour, min(ts) AS starts,"
        " sum(energy_kwh), count(*) FROM readings WHERE device_id = $1"
        " AND ts >= $2 AND ts < $3 GROUP BY 1 ORDER BY 2",
    ),
    "fleet_hourly": (
        "SELECT * FROM fleet_hourly WHERE bucket >= $2 AND bucket < $3"
        " AND $1::text IS NOT NULL ORDER BY bucket",
        "SELECT date_bin('1 hour', ts, TIMESTAMPTZ '2000-01-03 00:00:00+00') AS bucket,"
        " sum(energy_kwh), count(*), count(DISTINCT device_id) FROM readings"
        " WHERE ts >= $2 AND ts < $3 AND $1::text IS NOT NULL GROUP BY 1 ORDER BY 1",
    ),
}


def rows(devices: int, days: int, interval_s: int) -> Iterator[Row]:
    """Deterministic readings, ordered by time then device (as a live fleet delivers them)."""
    steps = days * 86400 // interval_s
    names = [f"dev-{d:05}" for d in range(devices)]
    for step in range(steps):
        ts = START + timedelta(seconds=step * interval_s)
        for d, name in enumerate(names):
            power = 0.2 + ((d * 7919 + step * 104729) % 1000) / 250
            yield (
                name,
                ts,
                step,
                ZONES[d % len(ZONES)],
                interval_s,
                power * interval_s / 3600,
                power,
            )


def chunks(source: Iterator[Row], size: int) -> Iterator[list[Row]]:
    chunk: list[Row] = []
    for row in source:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def load_copy(conn: asyncpg.Connection, args: argparse.Namespace) -> float:
    await conn.execute(
        "CREATE TABLE readings_bare (device_id text, ts timestamptz, seq bigint, tz text,"
        " interval_s int, energy_kwh float8, power_kw float8)"
    )
    spent = 0.0
    for chunk in chunks(rows(args.devices, args.days, args.interval_s), COPY_CHUNK):
        started = time.perf_counter()
        await conn.copy_records_to_table("readings_bare", records=chunk)
        spent += time.perf_counter() - started
    await conn.execute("DROP TABLE readings_bare")
    return spent


async def load_sink(
    conn: asyncpg.Connection, args: argparse.Namespace
) -> tuple[float, list[float]]:
    spent, batches = 0.0, []
    for n, batch in enumerate(chunks(rows(args.devices, args.days, args.interval_s), args.batch)):
        started = time.perf_counter()
        # The sink's own statements (stream/worker/statements.py): COPY into the session's
        # staging table, then INSERT ... SELECT ... ON CONFLICT DO NOTHING, in one transaction.
        async with conn.transaction():
            await conn.execute(READINGS.create_staging_sql)
            await conn.copy_records_to_table(
                READINGS.staging, records=batch, columns=READINGS.target.columns
            )
            await conn.execute(READINGS.merge_sql)
        took = time.perf_counter() - started
        spent += took
        batches.append(took)
        if n % 200 == 0:
            print(f"  sink: {n * args.batch:>11,} rows, {spent:7.1f} s", flush=True)
    return spent, batches


async def time_queries(conn: asyncpg.Connection, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(1)
    since, until = START, START + timedelta(days=args.days)
    results: dict[str, Any] = {}
    for name, (rollup, raw) in QUERIES.items():
        figures: dict[str, Any] = {}
        for label, sql in (("rollup", rollup), ("raw", raw)):
            statement = await conn.prepare(sql)
            runs = args.queries if label == "rollup" else max(5, args.queries // 10)
            for _ in range(3):  # warm-up
                await statement.fetch(f"dev-{rng.randrange(args.devices):05}", since, until)
            times, sizes = [], []
            for _ in range(runs):
                device = f"dev-{rng.randrange(args.devices):05}"
                started = time.perf_counter()
                found = await statement.fetch(device, since, until)
                times.append((time.perf_counter() - started) * 1000)
                sizes.append(len(found))
            figures[label] = {
                "runs": runs,
                "rows": statistics.median(sizes),
                "p50_ms": round(pct(times, 0.5), 2),
                "p99_ms": round(pct(times, 0.99), 2),
            }
        figures["raw_over_rollup_p50"] = round(
            figures["raw"]["p50_ms"] / max(figures["rollup"]["p50_ms"], 1e-6), 1
        )
        results[name] = figures
        print(
            f"{name:<20} rollup p50 {figures['rollup']['p50_ms']:8.2f} ms  p99"
            f" {figures['rollup']['p99_ms']:8.2f} ms  ({figures['rollup']['rows']:.0f} rows)"
            f" | from raw p50 {figures['raw']['p50_ms']:9.2f} ms"
            f"  ({figures['raw_over_rollup_p50']}x)"
        )
    return results


async def run(args: argparse.Namespace) -> dict[str, Any]:
    name = f"wattstream_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = args.admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        options = storage.StorageOptions.from_strings({"storage_mode": args.storage_mode})
        await asyncio.to_thread(migrate.upgrade, url, "head", options)
        conn = await asyncpg.connect(url)
        try:
            mode = await conn.fetchval("SELECT value FROM storage_info WHERE key = 'mode'")
            total = args.devices * (args.days * 86400 // args.interval_s)
            print(f"mode {mode}: {args.devices} devices x {args.days} days = {total:,} rows")
            copy_s = await load_copy(conn, args)
            print(f"bare COPY          {total / copy_s:>12,.0f} rows/s  ({copy_s:.1f} s)")
            sink_s, batches = await load_sink(conn, args)
            print(
                f"sink INSERT        {total / sink_s:>12,.0f} rows/s  ({sink_s:.1f} s,"
                f" {total / sink_s / (total / copy_s):.2f}x of COPY)"
            )
            started = time.perf_counter()
            for statement in storage.refresh_statements(mode):
                await conn.execute(statement)
            settle_s = time.perf_counter() - started
            await conn.execute("ANALYZE")
            queries = await time_queries(conn, args)
            sizes = {
                r["relname"]: r["bytes"]
                for r in await conn.fetch(
                    "SELECT relname, pg_total_relation_size(oid) AS bytes FROM pg_class"
                    " WHERE relname = ANY($1::text[])",
                    ["readings", "readings_15m", "readings_hourly_utc", "fleet_hourly"],
                )
            }
        finally:
            await conn.close()
    finally:
        admin = await asyncpg.connect(args.admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
    tenth = max(1, len(batches) // 10)
    return {
        "benchmark": "storage_queries",
        "mode": mode,
        "devices": args.devices,
        "days": args.days,
        "interval_s": args.interval_s,
        "rows": total,
        "batch": args.batch,
        "load": {
            "copy_rows_per_s": round(total / copy_s),
            "sink_rows_per_s": round(total / sink_s),
            "sink_over_copy": round(copy_s / sink_s, 3),
            "sink_batch_p50_ms": round(pct(batches, 0.5) * 1000, 1),
            "sink_batch_p99_ms": round(pct(batches, 0.99) * 1000, 1),
            "sink_first_tenth_rows_per_s": round(tenth * args.batch / sum(batches[:tenth])),
            "sink_last_tenth_rows_per_s": round(tenth * args.batch / sum(batches[-tenth:])),
            "settle_s": round(settle_s, 2),
        },
        "queries": queries,
        "relation_bytes": sizes,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "at": datetime.now(UTC).isoformat(),
    }


def side_by_side(plain: dict[str, Any], timescale: dict[str, Any]) -> dict[str, Any]:
    """Both modes' figures on the same data, and TimescaleDB's over plain PostgreSQL's."""
    print(f"\n{'':<20} {'plain p50':>10} {'p99':>9} | {'tsdb p50':>9} {'p99':>9}   (ms)")
    ratios: dict[str, float] = {}
    for name, figures in plain["queries"].items():
        other = timescale["queries"][name]["rollup"]
        mine = figures["rollup"]
        ratios[name] = round(other["p99_ms"] / mine["p99_ms"], 2) if mine["p99_ms"] else 0.0
        print(
            f"{name:<20} {mine['p50_ms']:>10.2f} {mine['p99_ms']:>9.2f} |"
            f" {other['p50_ms']:>9.2f} {other['p99_ms']:>9.2f}"
        )
    plain_rate, tsdb_rate = plain["load"]["sink_rows_per_s"], timescale["load"]["sink_rows_per_s"]
    print(f"{'sink rows/s':<20} {plain_rate:>20,} | {tsdb_rate:>19,}")
    return {
        "benchmark": "storage_queries_modes",
        "postgresql": plain,
        "timescaledb": timescale,
        "timescaledb_over_postgresql": {
            "query_p99": ratios,
            "sink_rows_per_s": round(tsdb_rate / plain_rate, 3),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("WATTSTREAM_BENCH_ADMIN_DATABASE_URL", DEFAULT_ADMIN_URL),
        help="a database on the server to benchmark; a fresh one is created beside it",
    )
    parser.add_argument(
        "--timescaledb-admin-url",
        default=os.environ.get("WATTSTREAM_TEST_TIMESCALEDB_URL"),
        help="a TimescaleDB server too: run plain PostgreSQL on --admin-url and TimescaleDB "
        "here on the same data, side by side (default: WATTSTREAM_TEST_TIMESCALEDB_URL)",
    )
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--interval-s", type=int, default=60)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--storage-mode", default="auto", choices=storage.MODE_CHOICES)
    parser.add_argument("--out", default=None, help="JSON (default: bench/results/...)")
    args = parser.parse_args()
    if args.days < 2:
        parser.error("--days must be at least 2")
    if args.timescaledb_admin_url:
        plain = asyncio.run(run(argparse.Namespace(**{**vars(args), "storage_mode": "postgresql"})))
        timescale = asyncio.run(
            run(
                argparse.Namespace(
                    **{
                        **vars(args),
                        "storage_mode": "timescaledb",
                        "admin_url": args.timescaledb_admin_url,
                    }
                )
            )
        )
        result = side_by_side(plain, timescale)
        out = Path(args.out or RESULTS / "storage_queries_modes.json")
    else:
        result = asyncio.run(run(args))
        out = Path(args.out or RESULTS / "storage_queries.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
