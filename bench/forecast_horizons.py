"""24-hour trajectories (P10/P50/P90) for 10,000 devices at one hour close, committed.

One batched call of ``Forecaster.forecast_horizons`` (feature encoding + the one
``tf.function`` + unscaling), then the ``forecast_horizons`` rows of every device built
(:func:`stream.core.horizon_records.horizon_records`: 24 targets each, plus 7 days for the
devices at local midnight) and upserted in one transaction into a freshly migrated database of
the local cluster. Against it, in the same run: the same model called once per device on a
sample, extrapolated to the fleet. Needs a multi-horizon model: ``--model-dir``, else
``artifacts/latest`` if it is one, else the newest one under ``artifacts/``. Prints the
figures; writes bench/results/forecast_horizons.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import numpy as np

from stream.core.horizon_records import HorizonRow, horizon_records
from stream.core.localtime import local_hour
from stream.forecast import Forecaster, ForecastInput, load_latest
from stream.forecast.artifacts import CARD_FILE
from stream.worker.processor import SinkBatch
from stream.worker.sink import store
from wattstream import localcluster, migrate

from benchkit.cluster import drop_database, fresh_database

RESULTS = Path(__file__).parent / "results"
ARTIFACTS = Path(__file__).parents[1] / "artifacts"
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kathmandu")
CLOSE = datetime(2026, 6, 1, 22, tzinfo=UTC)
"""The hour close: local midnight in Berlin (so a quarter of the fleet also issues 7 days)."""


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


def records(forecaster: Forecaster, batch: list[ForecastInput]) -> list[HorizonRow]:
    out = forecaster.forecast_horizons(batch)
    hourly, daily = out.hourly_kwh.tolist(), out.daily_kwh.tolist()
    rows: list[HorizonRow] = []
    for index, item in enumerate(batch):
        rows += horizon_records(
            device_id=item.device_id, tz=item.tz, first=local_hour(item.next_hour_start, item.tz),
            hourly=hourly[index], daily=daily[index], model_id=forecaster.model_id, now=CLOSE,
        )  # fmt: skip
    return rows


async def commit(url: str, rows: list[HorizonRow]) -> None:
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await store(conn, SinkBatch(horizons=rows), "bench")
    finally:
        await conn.close()


async def run(forecaster: Forecaster, devices: int, sample: int) -> dict[str, object]:
    batch = inputs(forecaster, devices)
    forecaster.forecast_horizons(batch[:8])  # warm-up: the graph runs once
    endpoints = await asyncio.to_thread(localcluster.up, localcluster.ClusterSettings())
    url = await fresh_database(endpoints, "bench_horizons")
    try:
        await asyncio.to_thread(migrate.upgrade, url)
        started = time.perf_counter()
        out = forecaster.forecast_horizons(batch)
        model_s = time.perf_counter() - started
        rows = records(forecaster, batch)
        rows_s = time.perf_counter() - started - model_s
        await commit(url, rows)
        total_s = time.perf_counter() - started
        conn = await asyncpg.connect(url)
        stored = await conn.fetchval("SELECT count(*) FROM forecast_horizons")
        await conn.close()
        assert out.hourly_kwh.shape == (devices, 24, 3)
        await commit(url, rows)  # a replay: the same rows, none more
        conn = await asyncpg.connect(url)
        assert await conn.fetchval("SELECT count(*) FROM forecast_horizons") == stored
        await conn.close()
    finally:
        await drop_database(endpoints, url)
    started = time.perf_counter()
    for one in batch[:sample]:
        forecaster.forecast_horizons([one])
    per_device_s = (time.perf_counter() - started) / sample * devices
    return {
        "benchmark": "forecast_horizons",
        "model_id": forecaster.model_id,
        "devices": devices,
        "rows_committed": stored,
        "batched": {
            "model_call_s": round(model_s, 3),
            "rows_s": round(rows_s, 3),
            "commit_s": round(total_s - model_s - rows_s, 3),
            "total_s": round(total_s, 3),
        },
        "per_device_model_calls_s_extrapolated": round(per_device_s, 3),
        "per_device_sample": sample,
        "model_call_speedup": round(per_device_s / model_s, 1),
        "note": "a loaded, shared 2-core machine: compare within this run only",
        "machine": {"python": platform.python_version(), "cores": 2},
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None, help="default: artifacts/latest")
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--per-device-sample", type=int, default=300)
    args = parser.parse_args()
    forecaster = (
        Forecaster.load(args.model_dir) if args.model_dir else multi_horizon_model(ARTIFACTS)
    )
    if forecaster is None or not forecaster.multi_horizon:
        parser.error("no multi-horizon model: train one (wattstream train) or pass --model-dir")
    result = asyncio.run(run(forecaster, args.devices, args.per_device_sample))
    batched = result["batched"]
    assert isinstance(batched, dict)
    print(f"model {forecaster.model_id}: {args.devices:,} devices, 24 h trajectories + 7 days")
    print(f"  batched model call      {batched['model_call_s']:>8.3f} s")
    print(f"  rows built              {batched['rows_s']:>8.3f} s")
    print(f"  committed ({result['rows_committed']:,} rows) {batched['commit_s']:>8.3f} s")
    print(f"  total                   {batched['total_s']:>8.3f} s")
    print(
        f"  per-device calls        {result['per_device_model_calls_s_extrapolated']:>8.3f} s"
        f" (extrapolated from {args.per_device_sample}; {result['model_call_speedup']}x)"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "forecast_horizons.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
