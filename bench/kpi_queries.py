"""KPI queries: a device-month and a 1,000-device fleet-day, from the rollups against raw.

In a fresh database (migrated in the mode the server offers, dropped afterwards), loads
``--devices`` devices (kinds, locations and zones spread over them) with one day of
``--interval-s`` readings, and ``--month-devices`` of them with a whole month, by ``COPY`` into
``readings`` (the storage layer keeps the rollups). Then times ``--queries`` runs of each KPI
query exactly as the API makes it (:func:`api.kpi.queries.device_figures` plus
:func:`api.kpi.figures.compute_totals` for a device, :func:`api.kpi.queries.group_quarters` plus
:func:`api.kpi.figures.compute` for the fleet, all on ``readings_15m``), and the same answer
computed from the raw readings in the same run (the same statement over a 15-minute ``GROUP BY``
of ``readings``), checks that they agree, prints p50/p99 and writes
bench/results/kpi_queries.json. The device-month is also timed the way it was computed before
(:data:`PREVIOUS_DEVICE_FIGURES`: the same price tables sent as float arrays, the quarters
materialised in a CTE and scanned four times), interleaved with the new way, so the before/after
figures share the machine's load; beside wall time, each source's CPU time per query (this
process, and the database backend's when it runs on this machine) says what the load hides.
Every sixth device is an industrial line that reports production (SEC). Target: device-month
p99 < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import asyncpg

from api.kpi import figures, queries, segments
from api.kpi.figures import Kpis, Span, Window, compute, compute_totals
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
KINDS = ("household_meter", "hvac", "ev_charger", "fridge", "water_heater", "industrial_line")
LOCATIONS = tuple(f"site-{n:02}" for n in range(20))
COPY_CHUNK = 100_000

BOOK = TariffBook(
    tariffs={
        "two-rate": TariffBook().tariffs["two-rate"],
        "night": Tariff(base_rate=0.15, bands=(Band(rate=0.05, start="00:00", end="06:00"),)),
    },
    locations={site: {"tariff": "night"} for site in LOCATIONS[::2]},  # type: ignore[misc]
)

# The device statement before the one-pass statement replaced it (kept here only to time it).
PREVIOUS_DEVICE_FIGURES = """
WITH q AS (
    SELECT bucket, tz, energy_kwh, power_mean_kw, production_units,
           width_bucket(bucket, $4::timestamptz[]) AS seg
    FROM readings_15m
    WHERE device_id = $1 AND bucket >= $2 AND bucket < $3
),
k AS (
    SELECT energy_kwh, production_units, seg,
           ((date_part('epoch', bucket)::bigint + ($6::int[])[seg]) % 604800 / 900)::int AS qow
    FROM q WHERE tz = $5::text
)
SELECT 'total' AS part, NULL::timestamptz AS bucket, NULL::text AS tz,
       sum(energy_kwh) AS energy_kwh, count(*) AS quarters,
       sum(energy_kwh * ($7::float8[])[(seg - 1) * 672 + qow + 1]) AS cost,
       sum(energy_kwh * ($8::float8[])[(seg - 1) * 96 + qow % 96 + 1]) AS carbon_kg,
       sum(production_units) AS production_units,
       sum(energy_kwh) FILTER (WHERE production_units IS NOT NULL) AS production_energy_kwh,
       NULL::double precision AS power_kw
FROM k
UNION ALL
SELECT 'peak', peak.bucket, NULL, NULL, NULL, NULL, NULL, NULL, NULL, peak.power_mean_kw
FROM (
    SELECT bucket, power_mean_kw FROM q WHERE power_mean_kw IS NOT NULL
    ORDER BY power_mean_kw DESC, bucket LIMIT 1
) AS peak
UNION ALL
SELECT 'mean', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, avg(power_mean_kw) FROM q
UNION ALL
SELECT 'other', bucket, tz, energy_kwh, 1, NULL, NULL, production_units,
       CASE WHEN production_units IS NOT NULL THEN energy_kwh END, power_mean_kw
FROM q WHERE tz <> $5::text
"""


TOTALS = [
    "energy_kwh",
    "cost",
    "carbon_kg",
    "quarters",
    "production_units",
    "production_energy_kwh",
]


async def previous_device_figures(
    conn: asyncpg.Connection, window: Window, device_id: str, site: queries.Site
) -> figures.Priced:
    tariff, region = BOOK.choice(device_id, site.location)
    tables = segments.price_tables(
        BOOK.tariffs[tariff], BOOK.regions[region], site.tz, window.first, window.last
    )
    rows = await conn.fetch(
        PREVIOUS_DEVICE_FIGURES,
        device_id,
        window.first,
        window.last,
        tables.cuts,
        site.tz,
        tables.offsets,
        tables.rates,
        tables.intensities,
    )
    totals = figures.Totals(0.0, 0.0, 0.0, 0, None, None)
    others: list[figures.Quarter] = []
    peak_kw = peak_at = mean_kw = None
    for row in rows:
        if row["part"] == "total" and row["quarters"]:
            totals = figures.Totals(*(row[k] for k in TOTALS))
        elif row["part"] == "peak":
            peak_kw, peak_at = row["power_kw"], row["bucket"]
        elif row["part"] == "mean":
            mean_kw = row["power_kw"]
        elif row["part"] == "other":
            others.append(queries.quarter_of(row, tariff, region, power="power_kw"))
    return figures.Priced(totals, tariff, others, figures.Demand(peak_kw, peak_at, mean_kw))


RAW_DEVICE_QUARTERS = """
SELECT date_bin('15 minutes', ts, TIMESTAMPTZ '2000-01-03 00:00:00+00') AS bucket,
       max(tz) AS tz, sum(energy_kwh) AS energy_kwh, avg(power_kw) AS power_mean_kw,
       sum(production_units) AS production_units
FROM readings WHERE device_id = $1 AND ts >= $2 AND ts < $3 GROUP BY 1
"""


def device_rows(
    device: int, start: datetime, end: datetime, interval_s: int
) -> Iterator[tuple[Any, ...]]:
    name = f"dev-{device:05}"
    tz = ZONES[device % len(ZONES)]
    producing = KINDS[device % len(KINDS)] == "industrial_line"
    step = timedelta(seconds=interval_s)
    ts, seq = start, 0
    while ts < end:
        hour = ts.astimezone(ZoneInfo(tz)).hour
        power = 0.3 + 2 * math.exp(-(((hour - 19) / 3) ** 2)) + ((device * 7919 + seq) % 97) / 97
        units = (power - 0.3) * interval_s / 3600 * 4 if producing else None
        yield (name, ts, seq, tz, interval_s, power * interval_s / 3600, power, units)
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


COLUMNS = (
    "device_id",
    "ts",
    "seq",
    "tz",
    "interval_s",
    "energy_kwh",
    "power_kw",
    "production_units",
)


Answer = dict[str, Kpis]
Query = Callable[[asyncpg.Connection, str], Awaitable[Answer]]


DeviceSource = Literal["priced", "previous", "raw"]


def device_month(source: DeviceSource) -> Query:
    """What the device endpoint computes for a Berlin month: ``priced`` as it does (one pass
    of one statement pricing the rollup's quarters from packed price tables), ``previous`` as it
    did before (:data:`PREVIOUS_DEVICE_FIGURES`), ``raw`` from raw readings. Each looks the
    device's zone and location up first, as the endpoint does."""
    window = Window.of_days(*MONTH, ZoneInfo("Europe/Berlin"))

    async def query(conn: asyncpg.Connection, device_id: str) -> Answer:
        site = await queries.device_site(conn, device_id)
        assert site is not None
        spans = [Span(site.tz, 1)]
        if source == "priced":
            found = await queries.device_figures(conn, BOOK, window, device_id, site)
            return {device_id: compute_totals(found, spans, window, BOOK)}
        if source == "previous":
            found = await previous_device_figures(conn, window, device_id, site)
            return {device_id: compute_totals(found, spans, window, BOOK)}
        tariff, region = BOOK.choice(device_id, site.location)
        raw = await conn.fetch(RAW_DEVICE_QUARTERS, device_id, window.first, window.last)
        rows = [queries.quarter_of(r, tariff, region) for r in raw]
        return {device_id: compute(rows, spans, window, BOOK)}

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
            (x.production_units or 0.0, y.production_units or 0.0),
            (x.sec_kwh_per_unit or 0.0, y.sec_kwh_per_unit or 0.0),
        ):
            if not math.isclose(left, right, rel_tol=1e-9, abs_tol=1e-9):
                return False
        if (x.quarters, x.expected_quarters, x.peak_at, x.sec_kwh_per_unit is None) != (
            y.quarters,
            y.expected_quarters,
            y.peak_at,
            y.sec_kwh_per_unit is None,
        ):
            return False
    return True


class Backend:
    """CPU time of the database backend serving a connection, from ``/proc`` (when the server
    runs on this machine and this user may read it; clock ticks, summed over many queries)."""

    def __init__(self, pid: int) -> None:
        self.stat = Path(f"/proc/{pid}/stat")
        self.tick = os.sysconf("SC_CLK_TCK")
        self.readable = os.access(self.stat, os.R_OK)

    def cpu_s(self) -> float:
        if not self.readable:
            return 0.0
        fields = self.stat.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.tick  # utime + stime


async def time_case(
    conn: asyncpg.Connection,
    name: str,
    queries_by_source: dict[str, Query],
    devices: list[str],
    runs: int,
) -> dict[str, Any]:
    """Time each source on the same devices, interleaved (one run of each in turn, the order
    rotating), so that a change in the machine's load hits every source alike. ``rollup`` is
    what the API does; ``before``, if given, what it did before this change; ``raw`` the same
    answer from raw readings (fewer runs: it is slow)."""
    rng = random.Random(1)
    labels = list(queries_by_source)
    counts = {label: max(5, runs // 10) if label == "raw" else runs for label in labels}
    for query in queries_by_source.values():
        for _ in range(3):  # warm-up (and the plan cache)
            await query(conn, rng.choice(devices))
    times: dict[str, list[float]] = {label: [] for label in labels}
    cpu = {label: [0.0, 0.0] for label in labels}  # this process, the backend (s)
    backend = Backend(await conn.fetchval("SELECT pg_backend_pid()"))
    for i in range(runs):
        device = rng.choice(devices)
        for label in labels[i % len(labels) :] + labels[: i % len(labels)]:
            if len(times[label]) < counts[label]:
                server, client = backend.cpu_s(), time.process_time()
                started = time.perf_counter()
                await queries_by_source[label](conn, device)
                times[label].append((time.perf_counter() - started) * 1000)
                cpu[label][0] += time.process_time() - client
                cpu[label][1] += backend.cpu_s() - server
    figures: dict[str, Any] = {}
    answers: dict[str, Answer] = {label: {} for label in labels}
    for label, query in queries_by_source.items():
        for device in devices:  # every device's answer, from every source
            answers[label].update(await query(conn, device))
    for label in labels:
        figures[label] = {
            "runs": counts[label],
            "p50_ms": round(percentile(times[label], 0.5), 2),
            "p99_ms": round(percentile(times[label], 0.99), 2),
            "client_cpu_ms": round(cpu[label][0] / counts[label] * 1000, 2),
            "server_cpu_ms": round(cpu[label][1] / counts[label] * 1000, 2)
            if backend.readable
            else None,
        }
    fastest = max(figures["rollup"]["p50_ms"], 1e-6)
    for label in labels[1:]:
        figures[f"{label}_over_rollup_p50"] = round(figures[label]["p50_ms"] / fastest, 1)
    figures["same_answer"] = all(agree(answers["rollup"], answers[label]) for label in labels)
    sample = next(iter(answers["rollup"].values()))
    figures["sample"] = {
        "energy_kwh": round(sample.energy_kwh, 3),
        "cost": {k: round(v, 3) for k, v in sample.cost.items()},
        "peak_kw": sample.peak_kw,
        "load_factor": sample.load_factor,
        "completeness": sample.completeness,
        "sec_kwh_per_unit": sample.sec_kwh_per_unit,
    }
    before = ""
    if "before" in figures:
        before = (
            f" | before p50 {figures['before']['p50_ms']:8.2f} ms  p99"
            f" {figures['before']['p99_ms']:8.2f} ms (cpu {cpu_ms(figures['before'])})"
        )
    print(
        f"{name:<18} rollup p50 {figures['rollup']['p50_ms']:8.2f} ms  p99"
        f" {figures['rollup']['p99_ms']:8.2f} ms (cpu {cpu_ms(figures['rollup'])}){before}"
        " | from raw p50"
        f" {figures['raw']['p50_ms']:9.2f} ms ({figures['raw_over_rollup_p50']}x)"
        f"  same answer: {figures['same_answer']}",
        flush=True,
    )
    return figures


def cpu_ms(figures: dict[str, Any]) -> str:
    server = figures["server_cpu_ms"]
    return f"{figures['client_cpu_ms']:.2f} + {'?' if server is None else f'{server:.2f}'} ms"


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
            plan: dict[str, tuple[dict[str, Query], list[str], int]] = {
                "device_month": (
                    {
                        "rollup": device_month("priced"),
                        "before": device_month("previous"),
                        "raw": device_month("raw"),
                    },
                    monthly,
                    args.queries,
                ),
                "fleet_day": (
                    {"rollup": fleet_day("fleet", False), "raw": fleet_day("fleet", True)},
                    [""],
                    fleet_runs,
                ),
                "fleet_day_by_kind": (
                    {"rollup": fleet_day("kind", False), "raw": fleet_day("kind", True)},
                    [""],
                    fleet_runs,
                ),
            }
            cases = {
                name: await time_case(conn, name, sources, devices, runs)
                for name, (sources, devices, runs) in plan.items()
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
        "before": "device_month.before: the statement this run replaced (PREVIOUS_DEVICE_FIGURES:"
        " price tables as float arrays, the quarters in a CTE scanned four times), timed"
        " interleaved with it on the same devices",
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
