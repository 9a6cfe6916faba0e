"""The headline benchmark: a simulated fleet publishing through the whole pipeline
(simulator -> Mosquitto -> bridge -> Kafka -> stream worker -> PostgreSQL) for a fixed time,
and, in the same run, the ceiling of each part measured with its native tool.

Stages (each a fresh ``python -m simulator`` in live time, ``--max-ticks`` readings a device):

1. ``--devices`` devices, one reading every ``--interval-s``: the nominal load, where latency
   is measured;
2. ``--overload`` times as many devices: an offered rate above what the pipeline sustains (if
   it is not, the JSON says so), where the ceiling of the whole pipeline shows;

then the drain of whatever is still queued (at most ``--drain-max-s``).

* Sustained throughput: rows committed per second over the steady part of a stage (from
  ``--warm-up-s`` after its start to its last publish).
* End-to-end latency: in live time a reading's ``ts`` is the instant the simulator is due to
  publish it, so ``commit - ts`` over every row is publish-to-commit latency, including the
  simulator's own lag behind its schedule (every device of a fleet ticks at the same second,
  so each second starts with a burst). The commit instant is
  ``pg_xact_commit_timestamp(xmin)`` (the local cluster runs with ``track_commit_timestamp``);
  without it, ``ingested_at``, which is ``now()`` = the start of the sink's transaction, a
  little early. One machine, one clock. A subscriber on a few devices' topics measures the
  publish lag alone (``ts`` -> delivered by Mosquitto).
* CPU (percent of one core) and RSS per process, sampled each second with psutil: simulator,
  bridge, worker, mosquitto, kafka (the JVM), postgres (postmaster and all backends), and this
  script; and the machine's total, so other work on a shared machine shows.
* Ceilings, with nothing else of ours running: see :mod:`benchkit.ceilings`. The ratio is the
  pipeline's best sustained rate over the slowest part's.

Services come from the local cluster (``wattstream services up``; ``WATTSTREAM_CLUSTER_*``);
the bridge, worker and simulator environments are ``wattstream.launcher.service_processes()``'s
(so whatever ``wattstream run`` passes them, credentials included, they get here) plus this
run's own namespace, database and ports. Writes bench/results/pipeline.{json,md,png}.

    python bench/pipeline.py                      # about 7 minutes on 2 cores
    python bench/pipeline.py --devices 1000 --duration-s 60 --overload 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import paho.mqtt.client as paho
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from paho.mqtt.enums import CallbackAPIVersion

from schema.credentials import DeviceIdentities, device_password
from schema.topics import READINGS_PARTITIONS, KafkaTopics, MqttTopics
from schema.wire import Reading, decode_reading
from simulator.devices import tick_time
from simulator.fleet import build_fleet
from wattstream import launcher, localcluster, migrate
from wattstream.localcluster.kafka import KAFKA_VERSION

from benchkit import ceilings, chart, machine
from benchkit.cluster import drop_database, free_port, fresh_database, http_text
from benchkit.usage import UsageSampler

RESULTS = Path(__file__).parent / "results"
LAG_PROBE_DEVICES = 20
READY_TIMEOUT_S = 180.0


# ------------------------------------------------------------------------------ services
@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, name: str, module: str, env: Mapping[str, str], log: Path) -> Service:
        with log.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", module],
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return cls(name, process, log)

    def alive(self) -> bool:
        return self.process.poll() is None

    def check(self) -> None:
        if not self.alive():
            raise SystemExit(
                f"{self.name} exited with {self.process.returncode}:\n"
                f"{self.log.read_text(errors='replace')[-3000:]}"
            )

    def stop(self, grace_s: float = 30.0) -> None:
        if self.alive():
            self.process.terminate()
        try:
            self.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class DrainTimeout(Exception):
    """The pipeline had not committed every reading within ``--drain-max-s``."""


def wait_until(
    what: str, ready: Any, *watched: Service, timeout: float = READY_TIMEOUT_S,
    timeout_error: type[BaseException] = SystemExit,
) -> None:  # fmt: skip
    deadline = time.monotonic() + timeout
    while not ready():
        for service in watched:
            service.check()
        if time.monotonic() > deadline:
            raise timeout_error(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.25)


def metric(text: str | None, name: str, labels: str) -> float | None:
    """A sample's value from Prometheus text (``name{labels} value``)."""
    if text is None:
        return None
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


@dataclass(frozen=True)
class Environments:
    """The bridge's, the worker's and the simulator's environments for this run."""

    bridge: dict[str, str]
    worker: dict[str, str]
    simulator: dict[str, str]

    @classmethod
    def of(
        cls, settings: localcluster.ClusterSettings, namespace: str, *, database: str,
        metrics_port: int, data_dir: Path, connections: str,
    ) -> Environments:  # fmt: skip
        processes = {
            p.name: dict(p.env)
            for p in launcher.service_processes(
                localcluster.endpoints(settings),
                localcluster.load_secrets(settings.secrets_path),
                devices=1,
                api_port=free_port(),
                metrics_port=metrics_port,
            )
        }
        return cls(
            bridge={
                **processes["bridge"],
                "WATTSTREAM_BRIDGE_TOPIC_NAMESPACE": namespace,
                "WATTSTREAM_BRIDGE_MQTT_CLIENT_ID": f"bench-{namespace}",
                "WATTSTREAM_BRIDGE_MQTT_SESSION_EXPIRY_S": "600",
                "WATTSTREAM_BRIDGE_METRICS_PORT": str(metrics_port),
            },
            worker={
                **processes["stream"],
                "WATTSTREAM_STREAM_DATABASE_URL": database,
                "WATTSTREAM_STREAM_APP_ID": f"bench-{namespace}",
                "WATTSTREAM_STREAM_TOPIC_NAMESPACE": namespace,
                "WATTSTREAM_STREAM_DATA_DIR": str(data_dir),
            },
            simulator={
                **processes["simulator"],
                "WATTSTREAM_SIM_TOPIC_NAMESPACE": namespace,
                "WATTSTREAM_SIM_BACKFILL": "0",
                "WATTSTREAM_SIM_CONNECTIONS": connections,
                "WATTSTREAM_SIM_PROGRESS_S": "10",
            },
        )

    def mqtt_auth(self, prefix: str) -> ceilings.MqttAuth:
        env = self.bridge if prefix == "BRIDGE" else self.simulator
        return ceilings.MqttAuth(
            env.get(f"WATTSTREAM_{prefix}_MQTT_USERNAME"),
            env.get(f"WATTSTREAM_{prefix}_MQTT_PASSWORD"),
        )


# ------------------------------------------------------------------------------ lag probe
class LagProbe:
    """Subscribes to a few devices' reading topics: ``ts`` -> delivered by Mosquitto, i.e. the
    simulator's lag behind its schedule plus the broker hop."""

    def __init__(self, host: str, port: int, topics: list[str], auth: ceilings.MqttAuth) -> None:
        self.lags_s: list[tuple[float, float]] = []
        self._lock = threading.Lock()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-lag-{port}")
        if auth.username:
            self._client.username_pw_set(auth.username, auth.password)
        self._client.on_connect = lambda c, _u, _f, _r, _p: c.subscribe([(t, 0) for t in topics])
        self._client.on_message = self._on_message
        self._client.connect(host, port)
        self._client.loop_start()

    def _on_message(self, _c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        now = time.time()
        with contextlib.suppress(ValueError):
            ts = Reading.model_validate_json(message.payload).ts_utc.timestamp()
            with self._lock:
                self.lags_s.append((ts, now - ts))

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


# ------------------------------------------------------------------------------ stages
@dataclass
class Stage:
    name: str
    devices: int
    interval_s: int
    ticks: int
    began: float = 0.0
    """Wall clock when the simulator was started."""
    ended: float = 0.0
    """Wall clock when it had published its last reading and exited."""
    published: int | None = None
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def offered_per_s(self) -> float:
        return self.devices / self.interval_s

    @property
    def expected(self) -> int:
        return self.devices * self.ticks


def run_stage(stage: Stage, env: Mapping[str, str], logs: Path, services: list[Service]) -> None:
    log = logs / f"simulator-{stage.name}.log"
    stage_env = {
        **env,
        "WATTSTREAM_SIM_DEVICES": str(stage.devices),
        "WATTSTREAM_SIM_INTERVAL_S": str(stage.interval_s),
        "WATTSTREAM_SIM_MAX_TICKS": str(stage.ticks),
        "WATTSTREAM_SIM_CLIENT_ID_PREFIX": f"bench-{stage.name}-{uuid.uuid4().hex[:4]}",
    }
    # The broker must know the fleet's identities before it connects (ACL: own topics only).
    launcher.provision_simulator(
        localcluster.ClusterSettings(), launcher.ServiceProcess("simulator", "simulator", stage_env)
    )
    stage.began = time.time()
    simulator = Service.start("simulator", "simulator", stage_env, log)
    services.append(simulator)
    limit = stage.ticks * stage.interval_s + 300
    wait_until(f"the {stage.name} simulator", lambda: not simulator.alive(), *services[:-1],
               timeout=limit)  # fmt: skip
    stage.ended = time.time()
    services.remove(simulator)
    if simulator.process.returncode != 0:
        simulator.check()
        raise SystemExit(f"simulator exited with {simulator.process.returncode}; see {log}")
    found = re.search(r"published (\d+) readings from", log.read_text(errors="replace"))
    stage.published = int(found.group(1)) if found else None
    print(
        f"  {stage.name}: {stage.devices} devices x {stage.ticks} readings in "
        f"{stage.ended - stage.began:.0f} s (published {stage.published})",
        flush=True,
    )


async def committed_count(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM readings"))
    finally:
        await conn.close()


async def fetch_times(url: str) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    """Every row's event time and commit time (epoch seconds), the commit time's source, and
    each row's device id."""
    conn = await asyncpg.connect(url)
    try:
        tracked = await conn.fetchval("SHOW track_commit_timestamp") == "on"
        commit = "pg_xact_commit_timestamp(xmin)" if tracked else "ingested_at"
        rows = await conn.fetch(
            f"SELECT extract(epoch FROM ts)::float8, extract(epoch FROM {commit})::float8,"
            " extract(epoch FROM ingested_at)::float8, device_id FROM readings"
        )
    finally:
        await conn.close()
    data = np.array([tuple(r)[:3] for r in rows], dtype=np.float64).reshape(-1, 3)
    committed = np.where(np.isnan(data[:, 1]), data[:, 2], data[:, 1])
    source = commit if tracked else "ingested_at (transaction start)"
    return data[:, 0], committed, source, [r[3] for r in rows]


async def kafka_times(bootstrap: str, topic: str) -> dict[tuple[str, int], float]:
    """Each reading record's Kafka timestamp (epoch seconds; the bridge's producer stamps the
    instant it sends) by (device id, event time in ms): where publish-to-commit splits into
    the way into Kafka (simulator, Mosquitto, bridge) and the stream worker's share."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(READINGS_PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        left = {tp for tp in partitions if end[tp] > 0}
        times: dict[tuple[str, int], float] = {}
        while left:
            fetched = await consumer.getmany(timeout_ms=5000, max_records=20000)
            if not fetched:
                break  # nothing more within 5 s: what was read is the answer
            for tp, records in fetched.items():
                for record in records:
                    with contextlib.suppress(ValueError):
                        reading = decode_reading(record.value or b"")
                        key = (reading.device_id, round(reading.ts_utc.timestamp() * 1000))
                        times.setdefault(key, record.timestamp / 1000)  # the first copy
                if records and records[-1].offset + 1 >= end[tp]:
                    left.discard(tp)
        return times
    finally:
        await consumer.stop()


def into_kafka_times(
    ts: np.ndarray, device_ids: list[str], times: dict[tuple[str, int], float]
) -> np.ndarray:
    """Per database row, its record's Kafka timestamp (NaN if the record was not found)."""
    return np.array(
        [times.get((d, round(t * 1000)), np.nan) for d, t in zip(device_ids, ts, strict=True)],
        dtype=np.float64,
    )


def quantiles_ms(latencies_s: np.ndarray) -> dict[str, float | None]:
    if latencies_s.size == 0:
        return {"latency_ms_p50": None, "latency_ms_p99": None, "latency_ms_max": None}
    p50, p99 = np.percentile(latencies_s, [50, 99])
    return {
        "latency_ms_p50": round(float(p50) * 1000, 1),
        "latency_ms_p99": round(float(p99) * 1000, 1),
        "latency_ms_max": round(float(latencies_s.max()) * 1000, 1),
    }


def counter_rate(sampler: UsageSampler, probe: str, since: float, until: float) -> float | None:
    """A probed counter's mean rate over ``[since, until]``."""
    points = [
        (s.at, s.probes[probe])
        for s in sampler.samples
        if since <= s.at <= until and s.probes.get(probe) is not None
    ]
    if len(points) < 2:
        return None
    (t0, v0), (t1, v1) = points[0], points[-1]
    return round((float(v1) - float(v0)) / (t1 - t0))  # type: ignore[arg-type]


def stage_figures(
    stage: Stage, ts: np.ndarray, committed: np.ndarray, *, warm_up_s: float, probe: LagProbe,
    sampler: UsageSampler, in_kafka: np.ndarray,
) -> dict[str, Any]:  # fmt: skip
    since, until = stage.began + warm_up_s, stage.ended
    in_window = (committed >= since) & (committed < until)
    due = (ts >= since) & (ts < until)
    mine = (ts >= stage.began - 1) & (ts < stage.ended)
    rate = float(in_window.sum()) / (until - since)
    published_rate = float(due.sum()) / (until - since)
    lags = np.array([lag for at, lag in list(probe.lags_s) if since <= at < until])
    split = due & ~np.isnan(in_kafka)
    return {
        "devices": stage.devices,
        "interval_s": stage.interval_s,
        "offered_per_s": stage.offered_per_s,
        "published": stage.published,
        "into_kafka_per_s": counter_rate(sampler, "bridge_forwarded_readings", since, until),
        "committed": int(mine.sum()),
        "steady_window_s": round(until - since, 1),
        "committed_per_s": round(rate),
        "due_and_committed_per_s": round(published_rate),
        "kept_up": rate >= 0.97 * stage.offered_per_s,
        **quantiles_ms(committed[due] - ts[due]),
        "publish_lag": {
            "what": "reading ts -> delivered by Mosquitto to a subscriber on "
            f"{LAG_PROBE_DEVICES} devices' topics (simulator lag + broker)",
            **quantiles_ms(lags),
        },
        "into_kafka": {
            "what": "reading ts -> its record's Kafka timestamp (simulator, Mosquitto, bridge)",
            "rows": int(split.sum()),
            **quantiles_ms(in_kafka[split] - ts[split]),
        },
        "worker": {
            "what": "the record's Kafka timestamp -> commit (the stream worker's share)",
            "rows": int(split.sum()),
            **quantiles_ms(committed[split] - in_kafka[split]),
        },
    }


def per_second(
    ts: np.ndarray, committed: np.ndarray, t0: float, sampler: UsageSampler
) -> chart.Series:
    """Committed rows per second of commit (and their 5 s moving average: the worker commits
    in batches of up to a second); latency percentiles per second of ``ts`` (publish)."""
    second = np.floor(committed - t0).astype(np.int64)
    span = int(second.max()) + 1 if second.size else 0
    counts = np.bincount(second[second >= 0], minlength=span).astype(np.float64)
    smooth = np.convolve(counts, np.ones(5) / 5, mode="same")
    order = np.argsort(ts)
    published = np.floor(ts[order] - t0).astype(np.int64)
    latency = (committed - ts)[order]
    p50: list[float | None] = [None] * span
    p99: list[float | None] = [None] * span
    starts = np.searchsorted(published, np.arange(span + 1))
    for s in range(span):
        chunk = latency[starts[s] : starts[s + 1]]
        if chunk.size:
            p50[s], p99[s] = (float(v) for v in np.percentile(chunk, [50, 99]))
    bridged: list[float | None] = [None] * span
    previous: tuple[float, float] | None = None
    for sample in sampler.samples:
        value = sample.probes.get("bridge_forwarded_readings")
        if value is None:
            continue
        if previous is not None and 0 <= int(sample.at - t0) < span:
            bridged[int(sample.at - t0)] = (value - previous[1]) / (sample.at - previous[0])
        previous = (sample.at, value)
    return chart.Series(
        seconds=[float(s) for s in range(span)],
        committed_per_s=[float(c) for c in counts],
        committed_avg_per_s=[round(float(c), 1) for c in smooth],
        bridged_per_s=bridged,
        latency_p50_s=p50,
        latency_p99_s=p99,
    )


# ------------------------------------------------------------------------------ run
def cluster_pids(settings: localcluster.ClusterSettings, name: str) -> list[int]:
    pid = localcluster.status(settings)[name].pid
    return [pid] if pid else []


async def delete_topics(bootstrap: str, marker: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if marker in t]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


def payloads(devices: int, ticks: int) -> list[bytes]:
    """Reading payloads as the simulator makes them (the ceilings' input)."""
    fleet = build_fleet(devices, seed=7)
    start = datetime(2026, 3, 29, tzinfo=UTC)
    return [m.reading(k, tick_time(start, k, 1), 1).to_json() for k in range(ticks) for m in fleet]


@contextlib.contextmanager
def lag_probe(endpoints: localcluster.Endpoints, env: Environments, ns: str) -> Iterator[LagProbe]:
    topics = MqttTopics(ns)
    probe = LagProbe(
        endpoints.mqtt_host,
        endpoints.mqtt_port,
        [topics.readings(f"dev-{i:05d}") for i in range(LAG_PROBE_DEVICES)],
        env.mqtt_auth("BRIDGE"),
    )
    try:
        yield probe
    finally:
        probe.close()


def run_pipeline(
    args: argparse.Namespace, settings: localcluster.ClusterSettings,
    endpoints: localcluster.Endpoints, run_id: str, logs: Path,
) -> dict[str, Any]:  # fmt: skip
    ns = f"bench{run_id}"
    asyncio.run(localcluster.ensure_topics(endpoints.kafka_bootstrap, KafkaTopics(ns).specs()))
    database = asyncio.run(fresh_database(endpoints, "bench_pipeline"))
    migrate.upgrade(database)
    metrics_port = free_port()
    env = Environments.of(
        settings, ns, database=database, metrics_port=metrics_port, data_dir=logs / "faust",
        connections=args.connections,
    )  # fmt: skip
    ticks = max(1, round(args.duration_s / args.interval_s))
    stages = [
        Stage("nominal", args.devices, args.interval_s, ticks),
        Stage("overload", round(args.devices * args.overload), args.interval_s, ticks),
    ]
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    services: list[Service] = []
    try:
        bridge = Service.start("bridge", "stream.bridge", env.bridge, logs / "bridge.log")
        services.append(bridge)
        worker = Service.start("worker", "stream.worker", env.worker, logs / "worker.log")
        services.append(worker)
        wait_until("the bridge", lambda: "bridge_ready 1.0" in (http_text(metrics_url) or ""),
                   bridge)  # fmt: skip
        # Faust logs "Ready" once its consumer has joined the group and is assigned.
        # Faust's recovery logs "Worker ready" once the worker consumes (its own "Ready" line
        # is gone with the quiet worker process of stream.worker.lifetime).
        wait_until(
            "the worker", lambda: "Worker ready" in worker.log.read_text(errors="replace"), worker
        )
        print(f"  bridge and worker ready (namespace {ns})", flush=True)

        def current(name: str) -> list[int]:
            return [s.process.pid for s in services if s.name == name and s.alive()]

        sampler = UsageSampler(
            targets={
                "simulator": lambda: current("simulator"),
                "bridge": lambda: current("bridge"),
                "worker": lambda: current("worker"),
                "mosquitto": lambda: cluster_pids(settings, "mosquitto"),
                "kafka": lambda: cluster_pids(settings, "kafka"),
                "postgres": lambda: cluster_pids(settings, "postgres"),
                "bench": lambda: [os.getpid()],
            },
            without_children=frozenset({"bench"}),
            probes={
                "bridge_forwarded_readings": lambda: metric(
                    http_text(metrics_url), "bridge_forwarded_total", 'kind="reading"'
                )
            },
        )
        with sampler.running(), lag_probe(endpoints, env, ns) as probe:
            for stage in stages:
                run_stage(stage, env.simulator, logs, services)
                time.sleep(1.5)  # the next fleet's first second is after this one's last
            expected = sum(s.expected for s in stages)
            with contextlib.suppress(DrainTimeout):
                wait_until(
                    "the drain", lambda: asyncio.run(committed_count(database)) >= expected,
                    *services, timeout=args.drain_max_s, timeout_error=DrainTimeout,
                )  # fmt: skip
        for service in services:
            service.stop()
        services.clear()
        ts, committed, commit_source, device_ids = asyncio.run(fetch_times(database))
        stamped = asyncio.run(kafka_times(endpoints.kafka_bootstrap, KafkaTopics(ns).readings))
        in_kafka = into_kafka_times(ts, device_ids, stamped)
        for stage in stages:
            stage.figures = stage_figures(
                stage, ts, committed, warm_up_s=args.warm_up_s, probe=probe, sampler=sampler,
                in_kafka=in_kafka,
            )  # fmt: skip
            stage.figures["usage"] = sampler.summary(stage.began + args.warm_up_s, stage.ended)
        t0 = stages[0].began
        last = stages[-1].ended
        queued = int((committed > last).sum())
        drain_s = float(committed.max()) - last if queued else 0.0
        drain = {
            "what": "rows committed after the last publish, and how fast",
            "expected": expected,
            "committed_total": int(ts.size),
            "complete": int(ts.size) >= expected,
            "queued_at_last_publish": queued,
            "drain_s": round(drain_s, 1),
            # A rate only when there was a real backlog (the tail of live traffic is not one).
            "committed_per_s": round(queued / drain_s) if drain_s >= 5 else None,
            "usage": sampler.summary(last, last + drain_s) if drain_s >= 5 else None,
        }
        series = per_second(ts, committed, t0, sampler)
        spans = [
            chart.Span(f"{s.name}: {s.devices} devices / {s.interval_s} s", s.began - t0,
                       s.ended - t0, s.offered_per_s)
            for s in stages
        ] + [chart.Span("drain", last - t0, last + drain_s - t0, None)]  # fmt: skip
        rows = asyncio.run(sample_rows(database, args.copy_rows))
        return {
            "namespace": ns,
            "database": database,
            "commit_time_source": commit_source,
            "stages": {s.name: s.figures for s in stages},
            "drain": drain,
            "series": series,
            "spans": spans,
            "rows": rows,
        }
    finally:
        for service in services:
            service.stop()


async def sample_rows(url: str, limit: int) -> list[ceilings.Row]:
    conn = await asyncpg.connect(url)
    try:
        records = await conn.fetch(
            f"SELECT {', '.join(ceilings.READING_COLUMNS)} FROM readings LIMIT $1", limit
        )
    finally:
        await conn.close()
    return [tuple(r) for r in records]  # type: ignore[misc]


def run_ceilings(
    args: argparse.Namespace, settings: localcluster.ClusterSettings,
    endpoints: localcluster.Endpoints, *, subscriber_auth: ceilings.MqttAuth,
    run_id: str, database: str, rows: list[ceilings.Row],
) -> dict[str, Any]:  # fmt: skip
    ns = f"bench{run_id}ceiling"
    lines = payloads(1000, 2)
    mqtt_topics = MqttTopics(ns)
    # The publishers connect as one gateway carrying their devices (the broker's ACL allows
    # nothing else); the subscriber as the bridge user.
    gateway = f"bench-ceiling-{run_id}"
    devices = tuple(f"dev-{n:05d}" for n in range(args.mqtt_publishers))
    localcluster.provision(settings, DeviceIdentities(gateways={gateway: devices}))
    root_key = localcluster.load_secrets(settings.secrets_path).device_root_key
    publisher_auth = ceilings.MqttAuth(gateway, device_password(root_key, gateway))
    print("  ceiling: mosquitto_pub | mosquitto_sub ...", flush=True)
    mqtt = ceilings.mqtt_ceiling(
        endpoints.mqtt_host, endpoints.mqtt_port,
        topics=[mqtt_topics.readings(f"dev-{n:05d}") for n in range(args.mqtt_publishers)],
        subscription=mqtt_topics.all_readings, payloads=lines, messages=args.mqtt_messages,
        publisher_auth=publisher_auth, subscriber_auth=subscriber_auth,
    )  # fmt: skip
    print("  ceiling: Kafka ProducerPerformance ...", flush=True)
    topics = KafkaTopics(ns)
    asyncio.run(localcluster.ensure_topics(endpoints.kafka_bootstrap, [topics.specs()[0]]))
    kafka = ceilings.kafka_ceiling(
        settings.jars_dir, endpoints.kafka_bootstrap, topic=topics.readings, payloads=lines,
        records=args.kafka_records,
        producer_props={"acks": "all", "enable.idempotence": "true", "linger.ms": "5"},
    )  # fmt: skip
    print("  ceiling: PostgreSQL COPY ...", flush=True)
    copy = asyncio.run(ceilings.copy_ceiling(database, rows, chunk=args.copy_chunk))
    return {"mqtt": mqtt, "kafka": kafka, "postgres_copy": copy}


# ------------------------------------------------------------------------------ report
def fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def markdown(result: dict[str, Any]) -> str:
    stages, parts, m = result["stages"], result["ceilings"], result["machine"]
    lines = [
        "# Pipeline benchmark (`make bench`)",
        "",
        f"{m['at']} on {m['cpu_model']}, {m['logical_cpus']} CPUs, {m['memory_gib']} GiB, "
        f"{m['os']}; Python {m['python']}, Kafka {m['kafka']}, {m['mosquitto']}, "
        f"{m['postgresql']}. Load average before the run: {m['load_avg_before']}, after: "
        f"{m['load_avg_1_5_15']} (shared machine).",
        "",
        "| what | readings/s | p50 latency | p99 latency | note |",
        "|---|---:|---:|---:|---|",
    ]
    for name, s in stages.items():
        lines.append(
            f"| pipeline, {name}: {s['devices']:,} devices every {s['interval_s']} s "
            f"(offered {s['offered_per_s']:,.0f}/s) | {s['committed_per_s']:,} | "
            f"{fmt(s['latency_ms_p50'])} ms | {fmt(s['latency_ms_p99'])} ms | "
            f"{'kept up' if s['kept_up'] else 'saturated'} |"
        )
    drain = result["drain"]
    lines.append(
        f"| pipeline, drain of {drain['queued_at_last_publish']:,} queued readings after the "
        f"last publish | {fmt(drain['committed_per_s'])} | | | {drain['drain_s']} s; "
        f"{'all' if drain['complete'] else 'NOT all'} {drain['expected']:,} readings committed |"
    )
    labels = {
        "mqtt": "Mosquitto: `mosquitto_pub -l` -> `mosquitto_sub`, QoS 1",
        "kafka": "Kafka: `ProducerPerformance`, acks=all, idempotent",
        "postgres_copy": "PostgreSQL: `COPY` into a copy of `readings`",
    }
    for name, label in labels.items():
        part = parts[name]
        lat = (
            f"{part['latency_ms_p50']} ms | {part['latency_ms_p99']} ms"
            if "latency_ms_p50" in part else " | "
        )  # fmt: skip
        lines.append(f"| ceiling, {label} | {part['readings_per_s']:,} | {lat} | |")
    ratio = result["ratio"]
    lines += [
        "",
        f"**Pipeline / slowest part: {ratio['pipeline_readings_per_s']:,} / "
        f"{ratio['slowest_part_readings_per_s']:,} ({ratio['slowest_part']}) = "
        f"{ratio['value']:.3f}.**",
        "",
        f"Latency: reading `ts` (when the live simulator is due to publish it) -> "
        f"{result['commit_time_source']}; nominal-stage publish lag alone (simulator + broker): "
        f"p50 {fmt(stages['nominal']['publish_lag']['latency_ms_p50'])} ms, p99 "
        f"{fmt(stages['nominal']['publish_lag']['latency_ms_p99'])} ms. Split at the "
        "readings' Kafka timestamps (the bridge's send): "
        + "; ".join(
            f"{name}: into Kafka p50 {fmt(s['into_kafka']['latency_ms_p50'])} ms, p99 "
            f"{fmt(s['into_kafka']['latency_ms_p99'])} ms, then the worker p50 "
            f"{fmt(s['worker']['latency_ms_p50'])} ms, p99 {fmt(s['worker']['latency_ms_p99'])} ms"
            for name, s in stages.items()
        )
        + ".",
        "",
        "CPU (% of one core, mean over the steady window) and RSS (MiB, peak) per process:",
        "",
        "| process | " + " | ".join(f"{n} CPU | {n} RSS" for n in stages) + " |",
        "|---|" + "---:|---:|" * len(stages),
    ]
    first = next(iter(stages.values()))["usage"]
    names = [n for n in first if n not in ("all_measured", "machine")]
    for proc in names:
        cells = " | ".join(
            f"{fmt(s['usage'][proc]['cpu_percent_mean'])} | {fmt(s['usage'][proc]['rss_mib_peak'])}"
            for s in stages.values()
        )
        lines.append(f"| {proc} | {cells} |")
    cells = " | ".join(
        f"{fmt(s['usage']['machine']['cpu_percent_mean'])} of "
        f"{fmt(s['usage']['machine']['cpu_percent_capacity'])}, others' "
        f"{fmt(s['usage']['machine']['others_cpu_percent_mean'])} | "
        for s in stages.values()
    )
    lines += [f"| whole machine | {cells}", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1000, help="nominal fleet size")
    parser.add_argument("--interval-s", type=int, default=1, help="seconds between readings")
    parser.add_argument("--duration-s", type=float, default=120, help="publishing time a stage")
    parser.add_argument("--overload", type=float, default=4.0, help="stage 2 fleet multiplier")
    parser.add_argument("--warm-up-s", type=float, default=20, help="left out of each stage")
    parser.add_argument("--drain-max-s", type=float, default=150, help="wait for the backlog")
    parser.add_argument("--connections", default="pooled:8", help="simulator connection mode")
    parser.add_argument("--mqtt-publishers", type=int, default=4)
    parser.add_argument("--mqtt-messages", type=int, default=300_000)
    parser.add_argument("--kafka-records", type=int, default=500_000)
    parser.add_argument("--copy-rows", type=int, default=300_000)
    parser.add_argument("--copy-chunk", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    args = parser.parse_args()

    began = time.monotonic()
    load_before = [round(v, 2) for v in os.getloadavg()]
    settings = localcluster.ClusterSettings()
    endpoints = localcluster.up(settings)
    run_id = uuid.uuid4().hex[:6]
    logs = settings.home / "logs" / f"bench-{run_id}"
    logs.mkdir(parents=True, exist_ok=True)
    print(f"pipeline bench {run_id}: logs in {logs}", flush=True)
    pipeline = run_pipeline(args, settings, endpoints, run_id, logs)
    database = pipeline["database"]
    try:
        env = Environments.of(
            settings, "unused", database=database, metrics_port=0, data_dir=logs,
            connections=args.connections,
        )  # fmt: skip
        parts = run_ceilings(
            args, settings, endpoints, subscriber_auth=env.mqtt_auth("BRIDGE"),
            run_id=run_id, database=database, rows=pipeline["rows"],
        )  # fmt: skip
        postgres_version = asyncio.run(server_version(database))
    finally:
        asyncio.run(drop_database(endpoints, database))
        asyncio.run(delete_topics(endpoints.kafka_bootstrap, f"bench{run_id}"))

    best = max(pipeline["stages"].values(), key=lambda s: s["committed_per_s"])
    slowest = min(parts, key=lambda name: parts[name]["readings_per_s"])
    result: dict[str, Any] = {
        "benchmark": "pipeline",
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "commit_time_source": pipeline["commit_time_source"],
        "stages": pipeline["stages"],
        "drain": pipeline["drain"],
        "ceilings": parts,
        "ratio": {
            "pipeline_readings_per_s": best["committed_per_s"],
            "pipeline_stage": next(n for n, s in pipeline["stages"].items() if s is best),
            "pipeline_saturated": not all(s["kept_up"] for s in pipeline["stages"].values()),
            "slowest_part": slowest,
            "slowest_part_readings_per_s": parts[slowest]["readings_per_s"],
            "value": round(best["committed_per_s"] / parts[slowest]["readings_per_s"], 3),
        },
        "notes": [
            "latency = commit instant - reading ts; in live time ts is when the simulator is due "
            "to publish the reading, so the simulator's own lag is included",
            "now() (ingested_at's default) is the sink transaction's start; the commit instant "
            "comes from pg_xact_commit_timestamp(xmin) when track_commit_timestamp is on",
            "throughput = rows committed per second from warm_up_s after a stage's start to its "
            "last publish; the drain rate is after the last publish until all rows are in",
            "latency percentiles are over the rows committed by the end of the run: in a "
            "saturated stage the readings still queued then (see drain) are left out, so its "
            "figures understate the queueing delay",
            "ceilings run after the pipeline stopped, one at a time, on the same cluster",
            "CPU percent is of one core: 200 = both cores of a 2-core machine",
        ],
        "machine": {
            **machine.describe(kafka=KAFKA_VERSION, postgresql=postgres_version),
            "load_avg_before": load_before,
        },
        "wall_s": round(time.monotonic() - began),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    series: chart.Series = pipeline["series"]
    result["series_per_s"] = {
        "t_s": series.seconds,
        "committed": series.committed_per_s,
        "committed_5s_avg": series.committed_avg_per_s,
        "into_kafka": [None if v is None else round(v) for v in series.bridged_per_s],
        "latency_ms_p50": [None if v is None else round(v * 1000, 1) for v in series.latency_p50_s],
        "latency_ms_p99": [None if v is None else round(v * 1000, 1) for v in series.latency_p99_s],
    }
    (args.out / "pipeline.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    (args.out / "pipeline.md").write_text(table)
    ratio = result["ratio"]
    chart.draw(
        series, pipeline["spans"],
        f"WattStream pipeline: {ratio['pipeline_readings_per_s']:,} readings/s sustained, "
        f"{ratio['value']:.2f}x the slowest part ({slowest}); {result['machine']['cpu_model']}, "
        f"{result['machine']['logical_cpus']} CPUs",
        args.out / "pipeline.png",
    )  # fmt: skip
    print(table)
    print(f"wrote {args.out}/pipeline.json, pipeline.md, pipeline.png in {result['wall_s']} s")


async def server_version(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        return "PostgreSQL " + str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
