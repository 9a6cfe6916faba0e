"""Sustained QoS 1 throughput and publish-to-Kafka latency of the bridge, against the native
pipeline ``mosquitto_sub | kcat -P`` moving the same messages, in the same run.

Both pipelines read the same readings from the local cluster's Mosquitto at QoS 1 and produce
them to Kafka with ``acks=all`` and idempotence; the bridge also validates every message and
acknowledges it to MQTT only after Kafka did, which the native pipeline does not (mosquitto_sub
acknowledges on receipt, so a crash there loses messages). Each pipeline gets its own namespace
and runs alone: a warm-up, then

* latency: ``--rate`` messages/s for ``--seconds``; each message's latency is Kafka's
  LogAppendTime of its record minus the time it was handed to the MQTT client (one machine, one
  clock);
* throughput: the pipeline is stopped, ``--messages`` readings are published (the broker queues
  them for the pipeline's persistent session), the pipeline is started again; throughput is
  messages divided by the time between the first and the last record's append in Kafka. (A
  live burst would measure the Python publisher, which is slower than either pipeline.) The
  pipeline's CPU time (user + system, all its processes and threads) while it drains, divided
  by the messages it moved, is printed beside the rate: on a shared machine it is the steadier
  figure.

``--baseline-tree DIR`` also runs the bridge from another source tree (e.g. the main branch's
checkout) in the same run, so a change is compared with what it replaces back to back.

Prints the figures and their ratios, writes bench/results/bridge_throughput.json. Uses the
local cluster (``wattstream services up``; WATTSTREAM_CLUSTER_* as usual) and installs the
Debian package kcat if it is missing. On the cluster's authenticating broker the publisher
connects as a gateway of its own (provisioned for the bench's devices), both pipelines as the
``bridge`` user.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psutil
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from paho.mqtt.enums import CallbackAPIVersion

from schema.credentials import DeviceIdentities, device_password
from schema.topics import READINGS_PARTITIONS, KafkaTopics, MqttTopics
from schema.wire import Energy, Power, Reading
from wattstream import localcluster
from wattstream.localcluster.install import ensure_packages, find_program
from wattstream.localcluster.mqttauth import BRIDGE_USER

from benchkit import pyspy
from benchkit.ceilings import MqttAuth
from benchkit.cluster import free_port, http_status, http_text
from benchkit.stats import percentile

RESULTS = Path(__file__).parent / "results"
DEVICES = 50
WARM_UP = 500
PHASES = ("warm", "paced", "backlog")
"""Each phase's devices are named after it (and ``{phase}-flush``, see :func:`measure`)."""
START = datetime(2026, 3, 29, tzinfo=UTC)


def reading(device_id: str, seq: int) -> bytes:
    return Reading(
        device_id=device_id,
        seq=seq,
        ts=START + timedelta(minutes=seq),
        tz="UTC",
        interval_s=60,
        energy=Energy(value=0.0125),
        power=Power(value=0.75),
    ).to_json()


def device(phase: str, i: int) -> str:
    return f"{phase}-{i % DEVICES:02d}"


def messages(topics: MqttTopics, phase: str, count: int) -> list[tuple[str, bytes]]:
    """``count`` readings spread over the fleet; device ids name the phase."""
    return [(topics.readings(device(phase, i)), reading(device(phase, i), i)) for i in range(count)]


def provision_publisher(settings: localcluster.ClusterSettings, run_id: str) -> MqttAuth:
    """A gateway identity allowed to publish for every device of the bench."""
    gateway = f"bench-bridge-{run_id}"
    phases = [*PHASES, *(f"{phase}-flush" for phase in PHASES)]
    devices = tuple(sorted({device(phase, i) for phase in phases for i in range(DEVICES)}))
    localcluster.provision(settings, DeviceIdentities(gateways={gateway: devices}))
    root_key = localcluster.load_secrets(settings.secrets_path).device_root_key
    return MqttAuth(gateway, device_password(root_key, gateway))


class Publisher:
    def __init__(self, host: str, port: int, auth: MqttAuth) -> None:
        self._client = paho.Client(CallbackAPIVersion.VERSION2)
        if auth.username:
            self._client.username_pw_set(auth.username, auth.password)
        self._client.max_inflight_messages_set(1000)
        self._client.max_queued_messages_set(0)
        self._client.connect(host, port)
        self._client.loop_start()

    def publish(self, items: list[tuple[str, bytes]], rate: float | None = None) -> list[float]:
        """Publish at QoS 1 (at ``rate`` per second, else at once); wait for every PUBACK.
        Returns when each message was handed to the client (wall clock, seconds)."""
        sent_at, infos = [], []
        started = time.monotonic()
        for index, (topic, payload) in enumerate(items):
            if rate is not None:
                ahead = started + index / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            sent_at.append(time.time())
            infos.append(self._client.publish(topic, payload, qos=1))
        for info in infos:
            info.wait_for_publish(120)
        return sent_at

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@dataclass
class Pipeline:
    name: str
    process: list[subprocess.Popen[bytes]]
    metrics_url: str | None = None
    """The bridge's Prometheus endpoint (the native pipeline has none)."""

    def profile(self, out: Path) -> subprocess.Popen[bytes] | None:
        """py-spy sampling the bridge (every thread, 100 Hz) into ``out`` (collapsed stacks)
        until it is sent SIGINT; ``None`` for a pipeline that is not Python."""
        if self.metrics_url is None:
            return None
        try:
            return pyspy.record(self.process[0].pid, None, out)
        except RuntimeError as exc:
            raise SystemExit(f"--profile: {exc}") from None

    def cpu_s(self) -> float:
        """CPU time (user + system) its processes have used so far."""
        total = 0.0
        for proc in self.process:
            times = psutil.Process(proc.pid).cpu_times()
            total += times.user + times.system
        return total

    def forwarded(self) -> int | None:
        """Readings Kafka acknowledged so far (the bridge's counter), if the pipeline counts."""
        text = http_text(self.metrics_url) if self.metrics_url else None
        if text is None:
            return None
        for line in text.splitlines():
            if line.startswith('bridge_forwarded_total{kind="reading"}'):
                return round(float(line.split()[-1]))
        return 0

    def stop(self) -> None:
        for proc in self.process:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.process:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def start_bridge(
    endpoints: localcluster.Endpoints,
    namespace: str,
    log: Path,
    *,
    new_session: bool,
    auth: MqttAuth,
    tree: Path | None = None,
) -> Pipeline:
    """The bridge of this checkout, or of the source ``tree`` given."""
    del new_session  # the bridge makes its session on its first start
    port = free_port()
    env = {
        **os.environ,
        **({"PYTHONPATH": str(tree)} if tree is not None else {}),
        "WATTSTREAM_BRIDGE_MQTT_HOST": endpoints.mqtt_host,
        "WATTSTREAM_BRIDGE_MQTT_PORT": str(endpoints.mqtt_port),
        "WATTSTREAM_BRIDGE_KAFKA_BOOTSTRAP": endpoints.kafka_bootstrap,
        "WATTSTREAM_BRIDGE_TOPIC_NAMESPACE": namespace,
        "WATTSTREAM_BRIDGE_MQTT_CLIENT_ID": f"bench-{namespace}",
        "WATTSTREAM_BRIDGE_MQTT_SESSION_EXPIRY_S": "120",
        "WATTSTREAM_BRIDGE_METRICS_PORT": str(port),
        **({"WATTSTREAM_BRIDGE_MQTT_USERNAME": auth.username} if auth.username else {}),
        **({"WATTSTREAM_BRIDGE_MQTT_PASSWORD": auth.password} if auth.password else {}),
    }
    with log.open("ab") as out:
        # ``-m`` puts the working directory first on the path: run in the tree to measure.
        proc = subprocess.Popen(
            [sys.executable, "-m", "stream.bridge"],
            env=env,
            cwd=tree,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while http_status(f"http://127.0.0.1:{port}/healthz") != 200:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"the bridge did not become healthy:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    return Pipeline("bridge", [proc], f"http://127.0.0.1:{port}/metrics")


def start_native(
    endpoints: localcluster.Endpoints,
    namespace: str,
    log: Path,
    *,
    new_session: bool,
    auth: MqttAuth,
) -> Pipeline:
    mqtt, topic = MqttTopics(namespace), KafkaTopics(namespace).readings
    broker = ("-h", endpoints.mqtt_host, "-p", str(endpoints.mqtt_port), *auth.flags())
    # A persistent session like the bridge's (MQTT 5, expires 2 minutes after the run).
    session = ("-V", "mqttv5", "-c", "-x", "120", "-i", f"bench-{namespace}", "-q", "1")
    subscription = ("-t", mqtt.all_readings)
    if new_session:  # subscribed before anything is published (-E: exit once subscribed)
        subprocess.run(
            ["mosquitto_sub", *broker, *session, *subscription, "-E"], check=True, timeout=30
        )
    with log.open("ab") as out:
        sub = subprocess.Popen(
            ["mosquitto_sub", *broker, *session, *subscription, "-F", "%t\\t%p"],
            stdout=subprocess.PIPE,
            stderr=out,
        )
        cat = subprocess.Popen(
            [
                "kcat",
                *("-P", "-b", endpoints.kafka_bootstrap, "-t", topic, "-K", "\t"),
                *("-X", "acks=all", "-X", "enable.idempotence=true", "-X", "linger.ms=5"),
            ],
            stdin=sub.stdout,
            stderr=out,
        )
    assert sub.stdout is not None
    sub.stdout.close()  # kcat holds the pipe now
    return Pipeline("native", [sub, cat])


async def create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(
                    topic,
                    READINGS_PARTITIONS,
                    1,
                    topic_configs={"message.timestamp.type": "LogAppendTime"},
                )
            ]
        )
    finally:
        await admin.close()


async def collect(
    bootstrap: str, topic: str, wanted: set[bytes], within_s: float
) -> dict[bytes, float]:
    """Read ``topic`` from the start until every ``wanted`` value is there: value -> its
    LogAppendTime in seconds (of the first copy)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    seen: dict[bytes, float] = {}
    missing = set(wanted)
    try:
        deadline = time.monotonic() + within_s
        while missing:
            if time.monotonic() > deadline:
                raise SystemExit(f"{topic}: {len(missing)} records missing after {within_s:.0f} s")
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                for record in batch:
                    assert record.value is not None
                    seen.setdefault(record.value, record.timestamp / 1000)
                    missing.discard(record.value)
    finally:
        await consumer.stop()
    return {value: seen[value] for value in wanted}


@dataclass
class Phase:
    payloads: list[bytes]
    sent: list[float]
    """When each message was handed to the MQTT client (wall clock)."""
    acked_s: float
    """From the first publish until the broker acknowledged the last one."""


Start = Callable[[bool], Pipeline]
"""Starts a pipeline; the argument says whether its MQTT session is new."""


def measure(
    start: Start,
    endpoints: localcluster.Endpoints,
    publisher: Publisher,
    namespace: str,
    *,
    backlog: int,
    rate: float,
    seconds: float,
    profile: Path | None = None,
) -> dict[str, Any]:
    topics, kafka_topic = MqttTopics(namespace), KafkaTopics(namespace).readings

    def run_phase(name: str, count: int, phase_rate: float | None) -> Phase:
        items = messages(topics, name, count)
        sent = publisher.publish(items, rate=phase_rate)
        acked_s = time.time() - sent[0]
        # kcat -P reads its input 128 bytes at a time (fread), so the last line of a phase
        # waits for more input: a few more messages push it through (both pipelines get them).
        publisher.publish(messages(topics, f"{name}-flush", 4))
        return Phase([payload for _, payload in items], sent, acked_s)

    def appended(phase: Phase) -> list[float]:
        wanted = set(phase.payloads)
        at = asyncio.run(collect(endpoints.kafka_bootstrap, kafka_topic, wanted, 300))
        return [at[payload] for payload in phase.payloads]

    pipeline = start(True)
    try:
        appended(run_phase("warm", WARM_UP, 2000))
        paced = run_phase("paced", round(rate * seconds), rate)
        paced_at = appended(paced)
    finally:
        pipeline.stop()
    queued = run_phase("backlog", backlog, None)  # the broker keeps them for the session
    pipeline = start(False)
    profiler = pipeline.profile(profile) if profile is not None else None
    try:
        cpu_before, moved_before = pipeline.cpu_s(), pipeline.forwarded()
        backlog_at = appended(queued)
        cpu_s, moved_after = pipeline.cpu_s() - cpu_before, pipeline.forwarded()
    finally:
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)  # py-spy writes its output and exits
            profiler.wait(60)
        pipeline.stop()
    # The bridge counts what it moved since the CPU was first read; the native pipeline (which
    # starts in milliseconds) moved the backlog and the four messages that flush it.
    moved = (
        moved_after - moved_before
        if moved_after is not None and moved_before is not None
        else backlog + 4
    )
    latencies = [(at - sent) * 1000 for sent, at in zip(paced.sent, paced_at, strict=True)]
    return {
        "backlog_messages": backlog,
        "drain_msgs_per_s": round(backlog / (max(backlog_at) - min(backlog_at))),
        "publisher_acked_msgs_per_s": round(backlog / queued.acked_s),
        "drain_cpu_s": round(cpu_s, 3),
        "drain_cpu_us_per_msg": round(cpu_s / moved * 1e6, 1),
        "paced_rate": rate,
        "paced_messages": len(paced.payloads),
        "latency_ms_p50": round(percentile(latencies, 0.5), 2),
        "latency_ms_p99": round(percentile(latencies, 0.99), 2),
        "latency_ms_max": round(max(latencies), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000, help="backlog to drain")
    parser.add_argument("--rate", type=float, default=1000, help="paced messages/s")
    parser.add_argument("--seconds", type=float, default=5, help="paced duration")
    parser.add_argument(
        "--baseline-tree",
        type=Path,
        help="also run the bridge of this source tree (e.g. main's checkout) in the same run",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="directory: py-spy samples each bridge while it drains (<name>.txt, collapsed)",
    )
    args = parser.parse_args()

    if find_program("kcat") is None:
        ensure_packages(["kcat"])
    settings = localcluster.ClusterSettings()
    endpoints = localcluster.up(settings)
    run_id = uuid.uuid4().hex[:8]
    results: dict[str, Any] = {}
    publisher = Publisher(
        endpoints.mqtt_host, endpoints.mqtt_port, provision_publisher(settings, run_id)
    )
    bridge_user = MqttAuth(
        BRIDGE_USER, localcluster.load_secrets(settings.secrets_path).mqtt_bridge_password
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            starters: list[tuple[str, Any]] = [
                ("native", functools.partial(start_native, auth=bridge_user))
            ]
            if args.baseline_tree is not None:
                tree = args.baseline_tree.resolve()
                starters.append(
                    ("baseline", functools.partial(start_bridge, auth=bridge_user, tree=tree))
                )
            starters.append(("bridge", functools.partial(start_bridge, auth=bridge_user)))
            for name, starter in starters:
                namespace = f"bench{run_id}{name}"
                topic = KafkaTopics(namespace).readings
                asyncio.run(create_topic(endpoints.kafka_bootstrap, topic))
                log = Path(tmp) / f"{name}.log"

                def start(
                    new_session: bool, starter: Any = starter, ns: str = namespace, log: Path = log
                ) -> Pipeline:
                    pipeline: Pipeline = starter(endpoints, ns, log, new_session=new_session)
                    return pipeline

                results[name] = measure(
                    start,
                    endpoints,
                    publisher,
                    namespace,
                    backlog=args.messages,
                    rate=args.rate,
                    seconds=args.seconds,
                    profile=args.profile / f"{name}.txt" if args.profile else None,
                )
    finally:
        publisher.close()

    bridge, native = results["bridge"], results["native"]

    def ratio(key: str) -> float:
        return round(bridge[key] / native[key], 3)

    result: dict[str, Any] = {
        "benchmark": "bridge_throughput",
        "bridge": bridge,
        "native_mosquitto_sub_kcat": native,
        "throughput_ratio_bridge_to_native": ratio("drain_msgs_per_s"),
        "latency_p50_ratio_bridge_to_native": ratio("latency_ms_p50"),
        "latency_p99_ratio_bridge_to_native": ratio("latency_ms_p99"),
    }
    if "baseline" in results:
        baseline = results["baseline"]
        result["baseline_bridge"] = {"tree": str(args.baseline_tree), **baseline}
        result["throughput_ratio_bridge_to_baseline"] = round(
            bridge["drain_msgs_per_s"] / baseline["drain_msgs_per_s"], 3
        )
        result["cpu_per_msg_ratio_bridge_to_baseline"] = round(
            bridge["drain_cpu_us_per_msg"] / baseline["drain_cpu_us_per_msg"], 3
        )
    result["machine"] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    result["at"] = datetime.now(UTC).isoformat()
    print(
        f"{'':<10}{'drain msg/s':>12}{'CPU us/msg':>12}{'p50 ms':>9}{'p99 ms':>9}"
        f"   (latency at {args.rate:.0f}/s)"
    )
    for name, figures in results.items():
        print(
            f"{name:<10}{figures['drain_msgs_per_s']:>12,}{figures['drain_cpu_us_per_msg']:>12.1f}"
            f"{figures['latency_ms_p50']:>9.2f}{figures['latency_ms_p99']:>9.2f}"
        )
    print(
        f"bridge/native: throughput {result['throughput_ratio_bridge_to_native']:.2f}x, "
        f"p50 {result['latency_p50_ratio_bridge_to_native']:.2f}x, "
        f"p99 {result['latency_p99_ratio_bridge_to_native']:.2f}x"
    )
    if "baseline" in results:
        print(
            f"bridge/baseline: throughput {result['throughput_ratio_bridge_to_baseline']:.2f}x, "
            f"CPU per message {result['cpu_per_msg_ratio_bridge_to_baseline']:.2f}x"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bridge_throughput.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
