"""With its database not answering (a proxy in front of the real PostgreSQL, frozen: it accepts
connections and answers nothing), every endpoint of the API answers within the configured
bound, 503 problem+json with Retry-After; once the database answers again the API recovers by
itself."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from api.settings import ApiSettings
from schema.connections import DatabaseConnection, KafkaConnection, MqttConnection

from ..conftest import migrated_database
from ..fixtures.frozen import freezable_proxy, through
from ..fixtures.waiting import wait_until

if TYPE_CHECKING:
    from tests.conftest import Services

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

KEY = "database-down-key-0123456789"
BOUND_S = 2.0
SLACK_S = 1.5  # the test client's own overhead on a loaded machine


@pytest.fixture
async def database(services: Services) -> AsyncIterator[str]:
    async with migrated_database(services) as url:
        yield url


DATABASE_FREE = {
    "/api/v1/tariffs",
    "/api/v1/admin/training/{training_id}",
    "/api/v1/admin/training/{training_id}/events",
}
"""GET endpoints that answer without the database (the tariff book, the trainings in memory)."""


def test_every_endpoint_answers_503_in_bound_and_recovers(
    database: str, services: Services
) -> None:
    target = urlsplit(database)
    assert target.hostname is not None
    assert target.port is not None
    with freezable_proxy(target.hostname, target.port) as proxy:
        settings = ApiSettings(
            database=DatabaseConnection(url=SecretStr(through(database, proxy.port))),
            kafka=KafkaConnection(bootstrap=services.kafka_bootstrap),
            mqtt=MqttConnection.model_validate(
                {
                    "host": services.mqtt_host,
                    "port": services.mqtt_port,
                    **services.mqtt_auth("api"),
                }
            ),
            topic_namespace=f"t{uuid.uuid4().hex[:10]}",
            api_keys=(SecretStr(KEY),),
            admin_api_keys=(SecretStr(KEY + "-admin"),),
            db_timeout_s=BOUND_S / 2,
            request_timeout_s=BOUND_S,
            retry_after_s=7,
        )
        with TestClient(create_app(settings)) as client:
            document = client.get("/openapi.json").json()
            # Every GET that reads the database; the tariff book is read from its file at start.
            gets = [
                path.format(device_id="dev-x", model_id="m")
                for path, operations in document["paths"].items()
                if "get" in operations and path.startswith("/api/v1/") and path not in DATABASE_FREE
            ]
            assert client.get("/api/v1/devices").status_code == 200
            proxy.freeze()
            requests = [("GET", path, None) for path in gets] + [
                ("POST", "/api/v1/devices/dev-x/commands", {"action": "online"}),
                ("POST", "/api/v1/admin/models/m/activate", None),
                ("POST", "/api/v1/alerts/dev-x.residual.1/acknowledge", {"by": "ana"}),
                ("POST", "/api/v1/alerts/dev-x.residual.1/resolve", {"by": "ana"}),
            ]
            for method, path, body in requests:
                started = time.monotonic()
                response = client.request(
                    method,
                    path,
                    json=body,
                    params={"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"},
                    headers={"X-API-Key": KEY + "-admin"},
                )
                elapsed = time.monotonic() - started
                assert response.status_code == 503, (path, response.text)
                assert elapsed < BOUND_S + SLACK_S, (path, elapsed)
                assert response.headers["content-type"] == "application/problem+json"
                assert response.headers["retry-after"] == "7"
            started = time.monotonic()
            assert client.get("/ready").status_code == 503
            assert time.monotonic() - started < BOUND_S + SLACK_S
            assert client.get("/live").status_code == 200
            proxy.thaw()
            wait_until(
                "the API answering from its database again",
                lambda: client.get("/api/v1/devices").status_code == 200,
                30,
                interval_s=0.2,
            )
