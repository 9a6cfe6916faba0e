"""The stream worker on the real Kafka and PostgreSQL: an accelerated fleet of 20 devices over
48 simulated hours, produced straight to the ``readings`` topic, gives exactly one hourly row
per (device, local hour), each equal to a recomputation from the raw readings in the database,
a forecast for every hour once 24 hours of history exist, and health rows for every hour.
The fleet, the workers and the invariants are :mod:`tests.fixtures.worker_fleet`."""

from __future__ import annotations

import re

import asyncpg
import pytest

from schema.topics import KafkaTopics

from ..conftest import Services, Spawn
from ..fixtures import worker_fleet as fleet
from ..fixtures.waiting import wait_until_async

pytestmark = pytest.mark.integration


async def test_accelerated_fleet_gives_exact_hours_forecasts_and_health(
    services: Services, database: str, kafka_topics: KafkaTopics, namespace: str, spawn: Spawn
) -> None:
    await fleet.produce(services.kafka_bootstrap, fleet.fleet_messages(kafka_topics))
    worker = fleet.start_worker(spawn, services, database, namespace)
    conn = await asyncpg.connect(database)
    try:
        await fleet.check_all_stored_once(conn, services, kafka_topics, namespace, worker)
    finally:
        await conn.close()


async def test_a_second_worker_joining_splits_the_partitions(
    services: Services, database: str, kafka_topics: KafkaTopics, namespace: str, spawn: Spawn
) -> None:
    first_half, second_half = fleet.fleet_halves(kafka_topics)
    await fleet.produce(services.kafka_bootstrap, first_half)
    first = fleet.start_worker(spawn, services, database, namespace, 0)
    conn = await asyncpg.connect(database)
    try:
        await fleet.wait_for_rows(conn, "hourly", 20, first)
        second = fleet.start_worker(spawn, services, database, namespace, 1)
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
        await fleet.produce(services.kafka_bootstrap, second_half)
        await fleet.check_all_stored_once(conn, services, kafka_topics, namespace, first, second)
    finally:
        await conn.close()
