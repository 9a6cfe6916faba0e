"""Catch-up: events/s of one stream worker on a preloaded ``readings`` topic, against a bare
aiokafka consume-and-COPY loop moving the same readings into a table without triggers.

The worker does everything it does live (decode, windows per device-local hour, table state,
forecasts, health, one idempotent transaction per batch through the storage triggers), so the
ratio is the price of all of that over moving bytes. Both runs use the local cluster, fresh
topics and fresh databases. Prints both rates and the ratio; writes
bench/results/worker_catchup.json.

    python bench/worker_catchup.py --readings 1000000
    python bench/worker_catchup.py --profile /tmp/worker.html   # the worker under pyinstrument
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import psutil
from aiokafka import AIOKafkaConsumer

from schema.topics import KafkaTopics
from schema.wire import Reading
from wattstream import localcluster, migrate

from benchkit.cluster import drop_database, fresh_database
from benchkit.preload import INTERVAL_S, preload

RESULTS = Path(__file__).parent / "results"


async def bare_copy(bootstrap: str, topic: str, url: str, expected: int) -> float:
    """Seconds for a plain consumer to COPY every reading into an unindexed table."""
    conn = await asyncpg.connect(url)
    await conn.execute(
        "CREATE TABLE bare (device_id text, ts timestamptz, seq bigint, energy_kwh float8,"
        " power_kw float8)"
    )
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
        group_id=f"bare-{uuid.uuid4().hex[:8]}", enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )  # fmt: skip
    await consumer.start()
    started, done = time.perf_counter(), 0
    try:
        while done < expected:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            rows = []
            for records in batches.values():
                for record in records:
                    r = Reading.model_validate_json(record.value)
                    rows.append((r.device_id, r.ts_utc, r.seq, r.energy.value, r.power.value))
            if rows:
                await conn.copy_records_to_table("bare", records=rows)
                await consumer.commit()
                done += len(rows)
        return time.perf_counter() - started
    finally:
        await consumer.stop()
        await conn.close()


def start_worker(env: dict[str, str], log: Path, profile: Path | None) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "stream.worker"]
    if profile is not None:
        renderer = "html" if profile.suffix == ".html" else "text"
        command[1:1] = ["-m", "pyinstrument", "-r", renderer, "-o", str(profile)]
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def worker_run(
    endpoints: localcluster.Endpoints,
    namespace: str,
    url: str,
    expected: int,
    profile: Path | None = None,
) -> tuple[float, float]:
    """Seconds from starting a worker to every reading in the database, and the worker's CPU
    µs per reading once readings arrive (start-up excluded): a figure a loaded machine
    disturbs far less than the rate."""
    env = {
        **os.environ,
        "WATTSTREAM_STREAM_KAFKA_BOOTSTRAP": endpoints.kafka_bootstrap,
        "WATTSTREAM_STREAM_DATABASE_URL": url,
        "WATTSTREAM_STREAM_APP_ID": f"bench-{namespace}",
        "WATTSTREAM_STREAM_TOPIC_NAMESPACE": namespace,
        "WATTSTREAM_STREAM_DATA_DIR": f"/tmp/wattstream-bench-{namespace}",
    }
    log = Path(f"/tmp/wattstream-bench-{namespace}.log")
    worker = start_worker(env, log, profile)
    conn = await asyncpg.connect(url)
    started = time.perf_counter()
    process = psutil.Process(worker.pid)
    first: tuple[int, float] | None = None  # (readings stored, worker CPU s) when rows appear
    cpu_us = 0.0
    try:
        while (stored := await conn.fetchval("SELECT count(*) FROM readings")) < expected:
            if worker.poll() is not None:
                raise RuntimeError(f"worker exited; see {log}")
            if first is None and stored > 0:
                first = stored, _cpu_s(process)
            await asyncio.sleep(0.5)
        if first is not None and stored > first[0]:
            cpu_us = 1e6 * (_cpu_s(process) - first[1]) / (stored - first[0])
        return time.perf_counter() - started, cpu_us
    finally:
        await conn.close()
        # SIGINT lets pyinstrument write its report as the worker stops.
        worker.send_signal(signal.SIGINT if profile is not None else signal.SIGTERM)
        worker.wait(timeout=60)


async def run(devices: int, readings: int, profile: Path | None) -> dict[str, object]:
    endpoints = await asyncio.to_thread(localcluster.up, localcluster.ClusterSettings())
    namespace = f"bench{uuid.uuid4().hex[:6]}"
    topics = KafkaTopics(namespace)
    await localcluster.ensure_topics(endpoints.kafka_bootstrap, topics.specs())
    sent = await preload(endpoints.kafka_bootstrap, topics, devices, readings)
    worker_db = await fresh_database(endpoints, "bench_catchup")
    bare_db = await fresh_database(endpoints, "bench_bare")
    try:
        await asyncio.to_thread(migrate.upgrade, worker_db)
        bare_s = await bare_copy(endpoints.kafka_bootstrap, topics.readings, bare_db, sent)
        worker_s, cpu_us = await worker_run(endpoints, namespace, worker_db, sent, profile)
        conn = await asyncpg.connect(worker_db)
        hourly = await conn.fetchval("SELECT count(*) FROM hourly")
        forecasts = await conn.fetchval("SELECT count(*) FROM forecasts")
        await conn.close()
    finally:
        await drop_database(endpoints, worker_db)
        await drop_database(endpoints, bare_db)
    return {
        "benchmark": "worker_catchup",
        "devices": devices,
        "readings": sent,
        "simulated_span_hours": round(sent / devices * INTERVAL_S / 3600, 1),
        "worker_events_per_s": round(sent / worker_s),
        "worker_cpu_us_per_reading": round(cpu_us, 1),
        "bare_consume_copy_per_s": round(sent / bare_s),
        "ratio_worker_to_bare": round(bare_s / worker_s, 3),
        "worker_rows": {"hourly": hourly, "forecasts": forecasts},
        "machine": {"python": platform.python_version(), "cores": os.cpu_count()},
        "at": datetime.now(UTC).isoformat(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Stream worker catch-up vs bare consume+COPY")
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--readings", type=int, default=200_000)
    parser.add_argument(
        "--profile", type=Path, help="run the worker under pyinstrument, report to this file"
    )
    args = parser.parse_args()
    result = asyncio.run(run(args.devices, args.readings, args.profile))
    print(f"readings                  {result['readings']:>12,}")
    print(f"bare consume + COPY       {result['bare_consume_copy_per_s']:>12,} events/s")
    print(f"stream worker             {result['worker_events_per_s']:>12,} events/s")
    print(f"worker / bare             {result['ratio_worker_to_bare']:>12.3f}")
    print(f"worker CPU per reading    {result['worker_cpu_us_per_reading']:>12.1f} µs")
    print(f"worker rows               {result['worker_rows']}")
    if args.profile is not None:
        print(f"profile                   {args.profile} (figures not saved: profiled)")
        return
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "worker_catchup.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
