"""Cold start of the stream worker: started before any of its topics exist (a fresh cluster or
namespace, as compose starts it), it processes the first readings within seconds, neither
idling until a metadata refresh nor crash-looping into a silent stall (issue 20)."""

from __future__ import annotations

import asyncpg
import pytest

from schema.topics import KafkaTopics

from ..conftest import Services, Spawn, Spawned
from ..e2e.test_cold_start import wait_until
from ..fixtures import worker_fleet as fleet

pytestmark = pytest.mark.faults


async def wait_rows(
    conn: asyncpg.Connection, table: str, count: int, within_s: float, proc: Spawned
) -> None:
    """Wait until ``table`` has ``count`` rows; fail after ``within_s`` or if ``proc`` exits."""

    async def enough() -> bool:
        return bool(await conn.fetchval(f"SELECT count(*) FROM {table}") >= count)

    await wait_until(f"{count} rows in {table}", enough, within_s, proc)


async def test_worker_started_before_its_topics_exist_processes_everything(
    services: Services, database: str, namespace: str, spawn: Spawn
) -> None:
    worker = fleet.start_worker(spawn, services, database, namespace)
    conn = await asyncpg.connect(database)
    try:
        # Wait until the worker is up (it has registered its offsets table) before any topic
        # exists: the worker wins the start-up race.
        async def ready() -> bool:
            return "Worker ready" in worker.log.read_text(errors="replace")

        await wait_until("the worker ready", ready, 60, worker)
        await fleet.produce(services.kafka_bootstrap, fleet.fleet_messages(KafkaTopics(namespace)))
        await wait_rows(conn, "readings", fleet.READINGS, 90, worker)
        await wait_rows(conn, "health", await fleet.expected_closed_hours(conn), 60, worker)
        await fleet.check_invariants(conn)
    finally:
        await conn.close()
