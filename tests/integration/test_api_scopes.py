"""Scoped API keys against the real app, database, Kafka and broker: 401 without a valid key,
403 with one of too narrow a scope, exactly where reads, writes and admin need them; a key
limited to some devices reaches those only (403 elsewhere, whether the device exists or not)
and sees lists filtered to them. The live feed's keys are tested in test_api_live.py (a real
server: the test client's websockets do not close cleanly)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import jwt
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from api.settings import ApiSettings, DeviceKey
from schema.connections import DatabaseConnection, KafkaConnection, MqttConnection

from ..conftest import migrated_database
from ..fixtures.api import add_devices

if TYPE_CHECKING:
    from tests.conftest import Services

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

READ = "scope-test-read-key-0123456789"
WRITE = "scope-test-write-key-0123456789"
ADMIN = "scope-test-admin-key-0123456789"
SITE = "scope-test-site-key-0123456789"
JWT_SECRET = "scope-test-hs256-secret-0123456789abcdef"
SITE_READ = "scope-test-site-read-key-0123456789"
PATH_VALUES = {"device_id": "dev-none", "model_id": "no-model"}
OWN = ["dev-own", "site_a-1", "site_a-2"]
OTHERS = ["dev-other", "siteXa-1"]  # the prefix's "_" is no wildcard
HOUR = datetime(2026, 3, 29, 10, tzinfo=UTC)


@pytest.fixture(scope="module")
async def database(services: Services) -> AsyncIterator[str]:
    async with migrated_database(services) as url:
        await add_devices(url, OWN + OTHERS)
        conn = await asyncpg.connect(url)
        try:
            await conn.executemany(
                "INSERT INTO alerts (device_id, hour_start, kind, severity, residual_kwh, sigma,"
                " z, message, raised_at, alert_id, last_hour_start)"
                " VALUES ($1, $2, 'residual', 'warning', 1, 0.2, 5, 'a', $3,"
                " $1 || '.residual', $2)",
                [
                    (d, HOUR, HOUR + timedelta(hours=1, minutes=k))
                    for k, d in enumerate(OWN + OTHERS)
                ],
            )
        finally:
            await conn.close()
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
        jwt_secret=SecretStr(JWT_SECRET),
        device_keys=(
            DeviceKey(
                key=SecretStr(SITE), scope="write", devices=("dev-own",), prefixes=("site_a-",)
            ),
            DeviceKey(key=SecretStr(SITE_READ), devices=("dev-own",)),
        ),
        **overrides,
    )


@pytest.fixture(scope="module")
def guarded(database: str, services: Services) -> Iterator[TestClient]:
    """Reads need a key, as outside development."""
    app = create_app(make_settings(database, services, require_read_key=True))
    with TestClient(app) as client:
        yield client


def read_paths(client: TestClient) -> list[str]:
    """Every GET under /api/v1 the app documents, path parameters filled in; not the admin
    ones (a training's state and events), which need admin."""
    document = client.get("/openapi.json").json()
    paths = [
        path.format(**PATH_VALUES)
        for path, operations in document["paths"].items()
        if "get" in operations
        and path.startswith("/api/v1/")
        and not path.startswith("/api/v1/admin/")
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
    for action in ("acknowledge", "resolve"):
        path = f"/api/v1/alerts/no-alert/{action}"
        assert [post(path, k, json={"by": "ana"}) for k in (None, READ, WRITE, ADMIN)] == [
            401,
            403,
            404,
            404,
        ], action
    training = "/api/v1/admin/training"
    for path in (f"{training}/no-training", f"{training}/no-training/events"):
        answered = [statuses(guarded, "GET", [path], k) for k in (None, READ, WRITE, ADMIN)]
        assert answered == [{401}, {403}, {403}, {404}], path
    # Past the key: training is turned off in these settings.
    assert [post(training, k, json={}) for k in (None, READ, WRITE, ADMIN)] == [401, 403, 403, 409]
    detail = guarded.post(activate, headers={"X-API-Key": WRITE}).json()["detail"]
    assert "scope admin" in detail
    assert "scope write" in detail


SECURITY_PAGE = Path(__file__).resolve().parents[2] / "docs" / "security.md"
NOT_IN_THE_DOCUMENT = {"GET /", "GET /docs", "GET /redoc", "GET /openapi.json"}


def documented_scopes() -> dict[str, str]:
    """``"METHOD /path"`` -> the scope docs/security.md's endpoint table names for it."""
    text = SECURITY_PAGE.read_text(encoding="utf-8")
    table = text[text.index("| endpoint | scope needed |") :].split("\n\n", 1)[0]
    scopes = {}
    for row in table.splitlines()[2:]:
        endpoints, needed = row.split(" | ")[:2]
        for endpoint in re.findall(r"`((?:GET|POST|PUT|DELETE|PATCH) /[^`]*)`", endpoints):
            scopes[endpoint] = needed.split()[0]
    return scopes


def test_the_security_page_names_every_operation_with_its_scope(guarded: TestClient) -> None:
    documented = documented_scopes()
    operations = {
        f"{method.upper()} {path}"
        for path, item in guarded.get("/openapi.json").json()["paths"].items()
        for method in item
    }
    assert set(documented) - NOT_IN_THE_DOCUMENT == operations
    values = {**PATH_VALUES, "alert_id": "no-alert", "training_id": "no-training"}
    keys: dict[str, str | None] = {"none": None, "read": READ, "write": WRITE, "admin": ADMIN}
    for endpoint, needed in documented.items():
        method, path = endpoint.split(" ", 1)
        order = list(keys)
        assert needed in order, endpoint

        def status(key: str | None, method: str = method, path: str = path) -> int:
            headers = {"X-API-Key": key} if key is not None else {}
            body = {} if method in {"POST", "PUT"} else None  # past the key: a 422 or 404
            url = path.format(**values)
            return guarded.request(method, url, headers=headers, json=body).status_code

        for scope, key in keys.items():
            answered = status(key)
            if order.index(scope) >= order.index(needed):
                assert answered not in {401, 403}, (endpoint, scope, answered)
            else:
                assert answered == (401 if key is None else 403), (endpoint, scope, answered)


def test_reads_are_open_in_development_only(database: str, services: Services) -> None:
    settings = make_settings(database, services)
    assert settings.environment == "development"
    assert not settings.reads_need_key
    with TestClient(create_app(settings)) as client:
        assert statuses(client, "GET", read_paths(client), None).isdisjoint({401, 403})
        # Writes still need their key.
        assert client.post("/api/v1/devices/dev-none/commands", json={}).status_code == 401


def test_a_device_key_reaches_its_devices_only(guarded: TestClient) -> None:
    site = {"X-API-Key": SITE}

    def get(path: str, **params: Any) -> Any:
        return guarded.get(path, headers=site, params=params)

    listed, cursor = [], None
    while True:  # one at a time: the filter holds across pages
        page = get("/api/v1/devices", limit=1, **({"cursor": cursor} if cursor else {})).json()
        listed += [item["device_id"] for item in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert listed == OWN
    alerts = get("/api/v1/alerts").json()["items"]
    assert sorted(a["device_id"] for a in alerts) == OWN
    assert get("/api/v1/alerts", device_id="site_a-2").status_code == 200
    assert get("/api/v1/alerts", device_id="dev-other").status_code == 403
    assert get("/api/v1/devices/site_a-1").status_code == 200
    assert get("/api/v1/devices/site_a-9").status_code == 404  # within, but unknown
    # Outside: 403 alike for a device that exists and one that does not (no probing).
    for device in [*OTHERS, "dev-ghost"]:
        for tail in ("", "/readings", "/aggregates", "/health", "/forecasts", "/kpis"):
            response = get(f"/api/v1/devices/{device}{tail}")
            assert response.status_code == 403, (device, tail)
            assert response.json()["detail"] == f"this key does not reach device {device!r}"
    for path in ("/api/v1/fleet/summary", "/api/v1/fleet/kpis", "/api/v1/tariffs"):
        assert get(path).status_code == 403, path
        assert "fleet-wide" in get(path).json()["detail"]
    # Commands: the key's scope first, then its devices.
    command = {"action": "online"}
    post = guarded.post
    assert post("/api/v1/devices/dev-other/commands", json=command, headers=site).status_code == 403
    sent = post("/api/v1/devices/site_a-1/commands", json=command, headers=site)
    assert sent.status_code == 202, sent.text
    reader = {"X-API-Key": SITE_READ}
    refused = post("/api/v1/devices/dev-own/commands", json=command, headers=reader)
    assert refused.status_code == 403
    assert "scope write" in refused.json()["detail"]
    assert (
        guarded.get("/api/v1/devices", headers=reader).json()["items"][0]["device_id"] == "dev-own"
    )


def bearer(
    scope: str, expires_in: timedelta = timedelta(minutes=5), **claims: Any
) -> dict[str, str]:
    body = {"scope": scope, "exp": datetime.now(UTC) + expires_in, **claims}
    return {"Authorization": f"Bearer {jwt.encode(body, JWT_SECRET, 'HS256')}"}


def test_bearer_tokens_work_next_to_the_keys(guarded: TestClient) -> None:
    assert guarded.get("/api/v1/devices", headers=bearer("read")).status_code == 200
    expired = guarded.get("/api/v1/devices", headers=bearer("read", timedelta(minutes=-5)))
    assert expired.status_code == 401
    assert "expired" in expired.json()["detail"]
    forged = guarded.get(
        "/api/v1/devices",
        headers={"Authorization": "Bearer " + jwt.encode({"scope": "admin"}, "x" * 32, "HS256")},
    )
    assert forged.status_code == 401
    command = {"action": "online"}
    path = "/api/v1/devices/{}/commands"
    assert (
        guarded.post(path.format("dev-own"), json=command, headers=bearer("read")).status_code
        == 403
    )
    limited = bearer("write", devices=["dev-own"])
    assert guarded.post(path.format("dev-other"), json=command, headers=limited).status_code == 403
    assert guarded.post(path.format("dev-own"), json=command, headers=limited).status_code == 202
    listed = guarded.get("/api/v1/devices", headers=limited).json()["items"]
    assert [d["device_id"] for d in listed] == ["dev-own"]
    assert guarded.get("/api/v1/fleet/summary", headers=limited).status_code == 403
    # Acknowledging an alert: only one of the key's devices.
    ack = "/api/v1/alerts/{}.residual/acknowledge"
    by = {"by": "ana"}
    assert guarded.post(ack.format("dev-other"), json=by, headers=limited).status_code == 403
    assert guarded.post(ack.format("dev-own"), json=by, headers=limited).status_code == 200
    resolve = "/api/v1/alerts/{}.residual/resolve"
    assert guarded.post(resolve.format("dev-other"), json=by, headers=limited).status_code == 403
    assert guarded.post(resolve.format("dev-own"), json=by, headers=limited).status_code == 200
    # How good the alerts are: scored over the key's devices only.
    day = {"start": "2026-03-29T00:00:00Z", "end": "2026-03-30T00:00:00Z"}
    quality = guarded.get("/api/v1/alerts/quality", params=day, headers=limited)
    assert quality.status_code == 200, quality.text
    assert [(k["kind"], k["alerts"]) for k in quality.json()["kinds"]] == [("residual", 1)]
