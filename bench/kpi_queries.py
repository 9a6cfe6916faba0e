"""KPI queries: a device-month and a 1,000-device fleet-day, from the rollups against raw.

In a fresh database (migrated in the mode the server offers, dropped afterwards), loads
``--devices`` devices (kinds, locations and zones spread over them) with one day of
``--interval-s`` readings, and ``--month-devices`` of them with a whole month, by ``COPY`` into
``readings`` (the storage layer keeps the rollups). Then times ``--queries`` runs of each KPI
query exactly as the API makes it (:func:`api.kpi.queries.group_quarters` on ``readings_15m``
plus :func:`api.kpi.figures.compute`), and the same answer computed from the raw readings in the
same run (the same statement over a 15-minute ``GROUP BY`` of ``readings``), checks that the two
agree, prints p50/p99 and writes bench/results/kpi_queries.json. Target: device-month p99 <
50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from api.kpi import queries
from api.kpi.figures import Kpis, Quarter, Span, Window, compute
from api.kpi.tariffs import Band, Tariff, TariffBook
from schema import storage
from wattstream import localcluster, migrate

from benchkit.cluster import drop_database, fresh_database
from benchkit.machine import describe
from benchkit.stats import percentile

RESULTS = Path(__file__).parent / "results"
MONTH = (date(2026, 3, 1), date(2026, 4, 1))  # holds Europe's spring-forward day
FLEET_DAY = date(2026, 3, 18)
ZONES = ("Europe/Berlin", "America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe", "UTC")
KINDS = ("household_meter", "hvac", "ev_charger", "fridge", "water_heater")
LOCATIONS = tuple(f"site-{n:02}" for n in range(20))
COPY_CHUNK = 100_000

BOOK = TariffBook(
    tariffs={
        "two-rate": TariffBook().tariffs["two-rate"],
        "night": Tariff(base_rate=0.15, bands=(Band(rate=0.05, start="00:00", end="06:00"),)),
    },
    locations={site: {"tariff": "night"} for site in LOCATIONS[::2]},  # type: ignore[misc]
)

RAW_DEVICE_QUARTERS = """
SELECT date_bin('15 minutes', ts, TIMESTAMPTZ '2000-01-03 00:00:00+00') AS bucket,
       max(tz) AS tz, sum(energy_kwh) AS energy_kwh, avg(power_kw) AS power_mean_kw
FROM readings WHERE device_id = $1 AND ts >= $2 AND ts < $3 GROUP BY 1
"""


def device_rows(
    device: int, start: datetime, end: datetime, interval_s: int
) -> Iterator[tuple[Any, ...]]:
    name = f"dev-{device:05}"
    tz = ZONES[device % len(ZONES)]
    step = timedelta(seconds=interval_s)
    ts, seq = start, 0
    while ts < end:
        hour = ts.astimezone(ZoneInfo(tz)).hour
        power = 0.3 + 2 * math.exp(-(((hour - 19) / 3) ** 2)) + ((device * 7919 + seq) % 97) / 97
        yield (name, ts, seq, tz, interval_s, power * interval_s / 3600, power)
        ts += step
        seq += 1


async def load(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    await conn.executemany(
        "INSERT INTO devices (device_id, kind, tz, location_name, interval_s)"
        " VALUES ($1, $2, $3, $4, $5)",
        [
            (
                f"dev-{d:05}",
                KINDS[d % len(KINDS)],
                ZONES[d % len(ZONES)],
                LOCATIONS[d % len(LOCATIONS)],
                args.interval_s,
            )
            for d in range(args.devices)
        ],
    )
    day_start = datetime.combine(FLEET_DAY, datetime.min.time(), tzinfo=UTC) - timedelta(hours=15)
    day_end = day_start + timedelta(hours=24 + 30)  # every zone's local 18 March
    month_start = datetime.combine(MONTH[0], datetime.min.time(), tzinfo=UTC) - timedelta(days=1)
    month_end = datetime.combine(MONTH[1], datetime.min.time(), tzinfo=UTC) + timedelta(days=1)
    total = 0
    chunk: list[tuple[Any, ...]] = []
    for device in range(args.devices):
        monthly = device < args.month_devices
        start, end = (month_start, month_end) if monthly else (day_start, day_end)
        for row in device_rows(device, start, end, args.interval_s):
            chunk.append(row)
            if len(chunk) == COPY_CHUNK:
                await conn.copy_records_to_table("readings", records=chunk, columns=COLUMNS)
                total += len(chunk)
                chunk = []
    if chunk:
        await conn.copy_records_to_table("readings", records=chunk, columns=COLUMNS)
        total += len(chunk)
    return total


COLUMNS = ("device_id", "ts", "seq", "tz", "interval_s", "energy_kwh", "power_kw")


Answer = dict[str, Kpis]
Query = Callable[[asyncpg.Connection, str], Awaitable[Answer]]


def device_month(raw: bool) -> Query:
    """What the device endpoint computes for a Berlin month (from raw readings with ``raw``)."""
    window = Window.of_days(*MONTH, ZoneInfo("Europe/Berlin"))

    async def query(conn: asyncpg.Connection, device_id: str) -> Answer:
        if raw:
            location = await conn.fetchval(queries.DEVICE_LOCATION, device_id)
            tariff, region = BOOK.choice(device_id, location)
            found = await conn.fetch(RAW_DEVICE_QUARTERS, device_id, window.first, window.last)
            rows = [
                Quarter(r["bucket"], r["tz"], tariff, region, r["energy_kwh"], r["power_mean_kw"])
                for r in found
            ]
        else:
            rows = await queries.device_quarters(conn, BOOK, window, device_id)
        zone = ZONES[int(device_id.removeprefix("dev-")) % len(ZONES)]
        return {device_id: compute(rows, [Span(zone, 1)], window, BOOK)}

    return query


def fleet_day(grouping: queries.Grouping, raw: bool) -> Query:
    """What the fleet endpoint computes for a day in each device's own zone."""
    window = Window.of_days(FLEET_DAY, FLEET_DAY + timedelta(days=1), None)
    sql = (queries.reference_statement if raw else queries.statement)(grouping, own_zone=True)

    async def query(conn: asyncpg.Connection, _device_id: str) -> Answer:
        groups = queries.groups_of(await conn.fetch(sql, *queries.arguments(BOOK, window)))
        return {name: compute(rows, spans, window, BOOK) for name, (rows, spans) in groups.items()}

    return query


def agree(a: dict[str, Kpis], b: dict[str, Kpis]) -> bool:
    if a.keys() != b.keys():
        return False
    for name, x in a.items():
        y = b[name]
        for left, right in (
            (x.energy_kwh, y.energy_kwh),
            (x.carbon_kg, y.carbon_kg),
            (x.peak_kw or 0.0, y.peak_kw or 0.0),
            (x.load_factor or 0.0, y.load_factor or 0.0),
            *((x.cost[c], y.cost.get(c, math.nan)) for c in x.cost),
        ):
            if not math.isclose(left, right, rel_tol=1e-9, abs_tol=1e-9):
                return False
        if (x.quarters, x.expected_quarters, x.peak_at) != (
            y.quarters,
            y.expected_quarters,
            y.peak_at,
        ):
            return False
    return True


async def time_case(
    conn: asyncpg.Connection,
    name: str,
    queries_by_source: dict[str, Query],
    devices: list[str],
    runs: int,
) -> dict[str, Any]:
    rng = random.Random(1)
    figures: dict[str, Any] = {}
    answers: dict[str, Answer] = {}
    for label, query in queries_by_source.items():
        count = runs if label == "rollup" else max(5, runs // 10)
        for _ in range(3):  # warm-up (and the plan cache)
            await query(conn, rng.choice(devices))
        times = []
        for _ in range(count):
            device = rng.choice(devices)
            started = time.perf_counter()
            await query(conn, device)
            times.append((time.perf_counter() - started) * 1000)
        answers[label] = await query(conn, devices[0])
        figures[label] = {
            "runs": count,
            "p50_ms": round(percentile(times, 0.5), 2),
            "p99_ms": round(percentile(times, 0.99), 2),
        }
    figures["raw_over_rollup_p50"] = round(
        figures["raw"]["p50_ms"] / max(figures["rollup"]["p50_ms"], 1e-6), 1
    )
    figures["same_answer"] = agree(answers["rollup"], answers["raw"])
    sample = next(iter(answers["rollup"].values()))
    figures["sample"] = {
        "energy_kwh": round(sample.energy_kwh, 3),
        "cost": {k: round(v, 3) for k, v in sample.cost.items()},
        "peak_kw": sample.peak_kw,
        "load_factor": sample.load_factor,
        "completeness": sample.completeness,
    }
    print(
        f"{name:<18} rollup p50 {figures['rollup']['p50_ms']:8.2f} ms  p99"
        f" {figures['rollup']['p99_ms']:8.2f} ms | from raw p50 {figures['raw']['p50_ms']:9.2f}"
        f" ms ({figures['raw_over_rollup_p50']}x)  same answer: {figures['same_answer']}",
        flush=True,
    )
    return figures


async def run(args: argparse.Namespace) -> dict[str, Any]:
    endpoints = localcluster.endpoints(localcluster.ClusterSettings())
    url = await fresh_database(endpoints, "wattstream_bench_kpi")
    try:
        options = storage.StorageOptions.from_strings({"storage_mode": args.storage_mode})
        await asyncio.to_thread(migrate.upgrade, url, "head", options)
        conn = await asyncpg.connect(url)
        try:
            mode = await conn.fetchval("SELECT value FROM storage_info WHERE key = 'mode'")
            started = time.perf_counter()
            total = await load(conn, args)
            for statement in storage.refresh_statements(mode):
                await conn.execute(statement)
            await conn.execute("ANALYZE")
            load_s = time.perf_counter() - started
            print(f"mode {mode}: {total:,} readings loaded and rolled up in {load_s:.1f} s")
            monthly = [f"dev-{d:05}" for d in range(args.month_devices)]
            fleet_runs = max(10, args.queries // 5)
            plan: dict[str, tuple[Query, Query, list[str], int]] = {
                "device_month": (
                    device_month(raw=False),
                    device_month(raw=True),
                    monthly,
                    args.queries,
                ),
                "fleet_day": (
                    fleet_day("fleet", False),
                    fleet_day("fleet", True),
                    [""],
                    fleet_runs,
                ),
                "fleet_day_by_kind": (
                    fleet_day("kind", False),
                    fleet_day("kind", True),
                    [""],
                    fleet_runs,
                ),
            }
            cases = {
                name: await time_case(conn, name, {"rollup": rollup, "raw": raw}, devices, runs)
                for name, (rollup, raw, devices, runs) in plan.items()
            }
            rollup_rows = await conn.fetchval("SELECT count(*) FROM readings_15m")
        finally:
            await conn.close()
    finally:
        await drop_database(endpoints, url)
    return {
        "benchmark": "kpi_queries",
        "mode": mode,
        "devices": args.devices,
        "month_devices": args.month_devices,
        "interval_s": args.interval_s,
        "readings": total,
        "readings_15m_rows": rollup_rows,
        "load_s": round(load_s, 1),
        "target": "device-month p99 < 50 ms",
        "target_met": cases["device_month"]["rollup"]["p99_ms"] < 50,
        "cases": cases,
        "machine": describe(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--month-devices", type=int, default=10)
    parser.add_argument("--interval-s", type=int, default=60)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--storage-mode", default="auto", choices=storage.MODE_CHOICES)
    parser.add_argument("--out", default=str(RESULTS / "kpi_queries.json"))
    args = parser.parse_args()
    result = asyncio.run(run(args))
    Path(args.out).parent.mkdir(exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
