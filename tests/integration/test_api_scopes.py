"""Scoped API keys against the real app, database, Kafka and broker: 401 without a valid key,
403 with one of too narrow a scope, exactly where reads, writes and admin need them; the live
feed's keys are tested in test_api_live.py (a real server: the test client's websockets do not
close cleanly)."""

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

READ = "scope-test-read-key-0123456789"
WRITE = "scope-test-write-key-0123456789"
ADMIN = "scope-test-admin-key-0123456789"
PATH_VALUES = {"device_id": "dev-none", "model_id": "no-model"}


@pytest.fixture(scope="module")
async def database(services: Services) -> AsyncIterator[str]:
    async with migrated_database(services) as url:
        yield url


def make_settings(url: str, services: Services, **overrides: Any) -> ApiSettings:
    return ApiSettings(
        database=DatabaseConnection(url=SecretStr(url)),
        kafka=KafkaConnection(bootstrap=services.kafka_bootstrap),
        mqtt=MqttConnection.model_validate(
            {"host": services.mqtt_host, "port": services.mqtt_port, **services.mqtt_auth("api")}
        ),
        topic_namespace=f"t{uuid.uuid4().hex[:10]}",
        read_api_keys=(SecretStr(READ),),
        api_keys=(SecretStr(WRITE),),
        admin_api_keys=(SecretStr(ADMIN),),
        **overrides,
    )


@pytest.fixture(scope="module")
def guarded(database: str, services: Services) -> Iterator[TestClient]:
    """Reads need a key, as outside development."""
    app = create_app(make_settings(database, services, require_read_key=True))
    with TestClient(app) as client:
        yield client


def read_paths(client: TestClient) -> list[str]:
    """Every GET under /api/v1 the app documents, path parameters filled in."""
    document = client.get("/openapi.json").json()
    paths = [
        path.format(**PATH_VALUES)
        for path, operations in document["paths"].items()
        if "get" in operations and path.startswith("/api/v1/")
    ]
    assert len(paths) >= 8  # devices, one device, health, readings, aggregates, forecasts, ...
    return paths


def statuses(client: TestClient, method: str, paths: list[str], key: str | None) -> set[int]:
    headers = {"X-API-Key": key} if key is not None else {}
    return {client.request(method, path, headers=headers).status_code for path in paths}


def test_every_read_needs_a_key_of_any_scope(guarded: TestClient) -> None:
    paths = read_paths(guarded)
    assert statuses(guarded, "GET", paths, None) == {401}
    assert statuses(guarded, "GET", paths, "not-a-key-0123456789") == {401}
    for key in (READ, WRITE, ADMIN):
        answered = statuses(guarded, "GET", paths, key)
        assert not answered & {401, 403}, (key, answered)
    refused = guarded.get("/api/v1/devices")
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["www-authenticate"].startswith("ApiKey")
    # Operations endpoints stay open (probes, scrapers).
    assert {guarded.get(path).status_code for path in ("/live", "/metrics")} == {200}
    assert guarded.get("/").status_code == 200


def test_writes_need_write_and_admin_needs_admin(guarded: TestClient) -> None:
    command = "/api/v1/devices/dev-none/commands"
    body = {"action": "online"}

    def post(path: str, key: str | None, **kwargs: Any) -> int:
        headers = {"X-API-Key": key} if key is not None else {}
        return guarded.post(path, headers=headers, **kwargs).status_code

    assert [post(command, k, json=body) for k in (None, "wrong-key-0123456789", READ)] == [
        401,
        401,
        403,
    ]
    # Past the key: the device is unknown.
    assert [post(command, k, json=body) for k in (WRITE, ADMIN)] == [404, 404]
    activate = "/api/v1/admin/models/no-model/activate"
    assert [post(activate, k) for k in (None, READ, WRITE, ADMIN)] == [401, 403, 403, 404]
    acknowledge = "/api/v1/alerts/no-alert/acknowledge"
    assert [post(acknowledge, k, json={"by": "ana"}) for k in (None, READ, WRITE, ADMIN)] == [
        401,
        403,
        404,
        404,
    ]
    detail = guarded.post(activate, headers={"X-API-Key": WRITE}).json()["detail"]
    assert "scope admin" in detail
    assert "scope write" in detail


def test_reads_are_open_in_development_only(database: str, services: Services) -> None:
    settings = make_settings(database, services)
    assert settings.environment == "development"
    assert not settings.reads_need_key
    with TestClient(create_app(settings)) as client:
        assert statuses(client, "GET", read_paths(client), None).isdisjoint({401, 403})
        # Writes still need their key.
        assert client.post("/api/v1/devices/dev-none/commands", json={}).status_code == 401
