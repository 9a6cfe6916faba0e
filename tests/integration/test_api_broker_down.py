"""Device commands are the API's one path that produces to a message broker (MQTT: the API
produces nothing to Kafka). With the broker away - nothing listening on its port, or a broker
that accepts and never answers - a command answers 503 problem+json with ``Retry-After``
within ``command_timeout_s``, never hangs, and is never reported as sent; once the broker is
back, commands are accepted again without a restart. The broker is the real Mosquitto behind
a TCP proxy on the port the API was given (no mock)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from api.app import create_app

from ..conftest import free_port, migrated_database
from ..fixtures.api import add_devices
from ..fixtures.frozen import freezable_proxy
from ..fixtures.waiting import wait_until
from .test_api_rest import KEY, settings_for

if TYPE_CHECKING:
    from tests.conftest import Services

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

BOUND_S = 1.5
SLACK_S = 1.5  # the test client's own overhead on a loaded machine


@pytest.fixture
async def database(services: Services) -> AsyncIterator[str]:
    async with migrated_database(services) as url:
        await add_devices(url, ["dev-cmd"])
        yield url


def timed(call: Callable[[], Response]) -> tuple[Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def assert_503_in_bound(call: Callable[[], Response]) -> None:
    response, elapsed = timed(call)
    assert response.status_code == 503, response.text
    assert elapsed < BOUND_S + SLACK_S, elapsed
    assert response.headers["content-type"].startswith("application/problem+json")
    assert int(response.headers["retry-after"]) >= 1
    assert "did not acknowledge" in response.json()["detail"]


def test_commands_answer_503_in_bound_while_the_broker_is_away_and_recover(
    database: str, services: Services
) -> None:
    port = free_port()  # nothing listens here yet
    settings = settings_for(
        database, services, f"t{uuid.uuid4().hex[:10]}", command_timeout_s=BOUND_S
    )
    settings = settings.model_copy(
        update={"mqtt": settings.mqtt.model_copy(update={"host": "127.0.0.1", "port": port})}
    )
    with TestClient(create_app(settings)) as client:

        def command() -> Response:
            return client.post(
                "/api/v1/devices/dev-cmd/commands",
                json={"action": "online"},
                headers={"X-API-Key": KEY},
            )

        for _ in range(2):  # refused connections: every attempt answers in bound
            assert_503_in_bound(command)
        with freezable_proxy(services.mqtt_host, services.mqtt_port, port=port) as broker:
            # Back: the publisher reconnects by itself (jittered backoff).
            wait_until("a command accepted again", lambda: command().status_code == 202, 60)
            broker.freeze()  # accepts, never answers: the PUBACK does not come
            assert_503_in_bound(command)
            broker.thaw()  # a restarted broker: connections dropped, new ones served
            wait_until("accepted after the restart", lambda: command().status_code == 202, 60)
        assert_503_in_bound(command)  # gone again


def test_concurrent_commands_each_answer_in_bound(database: str, services: Services) -> None:
    """Many clients at once while the broker is away: none waits behind another."""
    settings = settings_for(
        database, services, f"t{uuid.uuid4().hex[:10]}", command_timeout_s=BOUND_S
    )
    settings = settings.model_copy(
        update={"mqtt": settings.mqtt.model_copy(update={"port": free_port()})}
    )
    with TestClient(create_app(settings)) as client:

        def command(_: int) -> tuple[Response, float]:
            return timed(
                lambda: client.post(
                    "/api/v1/devices/dev-cmd/commands",
                    json={"action": "online"},
                    headers={"X-API-Key": KEY},
                )
            )

        with ThreadPoolExecutor(max_workers=10) as pool:
            # Ten database connections first (the pool opens them as needed, slowly on a
            # loaded machine): the bound under test is the broker's.
            warm = pool.map(lambda _: client.get("/api/v1/devices/dev-cmd"), range(10))
            assert {response.status_code for response in warm} == {200}
            started = time.monotonic()
            answers = list(pool.map(command, range(10)))
        elapsed = time.monotonic() - started
    assert {response.status_code for response, _ in answers} == {503}
    # In bound each, with the load of ten at once on a shared machine; and together: one
    # after another would take ten bounds.
    assert max(took for _, took in answers) < 2 * BOUND_S + SLACK_S
    assert elapsed < 10 * BOUND_S / 2
