"""API under load: latency of the aggregate endpoint, and live fan-out to many websocket clients.

Runs the API as its own process (``python -m api``) on the local cluster, against a fresh
database holding ``--devices`` devices x ``--days`` days of 15-minute readings (the storage
layer builds the rollups) and its own namespaced Kafka topics. Two parts:

1. **Aggregates**: ``--requests`` requests at ``--concurrency``, each a random device in its
   own zone: ``1h`` over 24 hours, ``1d`` over 7 days, ``15m`` over 24 hours. p50/p99 per
   bucket, against a baseline in the same run: ``/live`` at the same concurrency (the cost of
   the HTTP stack alone).
2. **Fan-out**: ``--clients`` websocket clients subscribed to every reading; the bench
   produces ``--rate`` readings/s to Kafka for ``--seconds``. Delivered frames, dropped
   (expected minus delivered; ``coalesced`` says how many of those were replaced by a newer
   value of the same device), delivery latency (Kafka produce to client receive) and the API
   process's RSS before and during the fan-out.

Prints the figures and writes bench/results/api_load.json. Defaults are sized for a 2-core
machine shared with other work; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer
from websockets.asyncio.client import ClientConnection, connect

from schema.topics import KafkaTopics
from schema.wire import Energy, Power, Reading
from wattstream import localcluster, migrate

from benchkit.cluster import drop_database, free_port, fresh_database

RESULTS = Path(__file__).parent / "results"
ZONES = ["Europe/Berlin", "Asia/Kolkata", "America/New_York", "Australia/Sydney", "UTC"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ------------------------------------------------------------------------------ environment
async def make_database(endpoints: localcluster.Endpoints, devices: int, days: int) -> str:
    url = await fresh_database(endpoints, "wattstream_bench")
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    conn = await asyncpg.connect(url)
    try:
        await asyncio.to_thread(migrate.upgrade, url)
        for d in range(devices):
            tz = ZONES[d % len(ZONES)]
            rows = []
            ts, seq = start, 0
            while ts < end:
                rows.append((f"dev-{d:05d}", ts, seq, tz, 900, 0.1 + (seq % 96) / 960, 0.5))
                ts, seq = ts + timedelta(minutes=15), seq + 1
            # One statement per device: the rollup triggers run once per statement.
            await conn.copy_records_to_table(
                "readings",
                records=rows,
                columns=["device_id", "ts", "seq", "tz", "interval_s", "energy_kwh", "power_kw"],
            )
    except BaseException:
        await conn.close()
        await drop_database(endpoints, url)
        raise
    await conn.close()
    return url


def start_api(
    endpoints: localcluster.Endpoints, url: str, namespace: str, port: int, log: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "WATTSTREAM_API_DATABASE_URL": url,
        "WATTSTREAM_API_PORT": str(port),
        "WATTSTREAM_API_KAFKA_BOOTSTRAP": endpoints.kafka_bootstrap,
        "WATTSTREAM_API_MQTT_HOST": endpoints.mqtt_host,
        "WATTSTREAM_API_MQTT_PORT": str(endpoints.mqtt_port),
        "WATTSTREAM_API_TOPIC_NAMESPACE": namespace,
        "WATTSTREAM_API_WS_MAX_CLIENTS": "100000",
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "api", "--log-level", "warning"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def wait_ready(base: str, api: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=base) as http:
        while time.monotonic() < deadline:
            if api.poll() is not None:
                raise RuntimeError(f"the API exited with {api.returncode}")
            try:
                ready = await http.get("/ready", timeout=3)
                if ready.status_code == 200 and ready.json()["live_feed"]["assigned"]:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.3)
    raise RuntimeError("the API was not ready within 60 s")


# ------------------------------------------------------------------------------- aggregates
async def timed_requests(
    base: str, make_request: Any, requests: int, concurrency: int
) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as http:

        async def worker() -> None:
            nonlocal errors
            while not queue.empty():
                i = queue.get_nowait()
                path, params = make_request(i)
                started = time.perf_counter()
                response = await http.get(path, params=params)
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors


async def aggregate_latency(
    base: str, devices: int, requests: int, concurrency: int
) -> dict[str, Any]:
    now = datetime.now(UTC)
    rng = random.Random(7)
    shapes = {
        "1h_24h": ("1h", timedelta(hours=24)),
        "1d_7d": ("1d", timedelta(days=7)),
        "15m_24h": ("15m", timedelta(hours=24)),
    }
    out: dict[str, Any] = {}
    await timed_requests(base, lambda i: ("/live", {}), 200, concurrency)  # warm-up
    started = time.perf_counter()
    live, errors = await timed_requests(base, lambda i: ("/live", {}), requests, concurrency)
    elapsed = time.perf_counter() - started
    out["baseline_live"] = {**summarise(live, errors), "requests_per_s": round(requests / elapsed)}
    for name, (bucket, span) in shapes.items():

        def request(i: int, bucket: str = bucket, span: timedelta = span) -> tuple[str, Any]:
            device = f"dev-{rng.randrange(devices):05d}"
            params = {
                "bucket": bucket,
                "tz": "device",
                "start": (now - span).isoformat(),
                "end": now.isoformat(),
            }
            return f"/api/v1/devices/{device}/aggregates", params

        await timed_requests(base, request, max(50, requests // 10), concurrency)  # warm-up
        started = time.perf_counter()
        latencies, errors = await timed_requests(base, request, requests, concurrency)
        elapsed = time.perf_counter() - started
        out[name] = {**summarise(latencies, errors), "requests_per_s": round(requests / elapsed)}
    return out


def summarise(latencies: list[float], errors: int) -> dict[str, Any]:
    return {
        "requests": len(latencies),
        "errors": errors,
        "p50_ms": round(percentile(latencies, 50), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "mean_ms": round(statistics.fmean(latencies), 2) if latencies else None,
    }


# ---------------------------------------------------------------------------------- fan-out
@dataclass
class ClientTally:
    delivered: int = 0
    coalesced: int = 0
    latencies_ms: list[float] = field(default_factory=list)


async def listen(ws: ClientConnection, tally: ClientTally, sent_at: dict[int, float]) -> None:
    async for message in ws:
        text = str(message)
        if '"type":"event"' not in text:
            continue
        tally.delivered += 1
        frame = json.loads(text)
        tally.coalesced += frame.get("coalesced", 0)
        sent = sent_at.get(frame["data"]["seq"])
        if sent is not None and len(tally.latencies_ms) < 2000:
            tally.latencies_ms.append((time.perf_counter() - sent) * 1000)


async def fan_out(
    base: str,
    api_pid: int,
    topics: KafkaTopics,
    bootstrap: str,
    *,
    clients: int,
    rate: float,
    seconds: float,
) -> dict[str, Any]:
    rss_before = rss_mib(api_pid)
    url = f"ws://{base.removeprefix('http://')}/api/v1/ws/live?kinds=readings"
    sockets: list[ClientConnection] = []
    connect_started = time.perf_counter()
    for start in range(0, clients, 100):  # connect in waves, not in one SYN storm
        batch = await asyncio.gather(
            *(
                connect(url, max_queue=None, open_timeout=30)
                for _ in range(start, min(clients, start + 100))
            )
        )
        sockets.extend(batch)
    for ws in sockets:
        await ws.recv()  # hello
    connect_s = time.perf_counter() - connect_started
    rss_connected = rss_mib(api_pid)
    tallies = [ClientTally() for _ in sockets]
    sent_at: dict[int, float] = {}
    listeners = [
        asyncio.create_task(listen(ws, t, sent_at)) for ws, t in zip(sockets, tallies, strict=True)
    ]

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2)
    await producer.start()
    devices = 50
    total = int(rate * seconds)
    rss_peak = rss_connected
    started = time.perf_counter()
    try:
        for seq in range(total):
            due = started + seq / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            device = f"dev-{seq % devices:05d}"
            reading = Reading(
                device_id=device,
                seq=seq,
                ts=datetime.now(UTC).replace(microsecond=0),
                tz="UTC",
                interval_s=60,
                energy=Energy(value=0.01),
                power=Power(value=0.6),
            )
            sent_at[seq] = time.perf_counter()
            await producer.send(topics.readings, reading.to_json(), key=device.encode())
            if seq % max(1, int(rate)) == 0:
                rss_peak = max(rss_peak, rss_mib(api_pid))
        await producer.flush()
    finally:
        await producer.stop()
    produce_s = time.perf_counter() - started
    # Let the last events arrive (bounded), then close everything.
    expected = total * len(sockets)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        delivered = sum(t.delivered + t.coalesced for t in tallies)
        if delivered >= expected:
            break
        await asyncio.sleep(0.2)
        rss_peak = max(rss_peak, rss_mib(api_pid))
    for task in listeners:
        task.cancel()
    await asyncio.gather(*listeners, return_exceptions=True)
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    delivered = sum(t.delivered for t in tallies)
    coalesced = sum(t.coalesced for t in tallies)
    latencies = [v for t in tallies for v in t.latencies_ms]
    return {
        "clients": len(sockets),
        "events_produced": total,
        "rate_per_s": rate,
        "produce_s": round(produce_s, 2),
        "connect_s": round(connect_s, 2),
        "frames_expected": expected,
        "frames_delivered": delivered,
        "frames_dropped": expected - delivered,
        "of_which_coalesced": coalesced,
        "delivered_per_s": round(delivered / max(produce_s, 1e-9)),
        "latency_p50_ms": round(percentile(latencies, 50), 1),
        "latency_p99_ms": round(percentile(latencies, 99), 1),
        "api_rss_mib": {
            "before": round(rss_before, 1),
            "connected": round(rss_connected, 1),
            "peak": round(rss_peak, 1),
        },
    }


# ------------------------------------------------------------------------------------- main
async def run(args: argparse.Namespace, endpoints: localcluster.Endpoints) -> dict[str, Any]:
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    topics = KafkaTopics(namespace)
    await localcluster.ensure_topics(endpoints.kafka_bootstrap, topics.specs())
    print(f"loading {args.devices} devices x {args.days} days of 15-minute readings ...")
    url = await make_database(endpoints, args.devices, args.days)
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="api_load_")) / "api.log"
    RESULTS.mkdir(exist_ok=True)
    print(f"API log: {log}")
    api = start_api(endpoints, url, namespace, port, log)
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(base, api)
        print(f"aggregates: {args.requests} requests per shape at concurrency {args.concurrency}")
        aggregates = await aggregate_latency(base, args.devices, args.requests, args.concurrency)
        print(f"fan-out: {args.clients} clients, {args.rate:g} events/s for {args.seconds:g} s")
        fanout = await fan_out(
            base,
            api.pid,
            topics,
            endpoints.kafka_bootstrap,
            clients=args.clients,
            rate=args.rate,
            seconds=args.seconds,
        )
    finally:
        api.terminate()
        try:
            api.wait(timeout=20)
        except subprocess.TimeoutExpired:
            api.kill()
            api.wait()
        await drop_database(endpoints, url)
    return {
        "benchmark": "api_load",
        "parameters": vars(args),
        "aggregates": aggregates,
        "fanout": fanout,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "at": datetime.now(UTC).isoformat(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--requests", type=int, default=1000, help="per request shape")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=10.0, help="events/s produced to Kafka")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    endpoints = localcluster.up(localcluster.ClusterSettings())  # reused when it runs
    result = asyncio.run(run(args, endpoints))

    agg = result["aggregates"]
    base = agg["baseline_live"]
    print(f"\n{'endpoint':<22}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>8}{'errors':>8}")
    print(
        f"{'/live (baseline)':<22}{base['p50_ms']:>9.2f}{base['p99_ms']:>9.2f}"
        f"{base['requests_per_s']:>8}{base['errors']:>8}"
    )
    for name in ("1h_24h", "1d_7d", "15m_24h"):
        row = agg[name]
        print(
            f"{'aggregates ' + name:<22}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}"
            f"{row['requests_per_s']:>8}{row['errors']:>8}"
        )
    f = result["fanout"]
    print(
        f"\nfan-out to {f['clients']} clients at {f['rate_per_s']:g} events/s: "
        f"{f['frames_delivered']:,} of {f['frames_expected']:,} frames delivered, "
        f"{f['frames_dropped']:,} dropped ({f['of_which_coalesced']:,} coalesced), "
        f"{f['delivered_per_s']:,} frames/s"
    )
    print(
        f"delivery latency p50 {f['latency_p50_ms']} ms, p99 {f['latency_p99_ms']} ms; "
        f"API RSS {f['api_rss_mib']['before']} MiB idle, {f['api_rss_mib']['connected']} MiB "
        f"with clients, {f['api_rss_mib']['peak']} MiB peak"
    )
    (RESULTS / "api_load.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
