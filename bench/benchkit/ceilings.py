"""The ceiling of each part of the pipeline, measured with its own native tool on the same
payloads, one at a time (nothing else of ours running):

* MQTT: ``mosquitto_pub -l -q 1`` processes (libmosquitto, C) publishing reading lines to the
  broker, ``mosquitto_sub -q 1`` receiving them; the rate is what the subscriber received per
  second, by its own receive timestamps (``-F %U``), after the first tenth (warm-up).
* Kafka: ``org.apache.kafka.tools.ProducerPerformance`` from the cluster's own jars, with the
  bridge's producer settings (``acks=all``, idempotence, ``linger.ms``), the reading payloads
  picked from a file; its own records/s.
* PostgreSQL: ``COPY`` (asyncpg ``copy_records_to_table``) of readings into a scratch copy of
  ``readings`` (same columns, defaults and primary key; none of the rollup triggers), one
  transaction per chunk.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

WARM_UP_FRACTION = 0.1


@dataclass(frozen=True, slots=True)
class MqttAuth:
    username: str | None = None
    password: str | None = None

    def flags(self) -> list[str]:
        flags = ["-u", self.username] if self.username else []
        return flags + (["-P", self.password] if self.password else [])


def mqtt_ceiling(
    host: str,
    port: int,
    *,
    topics: Sequence[str],
    subscription: str,
    payloads: Sequence[bytes],
    messages: int,
    inflight: int = 100,
    publisher_auth: MqttAuth = MqttAuth(),
    subscriber_auth: MqttAuth = MqttAuth(),
    timeout_s: float = 180.0,
) -> dict[str, Any]:
    """One ``mosquitto_pub`` per topic in ``topics``; one ``mosquitto_sub`` on ``subscription``
    counting ``messages``."""
    broker = ["-h", host, "-p", str(port)]
    # MQTT 5 persistent session, subscribed (-E) before anything is published, kept 60 s.
    session = ["-V", "mqttv5", "-c", "-x", "60", "-i", "bench-ceiling-sub", "-q", "1"]
    sub_cmd = ["mosquitto_sub", *broker, *subscriber_auth.flags(), *session, "-t", subscription]
    subprocess.run([*sub_cmd, "-E"], check=True, timeout=30)
    per_publisher = -(-messages * 12 // 10 // len(topics))  # 20% spare: the tail is not waited for
    lines = b"".join(p.rstrip(b"\n") + b"\n" for p in payloads)
    with tempfile.TemporaryDirectory(prefix="wattstream-ceiling-") as tmp:
        received = Path(tmp) / "received.txt"
        with received.open("wb") as out:
            sub = subprocess.Popen([*sub_cmd, "-C", str(messages), "-F", "%U"], stdout=out)
        pubs = [
            subprocess.Popen(
                [
                    "mosquitto_pub", *broker, *publisher_auth.flags(), "-q", "1", "-l",
                    "-M", str(inflight), "-t", topic, "-i", f"bench-ceiling-pub-{n}",
                ],
                stdin=subprocess.PIPE,
            )
            for n, topic in enumerate(topics)
        ]  # fmt: skip

        def feed(proc: subprocess.Popen[bytes]) -> None:
            # At the end of its input mosquitto_pub disconnects without sending what it has
            # queued, so its stdin stays open until the subscriber has counted enough.
            assert proc.stdin is not None
            with contextlib.suppress(BrokenPipeError, ValueError):
                written = 0
                while written < per_publisher:
                    proc.stdin.write(lines)
                    proc.stdin.flush()
                    written += len(payloads)

        feeders = [threading.Thread(target=feed, args=(p,), daemon=True) for p in pubs]
        began = time.monotonic()
        for feeder in feeders:
            feeder.start()
        try:
            sub.wait(timeout_s)
        except subprocess.TimeoutExpired:
            sub.kill()
            sub.wait()
        finally:
            for proc in pubs:
                proc.kill()
                proc.wait()
            for feeder in feeders:
                feeder.join()
        wall_s = time.monotonic() - began
        stamps = [float(line) for line in received.read_text().split()]
    if len(stamps) < 100:
        raise RuntimeError(f"mosquitto_sub received only {len(stamps)} messages")
    skip = int(len(stamps) * WARM_UP_FRACTION)
    counted = len(stamps) - 1 - skip
    return {
        "tool": "mosquitto_pub -l -q 1 | mosquitto_sub -q 1",
        "publishers": len(topics),
        "max_inflight": inflight,
        "messages": len(stamps),
        "complete": len(stamps) == messages,
        "readings_per_s": round(counted / (stamps[-1] - stamps[skip])),
        "wall_s": round(wall_s, 1),
    }


SUMMARY = re.compile(
    r"(?P<records>\d+) records sent, (?P<rate>[\d.]+) records/sec \((?P<mb>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency, (?P<p50>\d+) ms 50th, "
    r"(?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th"
)


def kafka_ceiling(
    jars: Path,
    bootstrap: str,
    *,
    topic: str,
    payloads: Sequence[bytes],
    records: int,
    producer_props: dict[str, str],
    timeout_s: float = 300.0,
) -> dict[str, Any]:
    """Kafka's ProducerPerformance tool, run from the cluster's jars."""
    with tempfile.TemporaryDirectory(prefix="wattstream-ceiling-") as tmp:
        payload_file = Path(tmp) / "payloads.txt"
        payload_file.write_bytes(b"\n".join(p.rstrip(b"\n") for p in payloads))
        props = [f"{key}={value}" for key, value in {"bootstrap.servers": bootstrap,
                                                       **producer_props}.items()]  # fmt: skip
        command = [
            "java", "-Xmx512m", "-Dlog4j.configuration=file:/dev/null", "-cp", f"{jars}/*",
            "org.apache.kafka.tools.ProducerPerformance", "--topic", topic,
            "--num-records", str(records), "--throughput", "-1",
            "--payload-file", str(payload_file), "--payload-delimiter", "\n",
            "--producer-props", *props,
        ]  # fmt: skip
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    match = SUMMARY.search(done.stdout)
    if done.returncode != 0 or match is None:
        output = done.stdout[-2000:] + done.stderr[-2000:]
        raise RuntimeError(f"ProducerPerformance failed:\n{output}")
    return {
        "tool": "org.apache.kafka.tools.ProducerPerformance",
        "producer_props": producer_props,
        "records": int(match["records"]),
        "readings_per_s": round(float(match["rate"])),
        "mb_per_s": float(match["mb"]),
        "latency_ms_p50": int(match["p50"]),
        "latency_ms_p99": int(match["p99"]),
    }


Row = tuple[str, datetime, int, str, int, float, float]
READING_COLUMNS = ("device_id", "ts", "seq", "tz", "interval_s", "energy_kwh", "power_kw")


async def copy_ceiling(database_url: str, rows: Sequence[Row], *, chunk: int) -> dict[str, Any]:
    """COPY ``rows`` into a scratch copy of ``readings``, ``chunk`` rows per transaction."""
    conn = await asyncpg.connect(database_url)
    table = "readings_copy_ceiling"
    try:
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
        await conn.execute(
            f"CREATE TABLE {table} (LIKE readings INCLUDING DEFAULTS INCLUDING CONSTRAINTS"
            " INCLUDING INDEXES)"
        )
        began = time.perf_counter()
        for start in range(0, len(rows), chunk):
            await conn.copy_records_to_table(
                table, records=rows[start : start + chunk], columns=READING_COLUMNS
            )
        seconds = time.perf_counter() - began
        copied = await conn.fetchval(f"SELECT count(*) FROM {table}")
        await conn.execute(f"DROP TABLE {table}")
    finally:
        await conn.close()
    return {
        "tool": "COPY (asyncpg copy_records_to_table) into a copy of readings (primary key, "
        "no rollup triggers)",
        "rows": copied,
        "rows_per_transaction": chunk,
        "readings_per_s": round(len(rows) / seconds),
    }
