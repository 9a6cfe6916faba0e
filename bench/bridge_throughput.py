"""Sustained QoS 1 throughput and publish-to-Kafka latency of the bridge, against the native
pipeline ``mosquitto_sub | kcat -P`` moving the same messages, in the same run.

Both pipelines read the same readings from the local cluster's Mosquitto at QoS 1 and produce
them to Kafka with ``acks=all`` and idempotence; the bridge also validates every message and
acknowledges it to MQTT only after Kafka did, which the native pipeline does not (mosquitto_sub
acknowledges on receipt, so a crash there loses messages). Each pipeline gets its own namespace
and runs alone: a warm-up, then

* burst: ``--messages`` readings published as fast as the publisher can; throughput is messages
  divided by the time from the first publish to the last record's append in Kafka;
* paced: ``--rate`` messages/s for ``--seconds``; latency is Kafka's LogAppendTime of each
  record minus the time it was handed to the MQTT client (one machine, one clock).

Prints the figures and their ratios, writes bench/results/bridge_throughput.json. Uses the
local cluster (``wattstream services up``; WATTSTREAM_CLUSTER_* as usual) and installs the
Debian package kcat if it is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from paho.mqtt.enums import CallbackAPIVersion

from schema import localcluster
from schema.localcluster.install import ensure_packages, find_program
from schema.topics import READINGS_PARTITIONS, KafkaTopics, MqttTopics
from schema.wire import Energy, Power, Reading

RESULTS = Path(__file__).parent / "results"
DEVICES = 50
WARM_UP = 500
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


def messages(topics: MqttTopics, phase: str, count: int) -> list[tuple[str, bytes]]:
    """``count`` readings spread over the fleet; device ids name the phase."""
    return [
        (topics.readings(f"{phase}-{i % DEVICES:02d}"), reading(f"{phase}-{i % DEVICES:02d}", i))
        for i in range(count)
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Publisher:
    def __init__(self, host: str, port: int) -> None:
        self._client = paho.Client(CallbackAPIVersion.VERSION2)
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
    namespace: str
    process: list[subprocess.Popen[bytes]]

    @property
    def mqtt(self) -> MqttTopics:
        return MqttTopics(self.namespace)

    @property
    def kafka_topic(self) -> str:
        return KafkaTopics(self.namespace).readings

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


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def start_bridge(endpoints: localcluster.Endpoints, namespace: str, log: Path) -> Pipeline:
    port = free_port()
    env = {
        **os.environ,
        "WATTSTREAM_BRIDGE_MQTT_HOST": endpoints.mqtt_host,
        "WATTSTREAM_BRIDGE_MQTT_PORT": str(endpoints.mqtt_port),
        "WATTSTREAM_BRIDGE_KAFKA_BOOTSTRAP": endpoints.kafka_bootstrap,
        "WATTSTREAM_BRIDGE_TOPIC_NAMESPACE": namespace,
        "WATTSTREAM_BRIDGE_MQTT_CLIENT_ID": f"bench-{namespace}",
        "WATTSTREAM_BRIDGE_MQTT_SESSION_EXPIRY_S": "60",
        "WATTSTREAM_BRIDGE_METRICS_PORT": str(port),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stream.bridge"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 60
    while http_status(f"http://127.0.0.1:{port}/healthz") != 200:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"the bridge did not become healthy:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return Pipeline("bridge", namespace, [proc])


def start_native(endpoints: localcluster.Endpoints, namespace: str, log: Path) -> Pipeline:
    mqtt, topic = MqttTopics(namespace), KafkaTopics(namespace).readings
    broker = ("-h", endpoints.mqtt_host, "-p", str(endpoints.mqtt_port))
    # A persistent session like the bridge's, subscribed before anything is published (-E:
    # exit once subscribed), so no message is missed while the pipeline starts.
    session = ("-c", "-i", f"bench-{namespace}", "-q", "1", "-t", mqtt.all_readings)
    subprocess.run(["mosquitto_sub", *broker, *session, "-E"], check=True, timeout=30)
    with log.open("wb") as out:
        sub = subprocess.Popen(
            # stdbuf: one line per message into the pipe, not a block every 4 KiB.
            ["stdbuf", "-oL", "mosquitto_sub", *broker, *session, "-F", "%t\t%p"],
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
    return Pipeline("native", namespace, [sub, cat])


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


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[round(q * 1000) - 1]


@dataclass
class Phase:
    payloads: list[bytes]
    sent: list[float]
    """When each message was handed to the MQTT client (wall clock)."""
    acked_s: float
    """From the first publish until the broker acknowledged the last one."""
    appended: list[float]
    """Kafka's LogAppendTime of each message (its first copy)."""


def measure(
    pipeline: Pipeline,
    endpoints: localcluster.Endpoints,
    publisher: Publisher,
    *,
    burst: int,
    rate: float,
    seconds: float,
) -> dict[str, Any]:
    bootstrap, topic = endpoints.kafka_bootstrap, pipeline.kafka_topic

    def run_phase(name: str, count: int, phase_rate: float | None) -> Phase:
        items = messages(pipeline.mqtt, name, count)
        sent = publisher.publish(items, rate=phase_rate)
        acked_s = time.time() - sent[0]
        # kcat -P reads its input 128 bytes at a time (fread), so the last line of a phase
        # waits for more input: a few more messages push it through (both pipelines get them).
        publisher.publish(messages(pipeline.mqtt, f"{name}-flush", 4))
        payloads = [payload for _, payload in items]
        at = asyncio.run(collect(bootstrap, topic, set(payloads), 300))
        return Phase(payloads, sent, acked_s, [at[payload] for payload in payloads])

    run_phase("warm", WARM_UP, 2000)
    bursted = run_phase("burst", burst, None)
    paced = run_phase("paced", round(rate * seconds), rate)
    latencies = [
        (appended - sent) * 1000 for sent, appended in zip(paced.sent, paced.appended, strict=True)
    ]
    return {
        "burst_messages": burst,
        "burst_msgs_per_s": round(burst / (max(bursted.appended) - bursted.sent[0])),
        "publisher_acked_msgs_per_s": round(burst / bursted.acked_s),
        "paced_rate": rate,
        "paced_messages": len(paced.payloads),
        "latency_ms_p50": round(percentile(latencies, 0.5), 2),
        "latency_ms_p99": round(percentile(latencies, 0.99), 2),
        "latency_ms_max": round(max(latencies), 2),
    }


@contextlib.contextmanager
def running(pipeline: Pipeline) -> Iterator[Pipeline]:
    try:
        yield pipeline
    finally:
        pipeline.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000, help="burst size")
    parser.add_argument("--rate", type=float, default=1000, help="paced messages/s")
    parser.add_argument("--seconds", type=float, default=5, help="paced duration")
    args = parser.parse_args()

    if find_program("kcat") is None:
        ensure_packages(["kcat"])
    endpoints = localcluster.up(localcluster.ClusterSettings())
    run_id = uuid.uuid4().hex[:8]
    results: dict[str, Any] = {}
    publisher = Publisher(endpoints.mqtt_host, endpoints.mqtt_port)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name, start in (("native", start_native), ("bridge", start_bridge)):
                namespace = f"bench{run_id}{name}"
                asyncio.run(
                    create_topic(endpoints.kafka_bootstrap, KafkaTopics(namespace).readings)
                )
                with running(start(endpoints, namespace, Path(tmp) / f"{name}.log")) as pipeline:
                    results[name] = measure(
                        pipeline,
                        endpoints,
                        publisher,
                        burst=args.messages,
                        rate=args.rate,
                        seconds=args.seconds,
                    )
    finally:
        publisher.close()

    bridge, native = results["bridge"], results["native"]
    result = {
        "benchmark": "bridge_throughput",
        "bridge": bridge,
        "native_mosquitto_sub_kcat": native,
        "throughput_ratio_bridge_to_native": round(
            bridge["burst_msgs_per_s"] / native["burst_msgs_per_s"], 3
        ),
        "latency_p50_ratio_bridge_to_native": round(
            bridge["latency_ms_p50"] / native["latency_ms_p50"], 3
        ),
        "latency_p99_ratio_bridge_to_native": round(
            bridge["latency_ms_p99"] / native["latency_ms_p99"], 3
        ),
        # The native pipeline keeping up with the publisher means its figure is a lower bound.
        "native_limited_by_publisher": native["burst_msgs_per_s"]
        >= 0.9 * native["publisher_acked_msgs_per_s"],
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_avg_1m": round(os.getloadavg()[0], 2),
        },
        "at": datetime.now(UTC).isoformat(),
    }
    print(f"{'':<8}{'burst msg/s':>14}{'p50 ms':>10}{'p99 ms':>10}   (paced {args.rate:.0f}/s)")
    for name, figures in (("native", native), ("bridge", bridge)):
        print(
            f"{name:<8}{figures['burst_msgs_per_s']:>14,}"
            f"{figures['latency_ms_p50']:>10.2f}{figures['latency_ms_p99']:>10.2f}"
        )
    print(
        f"bridge/native: throughput {result['throughput_ratio_bridge_to_native']:.2f}x, "
        f"p50 {result['latency_p50_ratio_bridge_to_native']:.2f}x, "
        f"p99 {result['latency_p99_ratio_bridge_to_native']:.2f}x"
    )
    if result["native_limited_by_publisher"]:
        print("(the native pipeline kept up with the publisher: its throughput is a lower bound)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bridge_throughput.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
