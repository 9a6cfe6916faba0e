"""Request limits of the real app (real database, Kafka and broker behind it): 413 for a body
over the limit, declared or streamed; 429 with Retry-After once a client's bucket is empty,
per client; probes never limited. Both problem+json."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from api.settings import ApiSettings
from schema.connections import DatabaseConnection, KafkaConnection, MqttConnection

from ..conftest import migrated_database

if TYPE_CHECKING:
    from tests.conftest import Services

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

KEY = "limits-test-write-key-0123456789"
OTHER = "limits-test-other-key-0123456789"
COMMANDS = "/api/v1/devices/dev-none/commands"


@pytest.fixture(scope="module")
async def database(services: Services) -> AsyncIterator[str]:
    async with migrated_database(services) as url:
        yield url


def app_client(url: str, services: Services, **overrides: Any) -> TestClient:
    settings = ApiSettings(
        database=DatabaseConnection(url=SecretStr(url)),
        kafka=KafkaConnection(bootstrap=services.kafka_bootstrap),
        mqtt=MqttConnection.model_validate(
            {"host": services.mqtt_host, "port": services.mqtt_port, **services.mqtt_auth("api")}
        ),
        topic_namespace=f"t{uuid.uuid4().hex[:10]}",
        api_keys=(SecretStr(KEY), SecretStr(OTHER)),
        **overrides,
    )
    return TestClient(create_app(settings))


@pytest.fixture(scope="module")
def limited(database: str, services: Services) -> Iterator[TestClient]:
    with app_client(
        database, services, max_body_bytes=1000, rate_limit_per_s=0.01, rate_limit_burst=5
    ) as client:
        yield client


def test_a_body_over_the_limit_is_a_413(limited: TestClient) -> None:
    headers = {"X-API-Key": KEY, "Content-Type": "application/json"}
    big = b'{"action": "online", "pad": "' + b"x" * 2000 + b'"}'
    declared = limited.post(COMMANDS, content=big, headers=headers)
    assert declared.status_code == 413
    assert declared.headers["content-type"] == "application/problem+json"
    assert "1000 bytes" in declared.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked, counted as it arrives
        yield big[:600]
        yield big[600:]

    streamed = limited.post(COMMANDS, content=chunks(), headers=headers)
    assert streamed.status_code == 413
    assert streamed.headers["content-type"] == "application/problem+json"
    # Under the limit the request goes on (to the unknown device).
    small = limited.post(COMMANDS, json={"action": "online"}, headers={"X-API-Key": OTHER})
    assert small.status_code == 404


def test_a_client_past_its_burst_gets_a_429_with_retry_after(limited: TestClient) -> None:
    answers = [limited.get("/api/v1/devices").status_code for _ in range(8)]
    # The module's earlier requests came from keyed clients: this one has its whole burst.
    assert answers == [200] * 5 + [429] * 3
    refused = limited.get("/api/v1/devices")
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert int(refused.headers["retry-after"]) >= 1
    assert "retry in" in refused.json()["detail"]
    # Probes are never limited.
    assert {limited.get("/live").status_code for _ in range(10)} == {200}


def test_buckets_are_per_client_and_limits_are_off_by_default(
    database: str, services: Services
) -> None:
    with app_client(database, services, rate_limit_per_s=0.01, rate_limit_burst=2) as client:
        keyed = [
            client.get("/api/v1/devices", headers={"X-API-Key": KEY}).status_code for _ in range(3)
        ]
        assert keyed == [200, 200, 429]
        # Another key has a bucket of its own.
        assert client.get("/api/v1/devices", headers={"X-API-Key": OTHER}).status_code == 200
    with app_client(database, services) as client:  # development: no rate limit by default
        assert {client.get("/api/v1/devices").status_code for _ in range(150)} == {200}
