"""A worker that cannot make progress says so and still stops when told (issue 20).

Its database stops answering (a proxy in front of the real PostgreSQL, frozen) while readings
wait: within the stall time its ``/healthz`` answers 503 with the lag and the time since its
last batch, its log says where its tasks wait and what its consumer does, and SIGTERM ends it
within its stop bound, although its agent is stuck in a database write. A fresh worker then
stores everything exactly once.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from urllib.parse import urlsplit

import asyncpg
import pytest

from schema.topics import KafkaTopics

from ..conftest import Services, Spawn, free_port
from ..fixtures import worker_fleet as fleet
from ..fixtures.bridge import http_get
from ..fixtures.frozen import freezable_proxy, through
from ..fixtures.waiting import wait_until_async

pytestmark = pytest.mark.faults

STALL_AFTER_S = 5
STOP_TIMEOUT_S = 10
SLACK_S = 10  # the interpreter's own exit on a loaded machine


async def test_a_stalled_worker_reports_unhealthy_says_why_and_stops_on_sigterm(
    services: Services, database: str, kafka_topics: KafkaTopics, namespace: str, spawn: Spawn
) -> None:
    first_half, second_half = fleet.fleet_halves(kafka_topics)
    await fleet.produce(services.kafka_bootstrap, first_half)
    target = urlsplit(database)
    assert target.hostname is not None and target.port is not None
    port = free_port()
    with freezable_proxy(target.hostname, target.port) as proxy:
        proxied = through(database, proxy.port)
        stalled = fleet.start_worker(
            spawn,
            services,
            proxied,
            namespace,
            0,
            WATTSTREAM_STREAM_STALL_AFTER_S=str(STALL_AFTER_S),
            WATTSTREAM_STREAM_STOP_TIMEOUT_S=str(STOP_TIMEOUT_S),
            WATTSTREAM_STREAM_METRICS_PORT=str(port),
        )
        conn = await asyncpg.connect(database)
        try:
            await fleet.wait_for_rows(conn, "hourly", 10, stalled)
            proxy.freeze()
            await fleet.produce(services.kafka_bootstrap, second_half)

            async def unhealthy() -> dict[str, object] | None:
                status, body = await asyncio.to_thread(http_get, port, "/healthz")
                return json.loads(body) if status == 503 else None

            await wait_until_async(
                "a 503 from the stalled worker", unhealthy, 60, interval_s=0.5, watched=[stalled]
            )
            detail = await unhealthy()
            assert detail is not None
            text = json.dumps(detail)
            assert "readings waiting" in text and "no batch for" in text, text

            def logged() -> bool:
                log = stalled.log.read_text(errors="replace")
                return "its consumer:" in log

            await wait_until_async("the stall's log", logged, 30, watched=[stalled])
            log = stalled.log.read_text(errors="replace")
            assert "worker unhealthy; where its tasks wait" in log
            # The agent's whole await chain, down to the database write it waits for.
            chain = log.split("where its tasks wait", 1)[1].split("its threads:", 1)[0]
            assert "stream/worker/app.py" in chain and "stream/worker/sink.py" in chain, chain
            assert f"{kafka_topics.readings}[" in log.split("its consumer:", 1)[1]

            asked = time.monotonic()
            stalled.process.send_signal(signal.SIGTERM)
            stalled.process.wait(timeout=STOP_TIMEOUT_S + SLACK_S)
            took = time.monotonic() - asked
            assert took < STOP_TIMEOUT_S + SLACK_S, f"stopped {took:.1f} s after SIGTERM"
        finally:
            await conn.close()

    # Nothing the stalled worker held is lost, nothing is stored twice.
    fresh = fleet.start_worker(spawn, services, database, namespace, 1)
    conn = await asyncpg.connect(database)
    try:
        await fleet.check_all_stored_once(conn, services, kafka_topics, namespace, fresh)
    finally:
        await conn.close()
