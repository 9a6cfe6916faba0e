"""Every REST endpoint against a real PostgreSQL holding known fixture rows.

Readings go into ``readings`` only; the storage layer maintains the rollups the aggregate
endpoint reads (``readings_15m``), so these tests also check that the two agree. The Berlin
device has readings over both DST changes of 2026 (29 March: 23 hours; 25 October: 25 hours);
the Kolkata device (+05:30) has hours that start at half past the UTC hour.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from api.settings import ApiSettings
from schema.connections import DatabaseConnection, KafkaConnection, MqttConnection
from schema.credentials import DeviceIdentities
from schema.device_messages import AnomalyKind, CommandAction, DeviceCommand
from schema.topics import MqttTopics

from ..conftest import migrated_database, provision
from ..fixtures.waiting import wait_until

if TYPE_CHECKING:
    from tests.conftest import Services

pytestmark = pytest.mark.integration

KEY = "integration-test-key-0123456789"
ADMIN_KEY = "integration-admin-key-0123456789"
SPRING_DAY = datetime(2026, 3, 28, 23, tzinfo=UTC)  # Berlin 2026-03-29 00:00+01:00, 23 h
AUTUMN_DAY = datetime(2026, 10, 24, 22, tzinfo=UTC)  # Berlin 2026-10-25 00:00+02:00, 25 h
KOLKATA_START = datetime(2026, 3, 29, 0, tzinfo=UTC)  # 05:30+05:30
Q = timedelta(minutes=15)
H = timedelta(hours=1)


def berlin_readings(day_start: datetime, quarters: int) -> list[tuple[Any, ...]]:
    """One reading per quarter hour; the energy of quarter k of the day is 0.25 kWh, except
    that each local hour's last quarter adds its UTC-hour index / 100 (so hours differ)."""
    rows = []
    for k in range(quarters):
        ts = day_start + k * Q
        extra = (k // 4) / 100 if k % 4 == 3 else 0.0
        rows.append(("dev-ber", ts, k, "Europe/Berlin", 900, 0.25 + extra, 1.0 + k % 4))
    return rows


def fixture_readings() -> list[tuple[Any, ...]]:
    rows = berlin_readings(SPRING_DAY, 92) + berlin_readings(AUTUMN_DAY, 100)
    # Kolkata: every 5 minutes for 6 hours, 0.05 kWh each (0.15 kWh a quarter).
    rows += [
        ("dev-kol", KOLKATA_START + k * timedelta(minutes=5), k, "Asia/Kolkata", 300, 0.05, 2.0)
        for k in range(72)
    ]
    # A device known only from its readings (no birth, no status).
    rows += [
        ("dev-raw", datetime(2026, 3, 29, 12, tzinfo=UTC), 0, "America/New_York", 60, 0.01, 0.6)
    ]
    return rows


def health_row(device_id: str, hour: datetime, status: str) -> tuple[Any, ...]:
    return (
        device_id,
        hour,
        0.1,
        0.08,
        12.5,
        -0.02,
        0.2,
        0.5,
        status,
        0.98,
        1,
        0,
        0,
        "online",
        hour,
    )


async def load_fixtures(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.executemany(
            "INSERT INTO readings (device_id, ts, seq, tz, interval_s, energy_kwh, power_kw)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)",
            fixture_readings(),
        )
        await conn.executemany(
            "INSERT INTO devices (device_id, kind, tz, latitude, longitude, location_name,"
            " nominal_kw, firmware, interval_s) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            [
                (
                    "dev-ber",
                    "household_meter",
                    "Europe/Berlin",
                    52.52,
                    13.4,
                    "Berlin",
                    4.0,
                    "1.2.0",
                    900,
                ),
                ("dev-kol", "hvac", "Asia/Kolkata", 22.57, 88.36, "Kolkata", 6.0, "1.2.0", 300),
            ],
        )
        await conn.executemany(
            "INSERT INTO device_status (device_id, status, changed_at, last_seen)"
            " VALUES ($1, $2, $3, $4)",
            [
                ("dev-ber", "online", SPRING_DAY, datetime(2026, 10, 25, 22, 45, tzinfo=UTC)),
                ("dev-kol", "offline", KOLKATA_START + 6 * H, KOLKATA_START + 6 * H),
            ],
        )
        noon = datetime(2026, 3, 29, 10, tzinfo=UTC)
        await conn.executemany(
            "INSERT INTO health (device_id, hour_start, rmse_24h, mae_24h, mape_24h, bias_24h,"
            " naive_rmse_24h, rmse_ratio, status, completeness_24h, gaps_24h, late_24h,"
            " duplicates_24h, presence, last_seen)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            [
                health_row("dev-ber", noon, "green"),
                health_row("dev-ber", noon + H, "red"),
                health_row("dev-ber", noon + 2 * H, "amber"),
                health_row("dev-kol", KOLKATA_START + 30 * timedelta(minutes=1), "green"),
            ],
        )
        # Closed hours 10:00Z-13:00Z (actuals) and forecasts for 10:00Z-14:00Z (the last open).
        await conn.executemany(
            "INSERT INTO hourly (device_id, hour_start, hour_end, tz, local_date, local_hour,"
            " energy_kwh, power_mean_kw, power_min_kw, power_max_kw, reading_count,"
            " expected_count, completeness, first_ts, last_ts)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, 2.5, 1, 4, 4, 4, 1.0, $2, $3)",
            [
                (
                    "dev-ber",
                    noon + k * H,
                    noon + (k + 1) * H,
                    "Europe/Berlin",
                    (noon + k * H).date(),
                    12 + k,
                    1.0 + k / 10,
                )
                for k in range(3)
            ],
        )
        await conn.executemany(
            "INSERT INTO forecasts (device_id, hour_start, model_id, predicted_kwh,"
            " baseline_kwh, based_on_hour, issued_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            [
                (
                    "dev-ber",
                    noon + k * H,
                    "gbm-1",
                    1.05 + k / 10,
                    0.9,
                    noon + (k - 1) * H,
                    noon + k * H - timedelta(minutes=1),
                )
                for k in range(5)
            ],
        )
        await conn.executemany(
            "INSERT INTO alerts (device_id, hour_start, kind, severity, residual_kwh, sigma, z,"
            " message, raised_at, alert_id, last_hour_start, resolved_hour)"
            " VALUES ($1, $2, 'residual', $3, $4, 0.2, $5, $6, $7, $8, $2, $9)",
            [
                (
                    "dev-ber" if k % 2 == 0 else "dev-kol",
                    noon + k * H,
                    "critical" if k % 3 == 0 else "warning",
                    0.5 * k,
                    2.5 * k,
                    f"alert {k}",
                    noon + k * H + timedelta(minutes=61),
                    f"alert-{k}",
                    noon + (k + 1) * H if k % 2 == 0 else None,  # the even ones resolved
                )
                for k in range(5)
            ],
        )
        await conn.execute(
            "INSERT INTO models (model_id, metrics, active, activated_at) VALUES"
            " ('gbm-1', '{\"rmse\": 0.12}', true, now()),"
            " ('gbm-2', '{\"rmse\": 0.10}', false, NULL)"
        )
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def fixture_database(services: Services) -> AsyncIterator[str]:
    """One migrated database with the fixture rows for the whole module (read-mostly tests)."""
    async with migrated_database(services) as url:
        await load_fixtures(url)
        yield url


def settings_for(url: str, services: Services, namespace: str, **overrides: Any) -> ApiSettings:
    return ApiSettings(
        database=DatabaseConnection(url=SecretStr(url)),
        kafka=KafkaConnection(bootstrap=services.kafka_bootstrap),
        # The whole block: the API's own broker user, as the launcher gives it.
        mqtt=MqttConnection.model_validate(
            {"host": services.mqtt_host, "port": services.mqtt_port, **services.mqtt_auth("api")}
        ),
        topic_namespace=namespace,
        api_keys=(SecretStr(KEY),),
        admin_api_keys=(SecretStr(ADMIN_KEY),),
        **overrides,
    )


@pytest.fixture(scope="module")
def app_namespace() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def client(fixture_database: str, services: Services, app_namespace: str) -> Iterator[TestClient]:
    namespace = app_namespace
    app = create_app(
        settings_for(
            fixture_database, services, namespace, cors_origins=("http://dashboard.example",)
        )
    )
    with TestClient(app) as client:
        yield client


def get(client: TestClient, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


# ------------------------------------------------------------------------------- aggregates
def test_hourly_buckets_on_the_spring_forward_day(client: TestClient) -> None:
    body = get(
        client,
        "/api/v1/devices/dev-ber/aggregates",
        bucket="1h",
        start="2026-03-29T00:00:00+01:00",
        end="2026-03-30T00:00:00+02:00",
    )
    assert body["tz"] == "Europe/Berlin"
    items = body["items"]
    assert len(items) == 23
    assert [i["start"] for i in items[:3]] == [
        "2026-03-29T00:00:00+01:00",
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T03:00:00+02:00",  # 02:00 does not exist that day
    ]
    assert items[2]["end"] == "2026-03-29T04:00:00+02:00"
    assert items[-1]["start"] == "2026-03-29T23:00:00+02:00"
    # Local hour k holds quarters 4k..4k+3: 4 x 0.25 kWh plus k/100 on the last one.
    assert [i["energy_kwh"] for i in items] == pytest.approx([1.0 + k / 100 for k in range(23)])
    assert all(i["reading_count"] == 4 and i["quarters"] == 4 for i in items)
    assert items[0]["power_mean_kw"] == pytest.approx(2.5)
    assert (items[0]["power_min_kw"], items[0]["power_max_kw"]) == (1.0, 4.0)


def test_hourly_buckets_on_the_fall_back_day_repeat_two_oclock(client: TestClient) -> None:
    items = get(
        client,
        "/api/v1/devices/dev-ber/aggregates",
        bucket="1h",
        tz="device",
        start="2026-10-25T00:00:00+02:00",
        end="2026-10-26T00:00:00+01:00",
    )["items"]
    assert len(items) == 25
    assert [i["start"] for i in items[1:5]] == [
        "2026-10-25T01:00:00+02:00",
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T03:00:00+01:00",
    ]
    assert items[3]["energy_kwh"] == pytest.approx(1.03)


def test_daily_buckets_last_23_and_25_hours(client: TestClient) -> None:
    body = get(
        client,
        "/api/v1/devices/dev-ber/aggregates",
        bucket="1d",
        start="2026-03-28T12:00:00+01:00",
        end="2026-10-26T12:00:00+01:00",
    )
    assert body["start"] == "2026-03-28T00:00:00+01:00"  # widened to whole local days
    assert body["end"] == "2026-10-27T00:00:00+01:00"
    spring, autumn = body["items"]
    assert (spring["start"], spring["end"]) == (
        "2026-03-29T00:00:00+01:00",
        "2026-03-30T00:00:00+02:00",
    )
    assert (spring["quarters"], spring["expected_quarters"]) == (92, 92)
    assert spring["energy_kwh"] == pytest.approx(23 + sum(range(23)) / 100)
    assert (autumn["start"], autumn["end"]) == (
        "2026-10-25T00:00:00+02:00",
        "2026-10-26T00:00:00+01:00",
    )
    assert (autumn["quarters"], autumn["expected_quarters"], autumn["reading_count"]) == (
        100,
        100,
        100,
    )


def test_the_same_readings_in_utc_days(client: TestClient) -> None:
    items = get(
        client,
        "/api/v1/devices/dev-ber/aggregates",
        bucket="1d",
        tz="UTC",
        start="2026-03-28T00:00:00Z",
        end="2026-03-30T00:00:00Z",
    )["items"]
    # The Berlin day 23:00Z..22:00Z straddles two UTC days: 1 hour, then 22.
    assert [(i["start"], i["quarters"]) for i in items] == [
        ("2026-03-28T00:00:00Z", 4),
        ("2026-03-29T00:00:00Z", 88),
    ]


def test_kolkata_hours_start_at_half_past_utc(client: TestClient) -> None:
    items = get(
        client,
        "/api/v1/devices/dev-kol/aggregates",
        bucket="1h",
        start="2026-03-29T05:00:00+05:30",
        end="2026-03-29T12:00:00+05:30",
    )["items"]
    assert [(i["start"], i["quarters"], i["reading_count"]) for i in items] == [
        ("2026-03-29T05:00:00+05:30", 2, 6),  # data from 05:30 local (00:00Z)
        ("2026-03-29T06:00:00+05:30", 4, 12),
        ("2026-03-29T07:00:00+05:30", 4, 12),
        ("2026-03-29T08:00:00+05:30", 4, 12),
        ("2026-03-29T09:00:00+05:30", 4, 12),
        ("2026-03-29T10:00:00+05:30", 4, 12),
        ("2026-03-29T11:00:00+05:30", 2, 6),  # up to 11:30 local (06:00Z)
    ]
    assert items[1]["energy_kwh"] == pytest.approx(0.6)
    # The same readings in Berlin's hours (+02:00 after 01:00Z that day) are whole UTC hours.
    berlin = get(
        client,
        "/api/v1/devices/dev-kol/aggregates",
        bucket="1h",
        tz="Europe/Berlin",
        start="2026-03-29T00:00:00Z",
        end="2026-03-29T06:00:00Z",
    )["items"]
    assert [i["start"] for i in berlin[:2]] == [
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T03:00:00+02:00",
    ]
    assert all(i["quarters"] == 4 for i in berlin)


def test_quarter_hours_carry_the_requested_zone(client: TestClient) -> None:
    items = get(
        client,
        "/api/v1/devices/dev-kol/aggregates",
        bucket="15m",
        tz="Asia/Kathmandu",
        start="2026-03-29T00:00:00Z",
        end="2026-03-29T00:30:00Z",
    )["items"]
    assert [i["start"] for i in items] == ["2026-03-29T05:45:00+05:45", "2026-03-29T06:00:00+05:45"]
    assert [i["reading_count"] for i in items] == [3, 3]


@pytest.mark.parametrize(
    ("params", "status", "needle"),
    [
        ({"tz": "Mars/Olympus_Mons"}, 422, "unknown time zone 'Mars/Olympus_Mons'"),
        ({"start": "2026-03-29T00:00:00", "end": "2026-03-30T00:00:00Z"}, 422, "timezone"),
        ({"start": "2026-03-30T00:00:00Z", "end": "2026-03-29T00:00:00Z"}, 422, "must be after"),
        (
            {"bucket": "15m", "start": "2026-01-01T00:00:00Z", "end": "2026-03-01T00:00:00Z"},
            422,
            "longer than the maximum",
        ),
        (
            {"bucket": "1d", "start": "2024-01-01T00:00:00Z", "end": "2026-03-01T00:00:00Z"},
            422,
            "longer than the maximum",
        ),
        ({"bucket": "2h"}, 422, "bucket"),
    ],
)
def test_aggregate_requests_that_cannot_be_answered(
    client: TestClient, params: dict[str, str], status: int, needle: str
) -> None:
    response = client.get("/api/v1/devices/dev-ber/aggregates", params=params)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert needle in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        # Found by schemathesis: `end - window` below year 1 raised OverflowError (a 500).
        ("/api/v1/devices/dev-ber/forecasts", {"end": "0001-01-01T00:00:00Z"}),
        ("/api/v1/devices/dev-ber/readings", {"end": "0001-01-01T00:00:00Z"}),
        ("/api/v1/devices/dev-ber/health", {"end": "0001-01-01T00:00:00Z"}),
        ("/api/v1/devices/dev-ber/aggregates", {"end": "0001-01-01T00:30:00+00:00"}),
        ("/api/v1/devices/dev-kol/aggregates",
         {"bucket": "1d", "start": "9999-12-31T00:00:00Z", "end": "9999-12-31T23:59:59Z"}),
        ("/api/v1/alerts", {"start": "0001-01-01T00:00:00Z"}),
        ("/api/v1/fleet/summary", {"at": "9999-12-31T23:59:59-12:00"}),
    ],
)  # fmt: skip
def test_instants_at_the_ends_of_time_are_a_422_not_a_500(
    client: TestClient, path: str, params: dict[str, str]
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 422, response.text
    assert "the range readings can have" in response.json()["detail"]


def test_unknown_device_in_its_own_zone_is_a_404(client: TestClient) -> None:
    response = client.get("/api/v1/devices/dev-none/aggregates")
    assert response.status_code == 404
    assert "dev-none" in response.json()["detail"]


# ---------------------------------------------------------------------------------- devices
def test_devices_are_paginated_with_a_cursor(client: TestClient) -> None:
    first = get(client, "/api/v1/devices", limit=2)
    assert [d["device_id"] for d in first["items"]] == ["dev-ber", "dev-kol"]
    assert first["next_cursor"]
    second = get(client, "/api/v1/devices", limit=2, cursor=first["next_cursor"])
    assert [d["device_id"] for d in second["items"]] == ["dev-raw"]
    assert second["next_cursor"] is None
    ber, kol = first["items"]
    assert (ber["status"], ber["health"], ber["kind"]) == ("online", "amber", "household_meter")
    assert ber["last_seen"] == "2026-10-25T23:45:00+01:00"  # in the device's zone
    assert (kol["status"], kol["health"]) == ("offline", "green")
    raw = second["items"][0]
    assert (raw["tz"], raw["status"], raw["health"], raw["kind"]) == (
        "America/New_York",
        None,
        None,
        None,
    )
    assert raw["last_seen"] == "2026-03-29T08:00:00-04:00"


def test_a_forged_cursor_is_a_422(client: TestClient) -> None:
    response = client.get("/api/v1/devices", params={"cursor": "bm90IGEgY3Vyc29y"})
    assert response.status_code == 422
    assert "cursor" in response.json()["detail"]


def test_one_device_with_presence_and_latest_health(client: TestClient) -> None:
    body = get(client, "/api/v1/devices/dev-ber")
    assert body["tz"] == "Europe/Berlin"
    assert body["location_name"] == "Berlin"
    assert body["status"] == "online"
    assert body["status_changed_at"] == "2026-03-29T00:00:00+01:00"
    assert body["last_reading_at"] == "2026-10-25T23:45:00+01:00"
    assert body["latest_health"]["status"] == "amber"
    assert body["latest_health"]["hour_start"] == "2026-03-29T14:00:00+02:00"
    assert client.get("/api/v1/devices/dev-none").status_code == 404


def test_health_history_and_latest(client: TestClient) -> None:
    body = get(
        client,
        "/api/v1/devices/dev-ber/health",
        start="2026-03-29T11:00:00Z",
        end="2026-03-29T13:00:00Z",
    )
    assert [(h["hour_start"], h["status"]) for h in body["items"]] == [
        ("2026-03-29T13:00:00+02:00", "red"),
        ("2026-03-29T14:00:00+02:00", "amber"),
    ]
    assert body["latest"]["status"] == "amber"
    assert body["items"][0]["rmse_ratio"] == pytest.approx(0.5)


# -------------------------------------------------------------------------------- forecasts
def test_forecasts_with_actuals_beside_them(client: TestClient) -> None:
    body = get(
        client,
        "/api/v1/devices/dev-ber/forecasts",
        start="2026-03-29T12:00:00+02:00",
        end="2026-03-29T17:00:00+02:00",
    )
    got = [(f["hour_start"], f["predicted_kwh"], f["actual_kwh"]) for f in body["items"]]
    assert got == [
        ("2026-03-29T12:00:00+02:00", pytest.approx(1.05), pytest.approx(1.0)),
        ("2026-03-29T13:00:00+02:00", pytest.approx(1.15), pytest.approx(1.1)),
        ("2026-03-29T14:00:00+02:00", pytest.approx(1.25), pytest.approx(1.2)),
        ("2026-03-29T15:00:00+02:00", pytest.approx(1.35), None),  # not closed yet
        ("2026-03-29T16:00:00+02:00", pytest.approx(1.45), None),
    ]
    assert body["items"][0]["hour_end"] == "2026-03-29T13:00:00+02:00"
    assert body["latest"]["hour_start"] == "2026-03-29T16:00:00+02:00"
    only_other = get(
        client,
        "/api/v1/devices/dev-ber/forecasts",
        start="2026-03-29T12:00:00+02:00",
        end="2026-03-29T17:00:00+02:00",
        model_id="gbm-2",
    )
    assert (only_other["items"], only_other["latest"]) == ([], None)


# ------------------------------------------------------------------------------ fleet, alerts
def test_fleet_summary(client: TestClient) -> None:
    body = get(client, "/api/v1/fleet/summary", at="2026-03-29T12:30:00Z")
    assert body["devices"] == 3
    assert body["presence"] == {"online": 1, "offline": 1, "unknown": 1}
    assert body["health"] == {"green": 1, "amber": 1, "red": 0, "unknown": 1}
    assert body["current_hour_start"] == "2026-03-29T12:00:00Z"
    # dev-ber 12:00Z-13:00Z is UTC-hour 13 of its series (1.0 + 13/100) plus dev-raw's 0.01.
    assert body["current_hour_kwh"] == pytest.approx(1.13 + 0.01)
    assert body["current_hour_forecast_kwh"] == pytest.approx(1.25)  # dev-ber's 12:00Z hour
    closed = body["last_closed_hour"]
    assert closed["hour_start"] == "2026-03-29T11:00:00Z"
    assert (closed["actual_kwh"], closed["forecast_kwh"], closed["device_hours"]) == (
        pytest.approx(1.1),
        pytest.approx(1.15),
        1,
    )
    assert client.get("/api/v1/fleet/summary", params={"at": "2026-03-29T12:30"}).status_code == 422


def test_alerts_newest_first_in_pages(client: TestClient) -> None:
    seen = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = get(client, "/api/v1/alerts", **params)
        seen += [(a["device_id"], a["message"]) for a in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert [m for _, m in seen] == ["alert 4", "alert 3", "alert 2", "alert 1", "alert 0"]
    critical = get(client, "/api/v1/alerts", severity="critical")["items"]
    assert [a["message"] for a in critical] == ["alert 3", "alert 0"]
    kolkata = get(client, "/api/v1/alerts", device_id="dev-kol")["items"]
    assert [a["message"] for a in kolkata] == ["alert 3", "alert 1"]
    assert kolkata[0]["hour_start"] == "2026-03-29T18:30:00+05:30"  # the device's own zone
    ranged = get(
        client, "/api/v1/alerts", start="2026-03-29T11:00:00Z", end="2026-03-29T13:00:00Z"
    )["items"]
    assert [a["message"] for a in ranged] == ["alert 2", "alert 1"]
    bad = client.get(
        "/api/v1/alerts", params={"cursor": get(client, "/api/v1/devices", limit=1)["next_cursor"]}
    )
    assert bad.status_code == 422
    assert "alerts" in bad.json()["detail"]


def test_alerts_by_state_and_acknowledged_once(client: TestClient) -> None:
    open_ = get(client, "/api/v1/alerts", state="open")["items"]
    assert [(a["alert_id"], a["state"]) for a in open_] == [
        ("alert-3", "open"),
        ("alert-1", "open"),
    ]
    resolved = get(client, "/api/v1/alerts", state="resolved", kind="residual")["items"]
    assert [a["alert_id"] for a in resolved] == ["alert-4", "alert-2", "alert-0"]
    assert resolved[0]["resolved_hour"] == "2026-03-29T17:00:00+02:00"  # dev-ber's zone
    assert get(client, "/api/v1/alerts", kind="silent")["items"] == []

    path = "/api/v1/alerts/alert-1/acknowledge"
    body = {"by": "ana", "note": "technician booked"}
    assert client.post(path, json=body).status_code == 401  # a write needs a key
    first = client.post(path, json=body, headers={"X-API-Key": KEY})
    assert first.status_code == 200, first.text
    acked = first.json()
    assert (acked["state"], acked["acknowledged_by"], acked["note"]) == (
        "acknowledged",
        "ana",
        "technician booked",
    )
    retry = client.post(path, json={"by": "bob"}, headers={"X-API-Key": KEY}).json()
    assert retry == acked  # the first acknowledgement wins
    still_open = get(client, "/api/v1/alerts", state=["open", "acknowledged"])["items"]
    assert [(a["alert_id"], a["state"]) for a in still_open] == [
        ("alert-3", "open"),
        ("alert-1", "acknowledged"),
    ]
    missing = client.post("/api/v1/alerts/nope/acknowledge", json=body, headers={"X-API-Key": KEY})
    assert missing.status_code == 404
    empty = client.post(path, json={"by": ""}, headers={"X-API-Key": KEY})
    assert empty.status_code == 422


# ------------------------------------------------------------- resolving, alert quality
ALERT_ROWS = [  # device, kind, opened, last hour (from NOON), resolved hour (None: open)
    ("dev-1", "stuck", 0, 2, None),  # the injected stuck meter: caught
    ("dev-1", "residual", 1, 1, 2),  # the same device at the same time: a true alarm
    ("dev-2", "residual", 5, 5, 6),  # no anomaly there: a false alarm
    ("dev-3", "level_shift", -48, -47, -46),  # two days before the range: not counted
]
NOON = datetime(2026, 5, 4, 12, tzinfo=UTC)


@pytest.fixture
def alerts_client(database: str, services: Services) -> Iterator[TestClient]:
    async def load() -> None:
        conn = await asyncpg.connect(database)
        try:
            await conn.executemany(
                "INSERT INTO alerts (device_id, hour_start, kind, severity, message, alert_id,"
                " last_hour_start, hours, resolved_hour, raised_at)"
                " VALUES ($1, $2, $3, 'warning', 'm', $1 || '.' || $3, $4, 1, $5, $2)",
                [
                    (d, NOON + a * H, kind, NOON + b * H, None if r is None else NOON + r * H)
                    for d, kind, a, b, r in ALERT_ROWS
                ],
            )
            await conn.executemany(
                'INSERT INTO anomaly_labels (label_id, device_id, anomaly, start, "end",'
                " first_seq, nominal_kw, source, command_id)"
                " VALUES ($1, $2, $3, $4, $5, 0, 2.0, 'schedule', 'c')",
                [
                    ("c:dev-1", "dev-1", "stuck", NOON + 10 * Q, NOON + 2 * H),
                    ("c:dev-4", "dev-4", "dropout", NOON + 3 * H, NOON + 4 * H),  # missed
                ],
            )
        finally:
            await conn.close()

    asyncio.run(load())
    settings = settings_for(database, services, f"t{uuid.uuid4().hex[:10]}")
    with TestClient(create_app(settings)) as client:
        yield client


def test_a_person_resolves_an_alert_once(alerts_client: TestClient) -> None:
    client, path = alerts_client, "/api/v1/alerts/dev-1.stuck/resolve"
    body = {"by": "ana", "note": "meter replaced"}
    assert client.post(path, json=body).status_code == 401  # a write needs a key
    acked = client.post(
        "/api/v1/alerts/dev-1.stuck/acknowledge", json={"by": "bo", "note": "on it"},
        headers={"X-API-Key": KEY},
    )  # fmt: skip
    assert acked.json()["state"] == "acknowledged"
    first = client.post(path, json=body, headers={"X-API-Key": KEY})
    assert first.status_code == 200, first.text
    alert = first.json()
    assert {k: alert[k] for k in ("state", "resolved_by", "resolution_note", "note")} == {
        "state": "resolved",
        "resolved_by": "ana",
        "resolution_note": "meter replaced",
        "note": "on it",  # the acknowledgement keeps its own note
    }
    # As of the end of the last hour its condition held (in the device's zone: UTC here).
    assert alert["resolved_hour"] == "2026-05-04T15:00:00Z"
    assert alert["resolved_at"] is not None
    again = client.post(path, json={"by": "bo"}, headers={"X-API-Key": KEY})
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert "already resolved (by ana)" in again.json()["detail"]
    cleared = client.post(
        "/api/v1/alerts/dev-2.residual/resolve", json=body, headers={"X-API-Key": KEY}
    )
    assert cleared.status_code == 409  # the worker resolved it: its condition cleared
    assert "its condition cleared" in cleared.json()["detail"]
    missing = client.post("/api/v1/alerts/nope/resolve", json=body, headers={"X-API-Key": KEY})
    assert missing.status_code == 404
    assert client.post(path, json={"by": ""}, headers={"X-API-Key": KEY}).status_code == 422
    listed = get(client, "/api/v1/alerts", state="resolved", kind="stuck")["items"]
    assert [(a["alert_id"], a["resolved_by"]) for a in listed] == [("dev-1.stuck", "ana")]


def test_alert_quality_per_kind_against_the_labels(alerts_client: TestClient) -> None:
    day = {"start": (NOON - 12 * H).isoformat(), "end": (NOON + 12 * H).isoformat()}
    quality = get(alerts_client, "/api/v1/alerts/quality", **day)
    assert (quality["labels"], quality["start"], quality["end"]) == (
        2,
        "2026-05-04T00:00:00Z",
        "2026-05-05T00:00:00Z",
    )
    assert {k["kind"]: k for k in quality["kinds"]} == {
        "residual": {"kind": "residual", "alerts": 2, "true_alerts": 1, "injected": 0,
                     "detected": 0, "precision": 0.5, "recall": None},
        "silent": {"kind": "silent", "alerts": 0, "true_alerts": 0, "injected": 1,
                   "detected": 0, "precision": None, "recall": 0.0},
        "stuck": {"kind": "stuck", "alerts": 1, "true_alerts": 1, "injected": 1,
                  "detected": 1, "precision": 1.0, "recall": 1.0},
    }  # fmt: skip
    # No labels in the range: the alerts are counted, with nothing to score them against.
    before = {"start": (NOON - 49 * H).isoformat(), "end": (NOON - 40 * H).isoformat()}
    earlier = get(alerts_client, "/api/v1/alerts/quality", **before)
    assert earlier["labels"] == 0
    assert [(k["kind"], k["alerts"], k["precision"]) for k in earlier["kinds"]] == [
        ("level_shift", 1, None)
    ]
    reversed_ = alerts_client.get(
        "/api/v1/alerts/quality", params={"start": day["end"], "end": day["start"]}
    )
    assert reversed_.status_code == 422
    # Default: the 7 days before now (the fixture's alerts lie long before).
    recent = get(alerts_client, "/api/v1/alerts/quality")
    assert recent["kinds"] == [] and recent["labels"] == 0


# ---------------------------------------------------------------------- operations, docs, CORS
def test_openapi_documents_every_endpoint(client: TestClient) -> None:
    paths = get(client, "/openapi.json")["paths"]
    for path in [
        "/api/v1/devices",
        "/api/v1/devices/{device_id}",
        "/api/v1/devices/{device_id}/readings",
        "/api/v1/devices/{device_id}/aggregates",
        "/api/v1/devices/{device_id}/forecasts",
        "/api/v1/devices/{device_id}/health",
        "/api/v1/devices/{device_id}/commands",
        "/api/v1/fleet/summary",
        "/api/v1/alerts",
        "/api/v1/alerts/{alert_id}/acknowledge",
        "/api/v1/alerts/{alert_id}/resolve",
        "/api/v1/alerts/quality",
        "/api/v1/admin/models/{model_id}/activate",
        "/api/v1/fleet/forecasts",
        "/api/v1/models",
        "/api/v1/models/{model_id}",
        "/live",
        "/ready",
        "/metrics",
    ]:
        assert path in paths, path
    resolve = paths["/api/v1/alerts/{alert_id}/resolve"]["post"]
    assert {"200", "400", "401", "403", "404", "409", "422"} <= resolve["responses"].keys()
    assert "already resolved" in resolve["responses"]["409"]["description"]
    problem = resolve["responses"]["409"]["content"]["application/problem+json"]
    assert problem["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert {"200", "422"} <= paths["/api/v1/alerts/quality"]["get"]["responses"].keys()
    command = paths["/api/v1/devices/{device_id}/commands"]["post"]
    # Either of the two (a list of requirements: any one suffices).
    assert command["security"] == [{"APIKeyHeader": []}, {"HTTPBearer": []}]


def test_metrics_count_requests_by_route_template(client: TestClient) -> None:
    get(client, "/api/v1/devices/dev-ber")
    text = client.get("/metrics").text
    assert 'route="/api/v1/devices/{device_id}",status="200"' in text
    assert "wattstream_api_live_clients 0.0" in text


def test_cors_allows_the_configured_origin_only(client: TestClient) -> None:
    headers = {"Origin": "http://dashboard.example", "Access-Control-Request-Method": "GET"}
    allowed = client.options("/api/v1/devices", headers=headers)
    assert allowed.headers["access-control-allow-origin"] == "http://dashboard.example"
    other = client.options(
        "/api/v1/devices", headers={**headers, "Origin": "http://elsewhere.example"}
    )
    assert "access-control-allow-origin" not in other.headers


# ----------------------------------------------------------------------- commands and admin
class CommandListener:
    """A real MQTT subscriber on one device's command topic (paho, in its own thread)."""

    def __init__(self, services: Services, topic: str) -> None:
        self.messages: list[tuple[str, int, bool, bytes]] = []
        self.received = threading.Event()
        subscribed = threading.Event()
        device = topic.split("/devices/")[1].split("/", maxsplit=1)[0]  # listens as that device
        provision(services, DeviceIdentities(devices=(device,)))
        auth = services.mqtt_auth(device)
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        if auth:
            self._client.username_pw_set(auth["username"], auth["password"])
        self._client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self._client.on_subscribe = lambda *_: subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect(services.mqtt_host, services.mqtt_port)
        self._client.loop_start()
        assert subscribed.wait(10), "could not subscribe"

    def _on_message(self, _client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.messages.append((message.topic, message.qos, message.retain, message.payload))
        self.received.set()

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def test_a_command_reaches_the_device_topic_at_qos_1(
    client: TestClient, services: Services, app_namespace: str
) -> None:
    topic = MqttTopics(app_namespace).commands("dev-ber")
    listener = CommandListener(services, topic)
    try:
        response = client.post(
            "/api/v1/devices/dev-ber/commands",
            json={"action": "anomaly", "anomaly": "spike", "magnitude": 3.0, "duration_s": 600},
            headers={"X-API-Key": KEY},
        )
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["topic"] == topic
        assert listener.received.wait(10), "the command never reached the broker's subscriber"
        ((got_topic, qos, retained, payload),) = listener.messages
        command = DeviceCommand.model_validate_json(payload)
        assert (got_topic, qos, retained) == (topic, 1, False)
        assert command.command_id == body["command"]["command_id"]
        assert (command.action, command.anomaly) == (CommandAction.ANOMALY, AnomalyKind.SPIKE)
        assert (command.magnitude, command.duration_s) == (3.0, 600)
        assert command.issued_at.tzinfo is not None

        refused = [
            client.post("/api/v1/devices/dev-ber/commands", json={"action": "offline"}),
            client.post(
                "/api/v1/devices/dev-ber/commands",
                json={"action": "offline"},
                headers={"X-API-Key": "not-the-key"},
            ),
            client.post(
                "/api/v1/devices/dev-none/commands",
                json={"action": "offline"},
                headers={"X-API-Key": KEY},
            ),
            client.post(
                "/api/v1/devices/dev-ber/commands",
                json={"action": "anomaly"},
                headers={"X-API-Key": KEY},
            ),
        ]
        assert [r.status_code for r in refused] == [401, 401, 404, 422]
        assert "X-API-Key" in refused[0].json()["detail"]
        assert refused[0].headers["www-authenticate"].startswith("ApiKey")
        assert refused[3].json()["detail"] == "body.anomaly.anomaly: Field required"  # by action
        response = client.post(
            "/api/v1/devices/dev-ber/commands",
            json={"action": "set_interval", "interval_s": 30},
            headers={"X-API-Key": KEY},
        )
        assert response.status_code == 202
        assert listener.received.wait(10)
        wait_until("both commands on the broker", lambda: len(listener.messages) >= 2, 10)
        # Only the two accepted commands were published.
        assert [json.loads(m[3])["action"] for m in listener.messages] == [
            "anomaly",
            "set_interval",
        ]
    finally:
        listener.close()


def test_a_retry_with_the_same_idempotency_key_publishes_nothing(
    client: TestClient, services: Services, app_namespace: str
) -> None:
    """The retry answers the first answer; what reaches the broker is the first command and
    then a marker sent after the retry (one publisher, QoS 1: in order), nothing between."""
    topic = MqttTopics(app_namespace).commands("dev-ber")
    listener = CommandListener(services, topic)
    path = "/api/v1/devices/dev-ber/commands"
    key = f"retry-{uuid.uuid4().hex}"
    body = {"action": "set_interval", "interval_s": 120}
    try:
        first = client.post(path, json=body, headers={"X-API-Key": KEY, "Idempotency-Key": key})
        assert first.status_code == 202, first.text
        assert "idempotent-replayed" not in first.headers
        wait_until("the first command", lambda: len(listener.messages) == 1, 10)
        retry = client.post(path, json=body, headers={"X-API-Key": KEY, "Idempotency-Key": key})
        assert retry.status_code == 202
        assert retry.json() == first.json()
        assert retry.headers["idempotent-replayed"] == "true"
        other_body = client.post(
            path, json={"action": "offline"}, headers={"X-API-Key": KEY, "Idempotency-Key": key}
        )
        assert other_body.status_code == 422
        assert "different command" in other_body.json()["detail"]
        marker = client.post(path, json={"action": "online"}, headers={"X-API-Key": KEY})
        assert marker.status_code == 202
        wait_until("the marker", lambda: len(listener.messages) >= 2, 10)
        sent = [json.loads(m[3])["command_id"] for m in listener.messages]
        assert sent == [
            first.json()["command"]["command_id"],
            marker.json()["command"]["command_id"],
        ]
        # Keys belong to their caller: the same key under another API key is a new command.
        admin = client.post(
            path, json=body, headers={"X-API-Key": ADMIN_KEY, "Idempotency-Key": key}
        )
        assert admin.status_code == 202
        assert admin.json()["command"]["command_id"] != first.json()["command"]["command_id"]
        wait_until("the admin's command", lambda: len(listener.messages) == 3, 10)
    finally:
        listener.close()


def test_a_command_without_a_broker_is_a_503(
    fixture_database: str, services: Services, app_namespace: str
) -> None:
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = settings_for(fixture_database, services, app_namespace, command_timeout_s=1.0)
    app = create_app(
        settings.model_copy(update={"mqtt": settings.mqtt.model_copy(update={"port": port})})
    )
    with TestClient(app) as client:
        response = client.post(
            "/api/v1/devices/dev-ber/commands",
            json={"action": "online"},
            headers={"X-API-Key": KEY},
        )
    assert response.status_code == 503
    assert "did not acknowledge" in response.json()["detail"]


def test_activating_a_model_deactivates_the_other(
    client: TestClient, fixture_database: str
) -> None:
    async def active_models() -> list[str]:
        conn = await asyncpg.connect(fixture_database)
        try:
            rows = await conn.fetch("SELECT model_id FROM models WHERE active ORDER BY model_id")
        finally:
            await conn.close()
        return [row["model_id"] for row in rows]

    activate = "/api/v1/admin/models/gbm-2/activate"
    refused = [
        client.post(activate),
        client.post(activate, headers={"X-API-Key": "not-a-key"}),
        client.post(activate, headers={"X-API-Key": KEY}),  # a write key is not an admin key
    ]
    assert [r.status_code for r in refused] == [401, 401, 403]
    for answer in refused:
        assert answer.headers["content-type"].startswith("application/problem+json")
    assert "scope admin" in refused[2].json()["detail"]
    assert asyncio.run(active_models()) != ["gbm-2"]
    response = client.post(activate, headers={"X-API-Key": ADMIN_KEY})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model_id"], body["active"], body["metrics"]) == ("gbm-2", True, {"rmse": 0.1})
    assert asyncio.run(active_models()) == ["gbm-2"]
    again = client.post(activate, headers={"X-API-Key": ADMIN_KEY}).json()
    assert again["activated_at"] == body["activated_at"]  # already active: unchanged
    missing = client.post("/api/v1/admin/models/nope/activate", headers={"X-API-Key": ADMIN_KEY})
    assert missing.status_code == 404
    assert asyncio.run(active_models()) == ["gbm-2"]


def test_ready_says_when_kafka_does_not_answer(
    fixture_database: str, services: Services, app_namespace: str
) -> None:
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = settings_for(fixture_database, services, app_namespace)
    app = create_app(
        settings.model_copy(update={"kafka": KafkaConnection(bootstrap=f"127.0.0.1:{port}")})
    )
    with TestClient(app) as client:
        assert client.get("/live").status_code == 200
        response = client.get("/ready")
        assert response.status_code == 503
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "Kafka" in response.json()["detail"]
        # The REST side keeps working without Kafka.
        assert get(client, "/api/v1/devices/dev-ber")["device_id"] == "dev-ber"


def test_the_app_does_not_start_without_its_database(
    services: Services, app_namespace: str
) -> None:
    missing = services.database_url.rsplit("/", 1)[0] + "/wattstream_no_such_database"
    app = create_app(settings_for(missing, services, app_namespace))
    with pytest.raises(asyncpg.InvalidCatalogNameError), TestClient(app):
        pass
