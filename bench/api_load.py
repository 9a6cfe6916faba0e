"""API under load: latency and throughput of ``/live`` and the aggregate endpoint, and live
fan-out to many websocket clients; optionally against a baseline revision in the same run.

Runs the API as its own process (``python -m api``) on the local cluster, against a fresh
database holding ``--devices`` devices x ``--days`` days of 15-minute readings (the storage
layer builds the rollups) and its own namespaced Kafka topics. Every layer in front of a route
runs as in production: reads need a key (the bench sends one) and the rate limit is on (set
high enough never to refuse). With ``--baseline REF`` (a git revision, ``main`` say) a second
API runs the same way from that revision's tree (``git archive``), next to this tree's, on the
same database: the machine is shared, so only figures measured back to back compare.

1. **Requests**: ``--requests`` requests per shape at ``--concurrency`` keep-alive
   connections: ``/live`` (the HTTP stack alone), ``1h`` aggregates over 24 hours, ``1d`` over
   7 days, ``15m`` over 24 hours (each a random device, in its own zone). The load comes from
   :mod:`benchkit.loadgen`, a light client in its own process (an in-process httpx client
   costs as much CPU per request as the server and queues behind it); its CPU per request is
   reported with the server's (``getrusage``/``psutil``: CPU time, which a loaded machine
   disturbs less than latency). Each shape runs in ``--rounds`` rounds, the two APIs in
   alternating order, so drifts in the machine's load hit both. p50/p99/mean and requests/s
   per shape and API.
2. **Profile** (``--profile DIR``): after the measured rounds, py-spy samples each API for
   ``--profile-seconds`` under ``/live`` load; the raw stacks go to DIR and the top functions
   (self and total share of the samples) into the results.
3. **Fan-out**: ``--clients`` websocket clients subscribed to every reading, held by
   ``--client-processes`` processes of their own (:mod:`benchkit.wsclients`); the bench
   produces ``--rate`` readings/s to Kafka for ``--seconds``, to each API in turn. Delivered
   frames, dropped (expected minus delivered; ``coalesced`` says how many of those were
   replaced by a newer value of the same device), delivery latency (Kafka produce to client
   receive, a sample of 20 frames per client), the API's and the clients' CPU per delivered
   frame, and the API's RSS before and during the fan-out.

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
import secrets
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx
import psutil
from aiokafka import AIOKafkaProducer

from schema.topics import KafkaTopics
from schema.wire import Energy, Power, Reading
from wattstream import localcluster, migrate

from benchkit import pyspy
from benchkit.cluster import drop_database, free_port, fresh_database
from benchkit.machine import describe
from benchkit.stats import percentile

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
LOADGEN = Path(__file__).parent / "benchkit" / "loadgen.py"
WSCLIENTS = Path(__file__).parent / "benchkit" / "wsclients.py"
ZONES = ["Europe/Berlin", "Asia/Kolkata", "America/New_York", "Australia/Sydney", "UTC"]
SHAPES = ("live", "1h_24h", "1d_7d", "15m_24h")
BENCH_KEY = "bench-read-" + secrets.token_hex(16)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


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


def extract_tree(ref: str, into: Path) -> Path:
    """The files of revision ``ref`` of this repository under ``into`` (no .git)."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", ref],
        check=True,
        capture_output=True,
        timeout=120,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


@dataclass
class Api:
    """One API process under test: ``name`` (``baseline``/``candidate``) and its tree."""

    name: str
    tree: Path
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, endpoints: localcluster.Endpoints, url: str, namespace: str) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": str(self.tree),
            "WATTSTREAM_API_DATABASE_URL": url,
            "WATTSTREAM_API_PORT": str(self.port),
            "WATTSTREAM_API_KAFKA_BOOTSTRAP": endpoints.kafka_bootstrap,
            "WATTSTREAM_API_MQTT_HOST": endpoints.mqtt_host,
            "WATTSTREAM_API_MQTT_PORT": str(endpoints.mqtt_port),
            "WATTSTREAM_API_TOPIC_NAMESPACE": namespace,
            "WATTSTREAM_API_WS_MAX_CLIENTS": "100000",
            "WATTSTREAM_API_WS_MAX_CLIENTS_PER_KEY": "100000",
            # Every layer of production: a key check on reads, the rate limit (never reached).
            "WATTSTREAM_API_REQUIRE_READ_KEY": "true",
            "WATTSTREAM_API_READ_API_KEYS": BENCH_KEY,
            "WATTSTREAM_API_RATE_LIMIT_PER_S": "1000000",
            "WATTSTREAM_API_RATE_LIMIT_BURST": "1000000",
        }
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "api", "--log-level", "warning"],
                env=env,
                cwd=self.tree,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(base_url=self.base) as http:
            while time.monotonic() < deadline:
                if self.process is None or self.process.poll() is not None:
                    raise RuntimeError(f"the {self.name} API exited (log: {self.log})")
                try:
                    ready = await http.get("/ready", timeout=3)
                    if ready.status_code == 200 and ready.json()["live_feed"]["assigned"]:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.3)
        raise RuntimeError(f"the {self.name} API was not ready within 60 s (log: {self.log})")


# ---------------------------------------------------------------------------------- requests
@dataclass
class Tally:
    """One API's requests of one shape, over every round."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    wall_s: float = 0.0
    client_cpu_s: float = 0.0
    server_cpu_s: float = 0.0

    def add(self, result: dict[str, Any], server_cpu_s: float) -> None:
        self.latencies_ms += result["latencies_ms"]
        self.errors += result["errors"]
        self.wall_s += result["wall_s"]
        self.client_cpu_s += result["cpu_s"]
        self.server_cpu_s += server_cpu_s

    def summary(self) -> dict[str, Any]:
        n = len(self.latencies_ms)
        return {
            "requests": n,
            "errors": self.errors,
            "p50_ms": round(percentile(self.latencies_ms, 0.5), 2),
            "p99_ms": round(percentile(self.latencies_ms, 0.99), 2),
            "mean_ms": round(statistics.fmean(self.latencies_ms), 2),
            "requests_per_s": round(n / self.wall_s),
            "server_cpu_us_per_request": round(self.server_cpu_s / n * 1e6),
            "client_cpu_us_per_request": round(self.client_cpu_s / n * 1e6),
        }


def request_paths(shape: str, devices: int, count: int, rng: random.Random) -> list[str]:
    if shape == "live":
        return ["/live"] * count
    bucket, span = {
        "1h_24h": ("1h", timedelta(hours=24)),
        "1d_7d": ("1d", timedelta(days=7)),
        "15m_24h": ("15m", timedelta(hours=24)),
    }[shape]
    now = datetime.now(UTC)
    start, end = (now - span).isoformat(), now.isoformat()
    query = urlencode({"bucket": bucket, "tz": "device", "start": start, "end": end})
    return [
        f"/api/v1/devices/dev-{rng.randrange(devices):05d}/aggregates?{query}" for _ in range(count)
    ]


async def drive(api: Api, paths: list[str], concurrency: int) -> tuple[dict[str, Any], float]:
    """The load client's result against ``api``, and the API's CPU seconds meanwhile."""
    job = {
        "host": "127.0.0.1",
        "port": api.port,
        "concurrency": concurrency,
        "paths": paths,
        "headers": {"X-API-Key": BENCH_KEY},
    }
    client = await asyncio.create_subprocess_exec(
        sys.executable,
        str(LOADGEN),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    cpu_before = cpu_s(api.pid)
    out, _ = await asyncio.wait_for(client.communicate(json.dumps(job).encode()), timeout=300)
    server = cpu_s(api.pid) - cpu_before  # includes the client's start-up: idle for the API
    if client.returncode != 0:
        raise RuntimeError(f"the load client failed against the {api.name} API")
    result: dict[str, Any] = json.loads(out)
    return result, server


async def request_load(
    apis: list[Api], devices: int, requests: int, concurrency: int, rounds: int
) -> dict[str, dict[str, Any]]:
    rng = random.Random(7)
    for api in apis:  # warm-up: connections, pool, caches
        for shape in SHAPES:
            await drive(api, request_paths(shape, devices, 200, rng), concurrency)
    tallies = {api.name: {shape: Tally() for shape in SHAPES} for api in apis}
    per_round = max(1, requests // rounds)
    for round_ in range(rounds):
        order = apis if round_ % 2 == 0 else apis[::-1]
        for shape in SHAPES:
            paths = request_paths(shape, devices, per_round, rng)
            for api in order:  # the same requests for each API
                result, server = await drive(api, paths, concurrency)
                tallies[api.name][shape].add(result, server)
    return {
        name: {shape: tally.summary() for shape, tally in shapes.items()}
        for name, shapes in tallies.items()
    }


async def profile(
    api: Api, shape: str, args: argparse.Namespace, rng: random.Random
) -> dict[str, Any]:
    """py-spy over ``api`` while the load client keeps it busy with ``shape`` for
    ``--profile-seconds``."""
    raw = args.profile / f"api_load_{api.name}_{shape}.txt"
    spy = pyspy.record(api.pid, args.profile_seconds, raw)
    deadline = time.monotonic() + args.profile_seconds + 2
    while time.monotonic() < deadline and spy.poll() is None:
        await drive(api, request_paths(shape, args.devices, 500, rng), args.concurrency)
    await asyncio.to_thread(spy.wait, 60)
    return {"raw": str(raw), **pyspy.top_functions(raw, args.profile_top)}


# ---------------------------------------------------------------------------------- fan-out
async def start_clients(
    api: Api, clients: int, processes: int, expected: int, timeout_s: float
) -> list[asyncio.subprocess.Process]:
    """``clients`` websocket clients in ``processes`` processes (:mod:`benchkit.wsclients`),
    each subscribed to every reading; returns once every one has its hello."""
    children = []
    for index in range(processes):
        share = clients // processes + (1 if index < clients % processes else 0)
        job = {
            "url": f"ws://127.0.0.1:{api.port}/api/v1/ws/live?kinds=readings",
            "clients": share,
            "headers": {"X-API-Key": BENCH_KEY},
            "expected": expected,
            "timeout_s": timeout_s,
            "samples_per_client": 20,
        }
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            str(WSCLIENTS),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert child.stdin is not None
        child.stdin.write(json.dumps(job).encode() + b"\n")
        await child.stdin.drain()
        children.append(child)
    for child in children:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), timeout=120)
        if line.strip() != b"ready":
            raise RuntimeError(f"a websocket client process failed against the {api.name} API")
    return children


async def fan_out(
    api: Api,
    topics: KafkaTopics,
    bootstrap: str,
    *,
    clients: int,
    processes: int,
    rate: float,
    seconds: float,
) -> dict[str, Any]:
    rss_before = rss_mib(api.pid)
    total = int(rate * seconds)
    drain_s = 15.0
    connect_started = time.perf_counter()
    children = await start_clients(api, clients, processes, total, seconds + drain_s + 15)
    connect_s = time.perf_counter() - connect_started
    rss_connected = rss_mib(api.pid)
    sent_at: dict[int, float] = {}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2)
    await producer.start()
    devices = 50
    rss_peak = rss_connected
    api_cpu_before = cpu_s(api.pid)
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
            sent_at[seq] = time.monotonic()  # system-wide: the client processes' clock
            await producer.send(topics.readings, reading.to_json(), key=device.encode())
            if seq % max(1, int(rate)) == 0:
                rss_peak = max(rss_peak, rss_mib(api.pid))
        await producer.flush()
    finally:
        await producer.stop()
    produce_s = time.perf_counter() - started
    # The clients end once they have every event (or at their bounded time-out).
    results = []
    for child in children:
        out, _ = await asyncio.wait_for(child.communicate(), timeout=drain_s + 60)
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
        rss_peak = max(rss_peak, rss_mib(api.pid))
    api_cpu = cpu_s(api.pid) - api_cpu_before
    delivered = sum(r["delivered"] for r in results)
    coalesced = sum(r["coalesced"] for r in results)
    client_cpu = sum(r["cpu_s"] for r in results)
    received = [pair for r in results for pair in r["received_at"]]
    latencies = [(at - sent_at[seq]) * 1000 for seq, at in received if seq in sent_at]
    expected = total * clients
    return {
        "clients": clients,
        "client_processes": processes,
        "events_produced": total,
        "rate_per_s": rate,
        "produce_s": round(produce_s, 2),
        "connect_s": round(connect_s, 2),
        "frames_expected": expected,
        "frames_delivered": delivered,
        "frames_dropped": expected - delivered,
        "of_which_coalesced": coalesced,
        "delivered_per_s": round(delivered / max(produce_s, 1e-9)),
        "latency_p50_ms": round(percentile(latencies, 0.5), 1) if latencies else None,
        "latency_p99_ms": round(percentile(latencies, 0.99), 1) if latencies else None,
        "api_cpu_us_per_frame": round(api_cpu / max(delivered, 1) * 1e6, 1),
        "client_cpu_us_per_frame": round(client_cpu / max(delivered, 1) * 1e6, 1),
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
    scratch = Path(tempfile.mkdtemp(prefix="api_load_"))
    apis: list[Api] = []
    if args.baseline:
        tree = extract_tree(args.baseline, scratch / "baseline")
        apis.append(Api("baseline", tree, free_port(), scratch / "baseline.log"))
    apis.append(Api("candidate", REPO, free_port(), scratch / "candidate.log"))
    print(f"loading {args.devices} devices x {args.days} days of 15-minute readings ...")
    url = await make_database(endpoints, args.devices, args.days)
    RESULTS.mkdir(exist_ok=True)
    print(f"API logs: {scratch}")
    try:
        for api in apis:
            api.start(endpoints, url, namespace)
        for api in apis:
            await api.wait_ready()
        print(
            f"requests: {args.requests} per shape and API at concurrency {args.concurrency}, "
            f"{args.rounds} rounds"
        )
        requests = await request_load(
            apis, args.devices, args.requests, args.concurrency, args.rounds
        )
        profiles: dict[str, dict[str, Any]] = {api.name: {} for api in apis} if args.profile else {}
        for shape in args.profile_shapes.split(",") if args.profile else ():
            for api in apis:
                print(f"profiling the {api.name} API under {shape} ({args.profile_seconds:g} s)")
                profiles[api.name][shape] = await profile(api, shape, args, random.Random(11))
        fanout = {}
        for api in apis if args.fanout else ():
            print(
                f"fan-out ({api.name}): {args.clients} clients, {args.rate:g} events/s "
                f"for {args.seconds:g} s"
            )
            fanout[api.name] = await fan_out(
                api,
                topics,
                endpoints.kafka_bootstrap,
                clients=args.clients,
                processes=args.client_processes,
                rate=args.rate,
                seconds=args.seconds,
            )
    finally:
        for api in apis:
            api.stop()
        await drop_database(endpoints, url)
    return {
        "benchmark": "api_load",
        "parameters": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "revisions": {
            "baseline": args.baseline,
            "candidate": "this tree",
        },
        "requests": requests,
        "profiles": profiles,
        "fanout": fanout,
        "machine": {**describe(), "python": platform.python_version()},
        "at": datetime.now(UTC).isoformat(),
    }


def print_result(result: dict[str, Any]) -> None:
    header = (
        f"\n{'API':<10}{'shape':<9}{'p50 ms':>8}{'p99 ms':>8}{'mean':>7}{'req/s':>7}"
        f"{'err':>5}{'server us/req':>15}{'client us/req':>15}"
    )
    print(header)
    for shape in SHAPES:
        for name, shapes in result["requests"].items():
            row = shapes[shape]
            print(
                f"{name:<10}{shape:<9}{row['p50_ms']:>8.2f}{row['p99_ms']:>8.2f}"
                f"{row['mean_ms']:>7.2f}{row['requests_per_s']:>7}{row['errors']:>5}"
                f"{row['server_cpu_us_per_request']:>15}{row['client_cpu_us_per_request']:>15}"
            )
    for name, shapes in result["profiles"].items():
        for shape, found in shapes.items():
            print(f"\nprofile of the {name} API, {shape} ({found['samples']} samples), self:")
            for entry in found["self"][:10]:
                print(f"  {entry['percent']:>5.1f} %  {entry['function']}")
    for name, f in result["fanout"].items():
        print(
            f"\nfan-out ({name}) to {f['clients']} clients at {f['rate_per_s']:g} events/s: "
            f"{f['frames_delivered']:,} of {f['frames_expected']:,} frames delivered, "
            f"{f['frames_dropped']:,} dropped ({f['of_which_coalesced']:,} coalesced), "
            f"{f['delivered_per_s']:,} frames/s; API {f['api_cpu_us_per_frame']} us CPU per frame"
        )
        print(
            f"delivery latency p50 {f['latency_p50_ms']} ms, p99 {f['latency_p99_ms']} ms; "
            f"API RSS {f['api_rss_mib']['before']} MiB idle, {f['api_rss_mib']['connected']} MiB "
            f"with clients, {f['api_rss_mib']['peak']} MiB peak"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--requests", type=int, default=2000, help="per shape and API")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2, help="alternating the APIs' order")
    parser.add_argument("--baseline", metavar="REF", help="also run this git revision's API")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="py-spy each API into DIR")
    parser.add_argument("--profile-seconds", type=float, default=20.0)
    parser.add_argument(
        "--profile-shapes", default="live", help=f"comma-separated, of {', '.join(SHAPES)}"
    )
    parser.add_argument("--profile-top", type=int, default=15)
    parser.add_argument("--fanout", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--rate", type=float, default=10.0, help="events/s produced to Kafka")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    endpoints = localcluster.up(localcluster.ClusterSettings())  # reused when it runs
    result = asyncio.run(run(args, endpoints))
    print_result(result)
    (RESULTS / "api_load.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
