"""The stream worker's Prometheus metrics on the real Kafka and PostgreSQL: the accelerated fleet
(:mod:`tests.fixtures.worker_fleet`) with one reading held back until its hour has closed (a
restatement) and one undecodable reading (a dead letter); once everything is processed,
``/metrics`` has every family the issue asks for, with the values the database agrees with."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from schema.topics import READINGS_PARTITIONS, KafkaTopics

from ..conftest import Services, Spawn, free_port
from ..fixtures import worker_fleet as fleet
from ..fixtures.bridge import http_get
from ..fixtures.waiting import wait_until_async

pytestmark = pytest.mark.integration

BATCH_SIZE = 400  # a few batches, so the histograms see more than one


async def scrape(port: int) -> dict[str, list[Sample]]:
    status, body = await asyncio.to_thread(http_get, port, "/metrics")
    assert status == 200
    return {f.name: f.samples for f in text_string_to_metric_families(body.decode())}


def value(families: dict[str, list[Sample]], family: str, sample: str, **labels: str) -> float:
    found = [s.value for s in families[family] if s.name == sample and s.labels == labels]
    assert len(found) == 1, (family, sample, labels, families.get(family))
    return found[0]


async def test_the_worker_serves_its_metrics(
    services: Services, database: str, kafka_topics: KafkaTopics, namespace: str, spawn: Spawn
) -> None:
    messages = fleet.fleet_messages(kafka_topics)
    # A reading of the first device at 01:00 UTC is held back until its hour has closed.
    births = fleet.DEVICES
    held = messages.pop(births + 4 * fleet.DEVICES)
    assert held[0] == kafka_topics.readings
    await fleet.produce(services.kafka_bootstrap, messages)
    port = free_port()
    worker = fleet.start_worker(
        spawn,
        services,
        database,
        namespace,
        WATTSTREAM_STREAM_METRICS_PORT=str(port),
        WATTSTREAM_STREAM_BATCH_SIZE=str(BATCH_SIZE),
    )
    conn = await asyncpg.connect(database)
    try:
        await fleet.wait_for_rows(conn, "readings", fleet.READINGS - 1, worker)
        bad = (kafka_topics.readings, held[1], b'{"not": "a reading"')
        await fleet.produce(services.kafka_bootstrap, [held, bad])
        await fleet.wait_for_rows(conn, "readings", fleet.READINGS, worker)
        await fleet.wait_for_every_event_processed(services, kafka_topics, namespace, worker)

        async def caught_up() -> dict[str, list[Sample]] | None:
            families = await scrape(port)
            lags = families["wattstream_worker_consumer_lag"]
            settled = len(lags) == READINGS_PARTITIONS and all(s.value == 0 for s in lags)
            return families if settled else None

        families = await wait_until_async(
            "every partition's lag at 0 on /metrics", caught_up, 30, interval_s=1, watched=[worker]
        )
        hourly = await conn.fetchval("SELECT count(*) FROM hourly")
        forecasts = await conn.fetchval("SELECT count(*) FROM forecasts")
    finally:
        await conn.close()

    partitions = {s.labels["partition"] for s in families["wattstream_worker_consumer_lag"]}
    assert partitions == {str(p) for p in range(READINGS_PARTITIONS)}
    assert {s.labels["topic"] for s in families["wattstream_worker_consumer_lag"]} == {
        kafka_topics.readings
    }
    events = fleet.DEVICES + fleet.READINGS + 1  # births, readings, the bad one
    batches = value(families, "wattstream_worker_batches", "wattstream_worker_batches_total")
    assert batches >= events / BATCH_SIZE
    size = "wattstream_worker_batch_size"
    assert value(families, size, f"{size}_count") == batches
    assert value(families, size, f"{size}_sum") == events
    assert value(families, size, f"{size}_bucket", le="+Inf") == batches
    assert value(families, size, f"{size}_bucket", le="500.0") == batches  # none above
    latency = "wattstream_worker_batch_seconds"
    assert value(families, latency, f"{latency}_count") == batches
    assert 0 < value(families, latency, f"{latency}_sum") < 600
    assert value(families, "wattstream_worker_events", "wattstream_worker_events_total") == events
    closed = "wattstream_worker_hours_closed"
    assert value(families, closed, f"{closed}_total") == hourly > 0
    made = value(families, "wattstream_worker_forecasts", "wattstream_worker_forecasts_total")
    assert made >= forecasts > 0
    rows = "wattstream_worker_rows_committed"
    assert value(families, rows, f"{rows}_total", table="readings") == fleet.READINGS
    assert value(families, rows, f"{rows}_total", table="devices") == fleet.DEVICES
    assert value(families, rows, f"{rows}_total", table="hourly") == hourly + 1  # restated
    restated = "wattstream_worker_restatements"
    assert value(families, restated, f"{restated}_total") == 1
    dead = "wattstream_worker_dead_letters"
    assert value(families, dead, f"{dead}_total") == 1
    assert value(families, "wattstream_worker_lag", "wattstream_worker_lag") == 0
    status, _ = await asyncio.to_thread(http_get, port, "/healthz")
    assert status == 200
