"""The stream worker on the real Kafka and PostgreSQL: an accelerated fleet of 20 devices over
48 simulated hours, produced straight to the ``readings`` topic, gives exactly one hourly row
per (device, local hour), each equal to a recomputation from the raw readings in the database,
a forecast for every hour once 24 hours of history exist, and health rows for every hour."""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from schema.device_messages import DeviceBirth, Location
from schema.topics import KafkaTopics
from simulator.devices import tick_time
from simulator.fleet import build_fleet
from stream.core.localtime import local_hour

from ..conftest import Services, Spawn, Spawned
from ..fixtures.consumer_group import unacknowledged
from ..fixtures.waiting import wait_until_async

pytestmark = pytest.mark.integration

DEVICES, HOURS, INTERVAL_S, SEED = 20, 48, 900, 5
START = datetime(2026, 3, 28, 0, 0, tzinfo=UTC)  # Berlin's spring change is inside the run


def fleet_messages(topics: KafkaTopics) -> list[tuple[str, str, bytes]]:
    """(topic, key, value): births first, then every device's readings tick by tick."""
    fleet = build_fleet(DEVICES, SEED)
    out = [
        (
            topics.device_birth,
            m.spec.device_id,
            DeviceBirth(
                device_id=m.spec.device_id,
                kind=str(m.spec.kind),
                tz=m.spec.tz,
                location=Location(latitude=0.0, longitude=0.0),
                nominal_kw=m.spec.nominal_kw,
                firmware="test",
                interval_s=INTERVAL_S,
                ts=START,
            )
            .model_dump_json()
            .encode(),
        )
        for m in fleet
    ]
    for tick in range(HOURS * 3600 // INTERVAL_S):
        at = tick_time(START, tick, INTERVAL_S)
        out += [
            (topics.readings, m.spec.device_id, m.reading(tick, at, INTERVAL_S).to_json())
            for m in fleet
        ]
    return out


async def produce(bootstrap: str, messages: list[tuple[str, str, bytes]]) -> None:
    async with AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", linger_ms=20
    ) as producer:
        futures = [await producer.send(t, v, key=k.encode()) for t, k, v in messages]
        await asyncio.gather(*futures)


def start_worker(
    spawn: Spawn, services: Services, database: str, namespace: str, n: int = 0, **env: str
) -> Spawned:
    return spawn(
        f"stream-{n}",
        "stream.worker",
        {
            "WATTSTREAM_STREAM_KAFKA_BOOTSTRAP": services.kafka_bootstrap,
            "WATTSTREAM_STREAM_DATABASE_URL": database,
            "WATTSTREAM_STREAM_APP_ID": f"worker-{namespace}",
            "WATTSTREAM_STREAM_TOPIC_NAMESPACE": namespace,
            "WATTSTREAM_STREAM_DATA_DIR": f"/tmp/wattstream-test-{namespace}-{n}",
            # A killed worker's partitions are taken over after this (Faust's default: 60 s).
            "WATTSTREAM_STREAM_SESSION_TIMEOUT_S": "10",
            **env,
        },
    )


async def expected_closed_hours(conn: asyncpg.Connection) -> int:
    """Hours whose end is at or before the watermark, from the raw readings themselves."""
    rows = await conn.fetch("SELECT DISTINCT device_id, tz FROM readings")
    watermark = await conn.fetchval("SELECT max(ts) FROM readings") - timedelta(minutes=5)
    total = 0
    for row in rows:
        first = await conn.fetchval(
            "SELECT min(ts) FROM readings WHERE device_id = $1", row["device_id"]
        )
        hour = local_hour(first, row["tz"])
        while hour.end <= watermark:
            total += 1
            hour = local_hour(hour.end, row["tz"])
    return total


async def wait_for_rows(conn: asyncpg.Connection, table: str, count: int, *procs: Spawned) -> None:
    async def enough() -> bool:
        have: int = await conn.fetchval(f"SELECT count(*) FROM {table}")
        return have >= count

    async def missing() -> str:
        gaps = await conn.fetch(
            "SELECT device_id, s AS seq FROM (SELECT device_id, generate_series(0, max(seq)) AS s"
            " FROM readings GROUP BY device_id) g WHERE NOT EXISTS (SELECT 1 FROM readings r"
            " WHERE r.device_id = g.device_id AND r.seq = g.s) ORDER BY 1, 2 LIMIT 20"
        )
        tails = "\n".join(p.log_tail(15) for p in procs)
        return f"missing readings {gaps}\n{tails}"

    await wait_until_async(
        f"{count} rows in {table}", enough, 240, interval_s=1, watched=procs, detail=missing
    )


async def wait_for_every_event_processed(
    services: Services, topics: KafkaTopics, namespace: str, *procs: Spawned
) -> None:
    """Until the workers acknowledged every event they read (after their database commit), so
    nothing more can come from them."""
    source = [topics.readings, topics.device_birth, topics.device_status]

    async def caught_up() -> bool:
        lag = await unacknowledged(services.kafka_bootstrap, f"worker-{namespace}", source)
        return lag == 0

    await wait_until_async(
        "the workers' acknowledgement of every event", caught_up, 120, interval_s=1, watched=procs
    )


async def recomputed_hours(
    conn: asyncpg.Connection,
) -> dict[tuple[str, datetime], tuple[int, float]]:
    sums: dict[tuple[str, datetime], list[Any]] = defaultdict(lambda: [0, 0.0])
    for r in await conn.fetch("SELECT device_id, ts, tz, energy_kwh FROM readings"):
        key = (r["device_id"], local_hour(r["ts"], r["tz"]).start)
        sums[key][0] += 1
        sums[key][1] += r["energy_kwh"]
    return {k: (v[0], v[1]) for k, v in sums.items()}


async def check_invariants(conn: asyncpg.Connection) -> None:
    produced = DEVICES * HOURS * 3600 // INTERVAL_S
    assert await conn.fetchval("SELECT count(*) FROM readings") == produced
    hourly = await conn.fetch("SELECT device_id, hour_start, reading_count, energy_kwh FROM hourly")
    keys = [(r["device_id"], r["hour_start"]) for r in hourly]
    assert len(keys) == len(set(keys)) == await expected_closed_hours(conn)
    recomputed = await recomputed_hours(conn)
    for r in hourly:
        count, energy = recomputed[(r["device_id"], r["hour_start"])]
        assert r["reading_count"] == count
        assert r["energy_kwh"] == pytest.approx(energy, abs=1e-9)
    # A forecast for every hour after the first 24 closed ones, from the model in artifacts/.
    forecasts = await conn.fetchval("SELECT count(DISTINCT (device_id, hour_start)) FROM forecasts")
    per_device = await conn.fetch("SELECT device_id, count(*) AS n FROM hourly GROUP BY device_id")
    assert forecasts == sum(r["n"] - 24 + 1 for r in per_device)
    health = await conn.fetch("SELECT * FROM health WHERE rmse_24h IS NOT NULL")
    assert health, "no health row has forecast metrics"
    assert all(
        h["mae_24h"] is not None and h["naive_rmse_24h"] is not None and h["status"] != "unknown"
        for h in health
    )
    assert await conn.fetchval("SELECT count(*) FROM health") == len(hourly)


async def test_accelerated_fleet_gives_exact_hours_forecasts_and_health(
    services: Services, database: str, kafka_topics: KafkaTopics, namespace: str, spawn: Spawn
) -> None:
    await produce(services.kafka_bootstrap, fleet_messages(kafka_topics))
    worker = start_worker(spawn, services, database, namespace)
    conn = await asyncpg.connect(database)
    try:
        expected = DEVICES * HOURS * 3600 // INTERVAL_S
        await wait_for_rows(conn, "readings", expected, worker)
        await wait_for_rows(conn, "health", await expected_closed_hours(conn), worker)
        await wait_for_every_event_processed(services, kafka_topics, namespace, worker)
        await check_invariants(conn)
    finally:
        await conn.close()


async def test_a_second_worker_joining_splits_the_partitions(
    services: Services, database: str, kafka_topics: KafkaTopics, namespace: str, spawn: Spawn
) -> None:
    messages = fleet_messages(kafka_topics)
    half = len(messages) // 2
    await produce(services.kafka_bootstrap, messages[:half])
    first = start_worker(spawn, services, database, namespace, 0)
    conn = await asyncpg.connect(database)
    try:
        await wait_for_rows(conn, "hourly", 20, first)
        second = start_worker(spawn, services, database, namespace, 1)
        # The rebalance gives the newcomer part of the device topics: its Kafka consumer logs
        # "Setting newly assigned partitions {TopicPartition(topic='<readings>', ...), ...}".
        assigned = re.compile(
            r"newly assigned partitions .*?" + re.escape(f"topic='{kafka_topics.readings}'")
        )
        await wait_until_async(
            "partitions for the second worker",
            lambda: assigned.search(second.log.read_text(errors="replace")) is not None,
            120,
            interval_s=1,
            watched=[second],
            detail=second.log_tail,
        )
        await produce(services.kafka_bootstrap, messages[half:])
        await wait_for_rows(conn, "readings", DEVICES * HOURS * 3600 // INTERVAL_S, first, second)
        await wait_for_rows(conn, "health", await expected_closed_hours(conn), first, second)
        await wait_for_every_event_processed(services, kafka_topics, namespace, first, second)
        await check_invariants(conn)
    finally:
        await conn.close()
