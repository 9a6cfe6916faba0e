"""Catch-up: events/s of the stream worker on a preloaded ``readings`` topic, against a bare
aiokafka consume-and-COPY loop moving the same readings into a table without triggers, against
a peer stream processor doing the hourly energy sum per device, and with two worker processes
against one.

The worker does everything it does live (decode, windows per device-local hour, table state,
forecasts, health, one idempotent transaction per batch through the storage triggers), so the
ratio to bare is the price of all of that over moving bytes. The peer is a Quix Streams
application (``benchkit/quix_peer.py``: JSON, event time from ``ts``, an hourly tumbling window
per device summing the energy, RocksDB state with its changelog, at-least-once, its own consumer
group), run on ``.venv-peer`` (``make bench-peer``); without it the bench says so and runs the
rest. Right after the one-worker run, two worker processes in one consumer group (sharing the
6 partitions) catch up on the same readings, with a group, changelog and database of their own.
Every run reads the same topic of the local cluster, one after the other; rates count from
starting the process(es) to the last reading processed (stored, for the worker), start-up
included; CPU per reading counts every thread of the process(es) from their first reading on.
Prints the rates and ratios; writes bench/results/worker_catchup.json.

    python bench/worker_catchup.py --readings 1000000
    python bench/worker_catchup.py --profile /tmp/worker.html   # the worker under pyinstrument
    python bench/worker_catchup.py --no-peer --no-scale-out      # bare and one worker only
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import psutil
from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from schema.topics import KafkaTopics
from schema.wire import Reading
from wattstream import localcluster, migrate

from benchkit.cluster import drop_database, free_port, fresh_database, http_text
from benchkit.preload import INTERVAL_S, preload

RESULTS = Path(__file__).parent / "results"
PEER = Path(__file__).parent / "benchkit" / "quix_peer.py"
PEER_PYTHON = Path(__file__).parents[1] / ".venv-peer" / "bin" / "python"
PEER_MISSING = (
    "Quix Streams is not installed: `make bench-peer` creates .venv-peer with it "
    "(bench-only, pyproject.toml [dependency-groups] bench-peer)"
)


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


@dataclass(frozen=True)
class WorkerRun:
    seconds: float
    """From starting the process(es) to every reading in the database."""
    cpu_us: float
    """Their CPU µs per reading once readings arrive (start-up excluded)."""
    steady_per_s: float
    """Readings stored per second from the first stored row on (start-up excluded)."""
    counters: dict[str, float]
    """The workers' own counters, summed: seconds of their batches per phase (where a batch
    spends its time), batches, events, device states written, checkpoints."""


COUNTERS = ("batches", "events", "states_written", "checkpoints")


def worker_counters(ports: list[int]) -> dict[str, float]:
    """What the workers' ``/metrics`` say of their batches, summed over the workers."""
    figures: dict[str, float] = {}
    for port in ports:
        for family in text_string_to_metric_families(
            http_text(f"http://127.0.0.1:{port}/metrics") or ""
        ):
            for sample in family.samples:
                name = sample.name.removeprefix("wattstream_worker_").removesuffix("_total")
                if name == "phase_seconds":
                    name = f"phase_{sample.labels['phase']}_s"
                elif name not in COUNTERS:
                    continue
                figures[name] = round(figures.get(name, 0.0) + sample.value, 3)
    return figures


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


def peer_missing(python: Path) -> str | None:
    """Why the peer cannot run on ``python`` (``None``: it can)."""
    if not python.exists():
        return f"{PEER_MISSING}; {python} does not exist"
    probe = subprocess.run(
        [str(python), "-c", "import quixstreams; print(quixstreams.__version__)"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    if probe.returncode != 0:
        return f"{PEER_MISSING}; {python} cannot import it"
    return None


def peer_version(python: Path) -> str:
    probe = subprocess.run(
        [str(python), "-c", "import quixstreams; print(quixstreams.__version__)"],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return probe.stdout.strip()


def peer_run(python: Path, bootstrap: str, topic: str, expected: int, tag: str) -> dict[str, float]:
    """Seconds from starting the peer to its last reading processed and committed, its CPU µs
    per reading from its first reading on, and the windows it closed."""
    state_dir = Path(f"/tmp/wattstream-bench-peer-{tag}")
    result = Path(f"/tmp/wattstream-bench-peer-{tag}.json")
    log = Path(f"/tmp/wattstream-bench-peer-{tag}.log")
    command = [
        str(python), str(PEER), "--bootstrap", bootstrap, "--topic", topic,
        "--expected", str(expected), "--group", f"peer-{tag}", "--state-dir", str(state_dir),
        "--result", str(result),
    ]  # fmt: skip
    started = time.perf_counter()
    with log.open("wb") as out:
        peer = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        code = peer.wait(1800)
    finally:
        if peer.poll() is None:
            peer.kill()
    seconds = time.perf_counter() - started
    shutil.rmtree(state_dir, ignore_errors=True)
    if code != 0 or not result.exists():
        raise RuntimeError(f"the peer exited {code}; see {log}")
    figures = json.loads(result.read_text())
    if figures["readings"] != expected:
        raise RuntimeError(f"the peer processed {figures['readings']} of {expected}; see {log}")
    return {
        "seconds": seconds,
        "cpu_us": 1e6 * figures["cpu_s_from_first_reading"] / expected,
        "windows_closed": figures["windows_closed"],
    }


async def worker_run(
    endpoints: localcluster.Endpoints,
    namespace: str,
    url: str,
    expected: int,
    profile: Path | None = None,
    *,
    workers: int = 1,
    app_id: str | None = None,
) -> WorkerRun:
    """``workers`` worker processes (one consumer group: they share the partitions) from their
    start to every reading in the database; their CPU per reading, a figure a loaded machine
    disturbs far less than the rate, and their rate once rows appear exclude the start-up."""
    app_id = app_id or f"bench-{namespace}"
    env = {
        **os.environ,
        "WATTSTREAM_STREAM_KAFKA_BOOTSTRAP": endpoints.kafka_bootstrap,
        "WATTSTREAM_STREAM_DATABASE_URL": url,
        "WATTSTREAM_STREAM_APP_ID": app_id,
        "WATTSTREAM_STREAM_TOPIC_NAMESPACE": namespace,
    }
    started = time.perf_counter()
    processes: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    ports = [free_port() for _ in range(workers)]
    for index in range(workers):
        data = f"/tmp/wattstream-bench-{namespace}-{app_id}-{index}"
        logs.append(Path(f"{data}.log"))
        worker_env = env | {
            "WATTSTREAM_STREAM_DATA_DIR": data,
            "WATTSTREAM_STREAM_METRICS_PORT": str(ports[index]),
        }
        processes.append(start_worker(worker_env, logs[-1], profile if index == 0 else None))
    conn = await asyncpg.connect(url)
    measured = [psutil.Process(worker.pid) for worker in processes]
    # (readings stored, workers' CPU s, time) when rows appear
    first: tuple[int, float, float] | None = None
    cpu_us = steady = 0.0
    try:
        while (stored := await conn.fetchval("SELECT count(*) FROM readings")) < expected:
            for worker, log in zip(processes, logs, strict=True):
                if worker.poll() is not None:
                    raise RuntimeError(f"worker exited; see {log}")
            if first is None and stored > 0:
                first = stored, sum(_cpu_s(p) for p in measured), time.perf_counter()
            await asyncio.sleep(0.5)
        if first is not None and stored > first[0]:
            cpu_us = 1e6 * (sum(_cpu_s(p) for p in measured) - first[1]) / (stored - first[0])
            steady = (stored - first[0]) / (time.perf_counter() - first[2])
        counters = await asyncio.to_thread(worker_counters, ports)
        return WorkerRun(time.perf_counter() - started, cpu_us, steady, counters)
    finally:
        await conn.close()
        for worker in processes:
            # SIGINT lets pyinstrument write its report as the worker stops.
            worker.send_signal(signal.SIGINT if profile is not None else signal.SIGTERM)
        for worker in processes:
            worker.wait(timeout=60)


async def two_workers(
    endpoints: localcluster.Endpoints, namespace: str, expected: int
) -> WorkerRun:
    """The same readings caught up by two worker processes in one consumer group, with a group
    (app id), changelog and database of their own."""
    url = await fresh_database(endpoints, "bench_scale2")
    try:
        await asyncio.to_thread(migrate.upgrade, url)
        return await worker_run(
            endpoints, namespace, url, expected, workers=2, app_id=f"bench-{namespace}-x2"
        )
    finally:
        await drop_database(endpoints, url)


async def run(
    devices: int,
    readings: int,
    profile: Path | None,
    peer_python: Path | None,
    scale: bool,
) -> dict[str, object]:
    endpoints = await asyncio.to_thread(localcluster.up, localcluster.ClusterSettings())
    namespace = f"bench{uuid.uuid4().hex[:6]}"
    topics = KafkaTopics(namespace)
    await localcluster.ensure_topics(endpoints.kafka_bootstrap, topics.specs())
    sent = await preload(endpoints.kafka_bootstrap, topics, devices, readings)
    worker_db = await fresh_database(endpoints, "bench_catchup")
    bare_db = await fresh_database(endpoints, "bench_bare")
    peer: dict[str, object] = {"missing": "not asked for (--no-peer)"}
    try:
        await asyncio.to_thread(migrate.upgrade, worker_db)
        bare_s = await bare_copy(endpoints.kafka_bootstrap, topics.readings, bare_db, sent)
        if peer_python is not None:
            missing = await asyncio.to_thread(peer_missing, peer_python)
            if missing is not None:
                peer = {"missing": missing}
            else:
                figures = await asyncio.to_thread(
                    peer_run,
                    peer_python,
                    endpoints.kafka_bootstrap,
                    topics.readings,
                    sent,
                    namespace,
                )
                peer = {
                    "what": "Quix Streams "
                    + await asyncio.to_thread(peer_version, peer_python)
                    + ": JSON, event time from ts, hourly tumbling-window energy sum per device"
                    " (grace 5 min), RocksDB state + changelog, at-least-once, own group",
                    "events_per_s": round(sent / figures["seconds"]),
                    "cpu_us_per_reading": round(figures["cpu_us"], 1),
                    "windows_closed": figures["windows_closed"],
                }
        one = await worker_run(endpoints, namespace, worker_db, sent, profile)
        worker_s, cpu_us = one.seconds, one.cpu_us
        conn = await asyncpg.connect(worker_db)
        hourly = await conn.fetchval("SELECT count(*) FROM hourly")
        forecasts = await conn.fetchval("SELECT count(*) FROM forecasts")
        await conn.close()
    finally:
        await drop_database(endpoints, worker_db)
        await drop_database(endpoints, bare_db)
    worker_rate = round(sent / worker_s)
    peer_rate = peer.get("events_per_s")
    # Right after the one-worker run: the two runs see the same machine as far as possible.
    scaled = await two_workers(endpoints, namespace, sent) if scale else None
    return {
        "benchmark": "worker_catchup",
        "devices": devices,
        "readings": sent,
        "simulated_span_hours": round(sent / devices * INTERVAL_S / 3600, 1),
        "worker_events_per_s": worker_rate,
        "worker_cpu_us_per_reading": round(cpu_us, 1),
        "worker_events_per_s_after_start": round(one.steady_per_s),
        "worker_counters": {
            "what": "the worker's own counters at the end: seconds of its batches per phase "
            "(apply, close_and_forecast, database, publish, states, changelog = waiting for "
            "Kafka's acks of the table writes), batches, events, device states written to the "
            "table, checkpoints",
            "wall_s": round(one.seconds, 2),
            **one.counters,
        },
        "bare_consume_copy_per_s": round(sent / bare_s),
        "ratio_worker_to_bare": round(bare_s / worker_s, 3),
        "peer": peer,
        "ratio_worker_to_peer": (
            round(worker_rate / peer_rate, 3) if isinstance(peer_rate, int) else None
        ),
        "worker_rows": {"hourly": hourly, "forecasts": forecasts},
        "scale_out": None
        if scaled is None
        else {
            "what": "the same readings, the one-worker run above then two worker processes in "
            "one consumer group right after it (a fresh group, changelog and database each)",
            "one_worker_events_per_s": worker_rate,
            "two_workers_events_per_s": round(sent / scaled.seconds),
            "ratio_two_to_one": round(worker_s / scaled.seconds, 3),
            "one_worker_cpu_us_per_reading": round(cpu_us, 1),
            "two_workers_cpu_us_per_reading": round(scaled.cpu_us, 1),
            "one_worker_events_per_s_after_start": round(one.steady_per_s),
            "two_workers_events_per_s_after_start": round(scaled.steady_per_s),
        },
        "machine": {
            "python": platform.python_version(),
            "cores": os.cpu_count(),
            "load_avg_1_5_15_at_end": [round(v, 2) for v in os.getloadavg()],
        },
        "at": datetime.now(UTC).isoformat(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Stream worker catch-up vs bare consume+COPY")
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--readings", type=int, default=200_000)
    parser.add_argument(
        "--profile", type=Path, help="run the worker under pyinstrument, report to this file"
    )
    parser.add_argument(
        "--peer-python", type=Path, default=PEER_PYTHON,
        help="the interpreter with Quix Streams (default: .venv-peer, `make bench-peer`)",
    )  # fmt: skip
    parser.add_argument("--no-peer", action="store_true", help="leave out the peer")
    parser.add_argument("--no-scale-out", action="store_true", help="leave out one worker vs two")
    args = parser.parse_args()
    peer_python = None if args.no_peer else args.peer_python
    scale = not args.no_scale_out and args.profile is None
    result = asyncio.run(run(args.devices, args.readings, args.profile, peer_python, scale))
    peer = result["peer"]
    assert isinstance(peer, dict)
    print(f"readings                  {result['readings']:>12,}")
    print(f"bare consume + COPY       {result['bare_consume_copy_per_s']:>12,} events/s")
    if "missing" in peer:
        print(f"peer (Quix Streams)       NOT RUN: {peer['missing']}")
    else:
        print(f"peer (Quix Streams)       {peer['events_per_s']:>12,} events/s")
    print(f"stream worker             {result['worker_events_per_s']:>12,} events/s")
    print(f"worker / bare             {result['ratio_worker_to_bare']:>12.3f}")
    if result["ratio_worker_to_peer"] is not None:
        print(f"worker / peer             {result['ratio_worker_to_peer']:>12.3f}")
    print(f"worker CPU per reading    {result['worker_cpu_us_per_reading']:>12.1f} µs")
    if "missing" not in peer:
        print(f"peer CPU per reading      {peer['cpu_us_per_reading']:>12.1f} µs")
        print(f"peer windows closed       {peer['windows_closed']:>12,}")
    print(f"worker rows               {result['worker_rows']}")
    counters = result["worker_counters"]
    assert isinstance(counters, dict)
    phases = {k[6:-2]: v for k, v in counters.items() if k.startswith("phase_")}
    busy = sum(phases.values())
    print(f"worker batches            {counters.get('batches', 0):>12,.0f}, "
          f"states written {counters.get('states_written', 0):,.0f}, "
          f"checkpoints {counters.get('checkpoints', 0):,.0f}")  # fmt: skip
    print(
        f"worker time per phase     {busy:>12.1f} s of {counters['wall_s']:.1f} s wall: "
        + ", ".join(f"{k} {v:.1f}" for k, v in phases.items())
    )
    scaled = result["scale_out"]
    if isinstance(scaled, dict):
        print(f"1 worker process          {scaled['one_worker_events_per_s']:>12,} events/s")
        print(f"2 worker processes        {scaled['two_workers_events_per_s']:>12,} events/s")
        print(f"2 / 1                     {scaled['ratio_two_to_one']:>12.3f}")
        print(f"after start-up, 1 / 2     {scaled['one_worker_events_per_s_after_start']:>8,} / "
              f"{scaled['two_workers_events_per_s_after_start']:,} events/s")  # fmt: skip
        print(f"CPU per reading, 1 / 2    {scaled['one_worker_cpu_us_per_reading']:>8.1f} / "
              f"{scaled['two_workers_cpu_us_per_reading']:.1f} µs")  # fmt: skip
    if args.profile is not None:
        print(f"profile                   {args.profile} (figures not saved: profiled)")
        return
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "worker_catchup.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
