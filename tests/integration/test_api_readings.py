"""The readings endpoint against a real PostgreSQL with known rows."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import asyncpg
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from api.settings import ApiSettings
from schema.connections import DatabaseConnection, KafkaConnection

if TYPE_CHECKING:
    from tests.conftest import Services

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # Berlin moves to +02:00 at 01:00 UTC


async def insert_rows(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.executemany(
            "INSERT INTO readings (device_id, ts, seq, tz, interval_s, energy_kwh, power_kw)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)",
            [
                ("dev-a", T0 + timedelta(minutes=15 * k), k, "Europe/Berlin", 900, 0.1 * k, 0.4 * k)
                for k in range(4)
            ]
            + [("dev-b", T0, 0, "Asia/Kathmandu", 900, 1.0, 4.0)],
        )
    finally:
        await conn.close()


@pytest.fixture
def client(database: str, services: Services) -> Iterator[TestClient]:
    asyncio.run(insert_rows(database))
    app = create_app(
        ApiSettings(
            database=DatabaseConnection(url=SecretStr(database)),
            kafka=KafkaConnection(bootstrap=services.kafka_bootstrap),
            max_range=timedelta(days=2),
        )
    )
    with TestClient(app) as client:
        yield client


def test_readings_in_range_with_local_offsets(client: TestClient) -> None:
    response = client.get(
        "/api/v1/devices/dev-a/readings",
        params={"start": "2026-03-29T01:30:00+01:00", "end": "2026-03-29T03:30:00+02:00"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == 4
    assert [item["seq"] for item in body["items"]] == [0, 1, 2, 3]
    # Each reading comes back with the device's offset at its instant: both sides of the DST change.
    assert [item["ts"] for item in body["items"]] == [
        "2026-03-29T01:30:00+01:00",
        "2026-03-29T01:45:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T03:15:00+02:00",
    ]
    assert body["items"][2]["energy_kwh"] == pytest.approx(0.2)


def test_range_is_half_open_and_per_device(client: TestClient) -> None:
    response = client.get(
        "/api/v1/devices/dev-b/readings",
        params={"start": T0.isoformat(), "end": (T0 + timedelta(seconds=1)).isoformat()},
    )
    assert [i["ts"] for i in response.json()["items"]] == ["2026-03-29T06:15:00+05:45"]
    response = client.get(
        "/api/v1/devices/dev-b/readings",
        params={"start": (T0 + timedelta(seconds=1)).isoformat(), "end": "2026-03-30T00:00:00Z"},
    )
    assert response.json()["count"] == 0


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"start": "2026-03-29T00:00:00", "end": "2026-03-29T01:00:00Z"}, "timezone"),
        ({"start": "2026-03-29T02:00:00Z", "end": "2026-03-29T01:00:00Z"}, "must be after"),
        ({"start": "2026-03-01T00:00:00Z", "end": "2026-03-29T01:00:00Z"}, "longer than"),
        ({"start": "yesterday"}, "ISO-8601"),
    ],
)
def test_bad_ranges_get_a_422_that_says_why(
    client: TestClient, params: dict[str, str], needle: str
) -> None:
    response = client.get("/api/v1/devices/dev-a/readings", params=params)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert needle in response.json()["detail"]


def test_bad_device_id_is_a_422(client: TestClient) -> None:
    response = client.get("/api/v1/devices/bad%20id/readings")
    assert response.status_code == 422


def test_health(client: TestClient) -> None:
    assert client.get("/live").json() == {"status": "live"}
    ready = client.get("/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"


def test_dashboard_is_served(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert "/static/dashboard.js" in response.text
    script = client.get("/static/dashboard.js")
    assert script.status_code == 200
    assert "/ws/live" in script.text


def test_a_range_with_more_rows_than_allowed_says_it_is_truncated(
    database: str, services: Services
) -> None:
    asyncio.run(insert_rows(database))
    app = create_app(
        ApiSettings(
            database=DatabaseConnection(url=SecretStr(database)),
            kafka=KafkaConnection(bootstrap=services.kafka_bootstrap),
            max_rows=3,
        )
    )
    with TestClient(app) as client:
        params = {"start": "2026-03-29T00:00:00Z", "end": "2026-03-29T02:00:00Z"}
        body = client.get("/api/v1/devices/dev-a/readings", params=params).json()
        assert (body["count"], body["truncated"]) == (3, True)
        body = client.get("/api/v1/devices/dev-b/readings", params=params).json()
        assert (body["count"], body["truncated"]) == (1, False)
