"""The live feed tells its clients when Kafka stops answering and when it is back, and recovers
by itself. The API reaches the real Kafka through a proxy (:class:`KafkaProxy`, which keeps
every connection of the client on itself) that the test freezes (a broker that accepts and
never answers) and then stops (nothing listening); the shared broker itself is never touched.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.fixtures.frozen import kafka_proxy

from .test_api_live import Producer, api_server, hello, produce, reading

if TYPE_CHECKING:
    from tests.conftest import Services

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

__all__ = ["produce"]  # the producer fixture, shared with the other live-feed tests

CHECK_S = 1.0
"""How often the feed checks Kafka, and how long it waits for an answer."""
WITHIN_S = 30.0
"""Bound on being told (the check, the consumer's own timeouts, backoff up to a few s)."""


async def frames_until_upstream(ws: ClientConnection, kafka: str) -> list[dict[str, Any]]:
    """Every frame (heartbeats apart) up to and including an ``upstream`` frame with
    ``kafka``."""
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(WITHIN_S):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == "heartbeat":
                continue
            got.append(frame)
            if frame["type"] == "upstream" and frame["kafka"] == kafka:
                return got


async def next_event(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(WITHIN_S):
        while True:
            frame: dict[str, Any] = json.loads(await ws.recv())
            if frame["type"] == "event":
                return frame


async def kafka_up_gauge(base: str) -> float:
    async with httpx.AsyncClient(base_url=f"http://{base}") as http:
        metrics = (await http.get("/metrics")).text
    (line,) = [m for m in metrics.splitlines() if m.startswith("wattstream_api_live_kafka_up ")]
    return float(line.split()[1])


async def test_clients_are_told_when_kafka_goes_and_comes_back(
    database: str, services: Services, namespace: str, produce: Producer
) -> None:
    topics = produce.topics
    with kafka_proxy(services.kafka_bootstrap) as proxy:
        bootstrap = f"127.0.0.1:{proxy.port}"
        async with (
            api_server(
                database, services, namespace, bootstrap=bootstrap, live_kafka_check_s=CHECK_S
            ) as base,
            connect(f"ws://{base}/api/v1/ws/live?kinds=readings") as ws,
        ):
            greeting = await hello(ws)
            assert greeting["upstream"]["kafka"] == "up", greeting
            await produce.send(topics.readings, "dev-a", reading("dev-a", 1))
            assert (await next_event(ws))["data"]["seq"] == 1

            # Frozen: connections open, nothing answered.
            proxy.freeze()
            down = (await frames_until_upstream(ws, "down"))[-1]
            assert "did not answer" in down["detail"], down
            assert down["since"].endswith("+00:00")
            assert await kafka_up_gauge(base) == 0.0
            # Produced while the feed cannot read it (the producer goes straight to Kafka).
            await produce.send(topics.readings, "dev-a", reading("dev-a", 2))

            proxy.thaw()
            up = await frames_until_upstream(ws, "up")
            assert [f["type"] for f in up] == ["upstream"], up  # nothing before it
            assert up[-1]["detail"] is None
            # The feed resumes where it was: what was produced meanwhile is delivered.
            assert (await next_event(ws))["data"]["seq"] == 2
            assert await kafka_up_gauge(base) == 1.0

            # Stopped: nothing listens on the address any more.
            port = proxy.port
            proxy.close()
            await frames_until_upstream(ws, "down")
            # A client connecting now learns it from its hello.
            async with connect(f"ws://{base}/api/v1/ws/live") as late:
                assert (await hello(late))["upstream"]["kafka"] == "down"
            with kafka_proxy(services.kafka_bootstrap, port):
                await frames_until_upstream(ws, "up")
                await produce.send(topics.readings, "dev-a", reading("dev-a", 3))
                assert (await next_event(ws))["data"]["seq"] == 3
