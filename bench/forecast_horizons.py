"""24-hour trajectories (P10/P50/P90) for 10,000 devices at one hour close, committed.

One batched call of ``Forecaster.forecast_horizons`` (feature encoding + the one
``tf.function`` + unscaling), then the rows of every device built and upserted in one
transaction into a freshly migrated database of the local cluster, two ways in the same run,
alternating, ``--rounds`` times each:

* **trajectories** (migration 0011, what the worker does): one ``forecast_trajectories`` row
  per device (plus one with the 7 days for the devices at local midnight), the targets as
  arrays (:func:`stream.core.horizon_records.trajectory_records`), written by the sink's
  ``store`` (binary COPY into a staging table + one upsert);
* **trajectories, 0011 check**: the same into a database migrated to 0011 only, where the
  check that the quantiles are ordered was a SQL function (0012 made it PL/pgSQL);
* **rows** (the layout of migration 0007, a database migrated to 0010): a tuple per target,
  24 (+7) per device, written by the same COPY + upsert into the per-target table.

Against both: the same model called once per device on a sample, extrapolated to the fleet.
Each phase is timed by the wall clock, by this process's CPU time and (commits) by the
PostgreSQL backend's CPU time: on a loaded machine the CPU times are the fairer comparison.
Needs a multi-horizon model: ``--model-dir``, else ``artifacts/latest`` if it is one, else the
newest one under ``artifacts/``. Prints the figures; writes bench/results/forecast_horizons.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import psutil

from stream.core.horizon_records import Issue, day_targets, hour_targets, trajectory_records
from stream.core.localtime import local_hour
from stream.forecast import Forecaster, ForecastInput, load_latest
from stream.forecast.artifacts import CARD_FILE, MultiHorizon
from stream.worker.processor import SinkBatch
from stream.worker.sink import store
from wattstream import localcluster, migrate

from benchkit.cluster import drop_database, fresh_database

RESULTS = Path(__file__).parent / "results"
ARTIFACTS = Path(__file__).parents[1] / "artifacts"
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kathmandu")
CLOSE = datetime(2026, 6, 1, 22, tzinfo=UTC)
"""The hour close: local midnight in Berlin (so a quarter of the fleet also issues 7 days)."""

ROWS_COLUMNS = (
    "device_id", "issue_time", "target_start", "target_end", "horizon", "model_id", "step",
    "local_date", "local_hour", "p10_kwh", "p50_kwh", "p90_kwh", "issued_at",
)  # fmt: skip
ROWS_KEY = ("device_id", "issue_time", "target_start", "horizon", "model_id")
ROWS_STAGING = (
    "CREATE TEMP TABLE IF NOT EXISTS rows_staging (LIKE forecast_horizons INCLUDING DEFAULTS)"
    " ON COMMIT DELETE ROWS"
)
ROWS_MERGE = (
    f"INSERT INTO forecast_horizons ({', '.join(ROWS_COLUMNS)})"
    f" SELECT {', '.join(ROWS_COLUMNS)} FROM rows_staging ON CONFLICT ({', '.join(ROWS_KEY)})"
    " DO UPDATE SET " + ", ".join(f"{c} = EXCLUDED.{c}" for c in ROWS_COLUMNS if c not in ROWS_KEY)
)


def inputs(forecaster: Forecaster, count: int, seed: int = 1) -> list[ForecastInput]:
    """``count`` devices whose hour closes at :data:`CLOSE`: the card's probe histories,
    jittered, in four zones."""
    rng = np.random.default_rng(seed)
    probes = forecaster.card["probe"]
    made = []
    for i in range(count):
        probe = probes[i % len(probes)]
        tz = ZONES[i % len(ZONES)]
        made.append(
            ForecastInput(
                device_id=f"bench-{i:05d}",
                kind=probe["kind"],
                tz=tz,
                next_hour_start=local_hour(CLOSE, tz).start,
                history_kwh=(
                    np.asarray(probe["history_kwh"]) * rng.lognormal(0, 0.05, 24)
                ).tolist(),
            )
        )
    return made


def issues(batch: Sequence[ForecastInput]) -> list[Issue]:
    return [Issue(i.device_id, i.tz, local_hour(i.next_hour_start, i.tz)) for i in batch]


def trajectories(closing: Sequence[Issue], out: MultiHorizon, model_id: str) -> list[Any]:
    """After: a row per device and horizon, as the worker makes them."""
    return trajectory_records(closing, out.hourly_kwh, out.daily_kwh, model_id=model_id, now=CLOSE)


def per_target_rows(
    closing: Sequence[Issue], out: MultiHorizon, model_id: str
) -> list[tuple[Any, ...]]:
    """Before: a tuple per target (the 0007 table's columns) from the nested lists of the
    model's output, the targets cached per zone and issue hour as the worker had them."""
    hourly, daily = out.hourly_kwh.tolist(), out.daily_kwh.tolist()
    rows: list[tuple[Any, ...]] = []
    for (device_id, tz, first), hours, days in zip(closing, hourly, daily, strict=True):
        issue = first.start
        t = hour_targets(first, tz, len(hours))
        bounds, dates, local = t.bounds, t.local_dates, t.local_hours or ()
        rows += [
            (device_id, issue, bounds[k], bounds[k + 1], "24h", model_id, k + 1, dates[k],
             local[k], p10, p50, p90, CLOSE)
            for k, (p10, p50, p90) in enumerate(hours)
        ]  # fmt: skip
        d = day_targets(issue, tz, len(days))
        if d is not None:
            rows += [
                (device_id, issue, d.bounds[k], d.bounds[k + 1], "7d", model_id, k + 1,
                 d.local_dates[k], None, p10 * s, p50 * s, p90 * s, CLOSE)
                for k, ((p10, p50, p90), s) in enumerate(zip(days, d.scale, strict=True))
            ]  # fmt: skip
    return rows


async def store_rows(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    await conn.execute(ROWS_STAGING)
    await conn.copy_records_to_table("rows_staging", records=rows, columns=ROWS_COLUMNS)
    await conn.execute(ROWS_MERGE)


async def store_trajectories(conn: asyncpg.Connection, rows: list[Any]) -> None:
    await store(conn, SinkBatch(horizons=rows), "bench")


class Clocks:
    """Wall time, this process's CPU time and a PostgreSQL backend's CPU time of one phase."""

    def __init__(self, backend: psutil.Process | None = None) -> None:
        self._backend = backend

    def _backend_cpu(self) -> float:
        if self._backend is None:
            return 0.0
        times = self._backend.cpu_times()
        return float(times.user + times.system)

    def __enter__(self) -> Clocks:
        self._started = (time.perf_counter(), time.process_time(), self._backend_cpu())
        return self

    def __exit__(self, *_: object) -> None:
        wall, cpu, backend = self._started
        self.wall_s = time.perf_counter() - wall
        self.cpu_s = time.process_time() - cpu
        self.backend_cpu_s = self._backend_cpu() - backend


async def one_round(
    forecaster: Forecaster,
    batch: list[ForecastInput],
    url: str,
    *,
    build: Callable[[Sequence[Issue], MultiHorizon, str], list[Any]],
    write: Callable[[asyncpg.Connection, list[Any]], Awaitable[None]],
    table: str,
) -> dict[str, Any]:
    """Model call, rows, commit of the whole fleet; then a replay must add nothing. The local
    hours that closed are known before (the worker's requests carry them)."""
    closing = issues(batch)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"TRUNCATE {table}")
        backend = psutil.Process(await conn.fetchval("SELECT pg_backend_pid()"))
        with Clocks() as model:
            out = forecaster.forecast_horizons(batch)
        with Clocks() as rows_made:
            rows = build(closing, out, forecaster.model_id)
        with Clocks(backend) as commit:
            async with conn.transaction():
                await write(conn, rows)
        targets = await conn.fetchval("SELECT count(*) FROM forecast_horizons")
        async with conn.transaction():  # a replay: the same rows, none more
            await write(conn, rows)
        assert await conn.fetchval("SELECT count(*) FROM forecast_horizons") == targets
        stored = await conn.fetchval(f"SELECT count(*) FROM {table}")
    finally:
        await conn.close()
    return {
        "rows_written": stored,
        "targets": targets,
        "model_call_s": model.wall_s,
        "model_call_cpu_s": model.cpu_s,
        "rows_s": rows_made.wall_s,
        "rows_cpu_s": rows_made.cpu_s,
        "commit_s": commit.wall_s,
        "commit_client_cpu_s": commit.cpu_s,
        "commit_backend_cpu_s": commit.backend_cpu_s,
        "total_s": model.wall_s + rows_made.wall_s + commit.wall_s,
        "total_cpu_s": model.cpu_s + rows_made.cpu_s + commit.cpu_s + commit.backend_cpu_s,
    }


def medians(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        key: round(statistics.median(r[key] for r in rounds), 3)
        if isinstance(rounds[0][key], float)
        else rounds[0][key]
        for key in rounds[0]
    }


async def run(forecaster: Forecaster, devices: int, sample: int, rounds: int) -> dict[str, Any]:
    batch = inputs(forecaster, devices)
    forecaster.forecast_horizons(batch[:8])  # warm-up: the graph runs once
    endpoints = await asyncio.to_thread(localcluster.up, localcluster.ClusterSettings())
    after_url = await fresh_database(endpoints, "bench_horizons")
    check_url = await fresh_database(endpoints, "bench_horizons_0011")
    before_url = await fresh_database(endpoints, "bench_horizons_rows")
    measured: dict[str, list[dict[str, Any]]] = {"trajectories": [], "check_0011": [], "rows": []}
    load = os.getloadavg()[0]
    try:
        await asyncio.to_thread(migrate.upgrade, after_url)
        await asyncio.to_thread(migrate.upgrade, check_url, "0011")  # the SQL-function check
        await asyncio.to_thread(migrate.upgrade, before_url, "0010")  # the per-target table
        for _ in range(rounds):
            measured["rows"].append(
                await one_round(
                    forecaster, batch, before_url, build=per_target_rows, write=store_rows,
                    table="forecast_horizons",
                )
            )  # fmt: skip
            for name, url in (("check_0011", check_url), ("trajectories", after_url)):
                measured[name].append(
                    await one_round(
                        forecaster, batch, url, build=trajectories, write=store_trajectories,
                        table="forecast_trajectories",
                    )
                )  # fmt: skip
    finally:
        for url in (after_url, check_url, before_url):
            await drop_database(endpoints, url)
    started = time.perf_counter()
    for one in batch[:sample]:
        forecaster.forecast_horizons([one])
    per_device_s = (time.perf_counter() - started) / sample * devices
    after, before = medians(measured["trajectories"]), medians(measured["rows"])
    check = medians(measured["check_0011"])
    return {
        "benchmark": "forecast_horizons",
        "model_id": forecaster.model_id,
        "devices": devices,
        "rounds": rounds,
        "medians_of_rounds": {
            "trajectories": after,
            "trajectories_0011_check": check,
            "rows_0007_layout": before,
        },
        "rounds_measured": measured,
        "per_device_model_calls_s_extrapolated": round(per_device_s, 3),
        "per_device_sample": sample,
        "model_call_speedup": round(per_device_s / after["model_call_s"], 1),
        "load_average_1m_at_start": round(load, 2),
        "note": "a loaded, shared 2-core machine: compare within this run only",
        "machine": {"python": platform.python_version(), "cores": os.cpu_count()},
        "at": datetime.now(UTC).isoformat(),
    }


def multi_horizon_model(artifacts: Path) -> Forecaster | None:
    """``artifacts/latest`` if it has horizons, else the newest model directory that has."""
    latest = load_latest(artifacts)
    if latest.multi_horizon:
        return latest
    cards = []
    for card in artifacts.glob(f"*/{CARD_FILE}"):
        data = json.loads(card.read_text())
        if data.get("architecture", {}).get("horizon_hours"):
            cards.append((data["created_at"], card.parent))
    return Forecaster.load(max(cards)[1]) if cards else None


def report(result: dict[str, Any]) -> None:
    devices = result["devices"]
    print(f"model {result['model_id']}: {devices:,} devices, 24 h trajectories + 7 days")
    print(f"medians of {result['rounds']} rounds, same run (wall s / own CPU s / backend CPU s)")
    for name, m in result["medians_of_rounds"].items():
        print(f"  {name}: {m['rows_written']:,} rows holding {m['targets']:,} targets")
        print(f"    model call  {m['model_call_s']:>8.3f} / {m['model_call_cpu_s']:.3f}")
        print(f"    rows built  {m['rows_s']:>8.3f} / {m['rows_cpu_s']:.3f}")
        print(
            f"    committed   {m['commit_s']:>8.3f} / {m['commit_client_cpu_s']:.3f}"
            f" / {m['commit_backend_cpu_s']:.3f}"
        )
        print(f"    total       {m['total_s']:>8.3f} / {m['total_cpu_s']:.3f} (CPU: own + backend)")
    print(
        f"  per-device model calls {result['per_device_model_calls_s_extrapolated']:.3f} s"
        f" (extrapolated from {result['per_device_sample']}; {result['model_call_speedup']}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None, help="default: artifacts/latest")
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-device-sample", type=int, default=200)
    args = parser.parse_args()
    forecaster = (
        Forecaster.load(args.model_dir) if args.model_dir else multi_horizon_model(ARTIFACTS)
    )
    if forecaster is None or not forecaster.multi_horizon:
        parser.error("no multi-horizon model: train one (wattstream train) or pass --model-dir")
    result = asyncio.run(run(forecaster, args.devices, args.per_device_sample, args.rounds))
    report(result)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "forecast_horizons.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
