"""The multi-horizon forecast and model endpoints against a real PostgreSQL with known rows:
a Berlin device's trajectories issued around the 23-hour spring day, a Kathmandu device's,
and two registered models."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app

from ..conftest import migrated_database
from .test_api_rest import settings_for

if TYPE_CHECKING:
    from tests.conftest import Services

pytestmark = pytest.mark.integration

H = timedelta(hours=1)
BERLIN = ZoneInfo("Europe/Berlin")
MIDNIGHT = datetime(2026, 3, 28, 23, tzinfo=UTC)  # Berlin 2026-03-29 00:00+01:00 (23 hours)
KATHMANDU_ISSUE = datetime(2026, 3, 29, 0, 15, tzinfo=UTC)  # 06:00+05:45


def trajectory(
    device: str, issue: datetime, zone: ZoneInfo, model: str, level: float
) -> list[tuple[Any, ...]]:
    rows = []
    for k in range(24):
        start = issue + k * H
        local = start.astimezone(zone)
        p50 = level + (3.0 if local.hour == 19 else k / 100)
        rows.append((device, issue, start, start + H, "24h", model, k + 1, local.date(),
                     local.hour, p50 - 0.2, p50, p50 + 0.3, issue))  # fmt: skip
    return rows


def days(device: str, issue: datetime, model: str) -> list[tuple[Any, ...]]:
    rows = []
    for k in range(7):
        day = date(2026, 3, 29) + timedelta(days=k)
        start = datetime.combine(day, datetime.min.time(), BERLIN).astimezone(UTC)
        end = datetime.combine(day + timedelta(days=1), datetime.min.time(), BERLIN)
        rows.append((device, issue, start, end.astimezone(UTC), "7d", model, k + 1, day, None,
                     20.0 + k, 24.0 + k, 30.0 + k, issue))  # fmt: skip
    return rows


def as_trajectories(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows of targets (the view's columns) as the table stores them: one per trajectory."""
    grouped: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
    for device, issue, start, end, horizon, model, _, day, hour, p10, p50, p90, at in rows:
        grouped.setdefault((device, issue, horizon, model, at), []).append(
            (start, end, day, hour, p10, p50, p90)
        )
    made = []
    for (device, issue, horizon, model, at), targets in grouped.items():
        starts, ends, dates, hours, p10s, p50s, p90s = (list(c) for c in zip(*targets, strict=True))
        local_hours = None if horizon == "7d" else hours
        made.append((device, issue, horizon, model, [*starts, ends[-1]], dates, local_hours,
                     p10s, p50s, p90s, at))  # fmt: skip
    return made


async def load(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.executemany(
            "INSERT INTO devices (device_id, kind, tz) VALUES ($1, $2, $3)",
            [("dev-ber", "household_meter", "Europe/Berlin"),
             ("dev-ktm", "hvac", "Asia/Kathmandu")],
        )  # fmt: skip
        rows = [
            *trajectory("dev-ber", MIDNIGHT - H, BERLIN, "gru-a", 1.0),  # an older issue
            *trajectory("dev-ber", MIDNIGHT, BERLIN, "gru-a", 2.0),
            *trajectory("dev-ber", MIDNIGHT, BERLIN, "gru-b", 9.0),  # another model
            *days("dev-ber", MIDNIGHT, "gru-a"),
            *trajectory("dev-ktm", KATHMANDU_ISSUE, ZoneInfo("Asia/Kathmandu"), "gru-a", 0.5),
        ]
        await conn.executemany(
            "INSERT INTO forecast_trajectories (device_id, issue_time, horizon, model_id, bounds,"
            " local_dates, local_hours, p10_kwh, p50_kwh, p90_kwh, issued_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            as_trajectories(rows),
        )
        await conn.executemany(
            "INSERT INTO hourly (device_id, hour_start, hour_end, tz, local_date, local_hour,"
            " energy_kwh, reading_count, expected_count, completeness)"
            " VALUES ('dev-ber', $1, $2, 'Europe/Berlin', '2026-03-29', $3, $4, 4, 4, 1.0)",
            [(MIDNIGHT, MIDNIGHT + H, 0, 1.5), (MIDNIGHT + 22 * H, MIDNIGHT + 23 * H, 23, 2.0)],
        )
        card = {"model_id": "gru-a", "architecture": {"horizon_hours": 24}, "files": {}}
        metrics = {"horizons_summary": {"hourly": {"coverage_p10_p90": 0.81}}}
        await conn.execute(
            "INSERT INTO models (model_id, created_at, metrics, card, active) VALUES"
            " ('gru-a', '2026-11-01T00:00:00Z', $1::jsonb, $2::jsonb, true),"
            " ('gru-b', '2026-11-02T00:00:00Z', '{}', '{}', false)",
            json.dumps(metrics),
            json.dumps(card),
        )
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def database(services: Services) -> AsyncIterator[str]:
    async with migrated_database(services) as url:
        await load(url)
        yield url


@pytest.fixture(scope="module")
def client(database: str, services: Services) -> Iterator[TestClient]:
    settings = settings_for(database, services, f"t{uuid.uuid4().hex[:10]}")
    with TestClient(create_app(settings)) as client:
        yield client


def get(client: TestClient, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_latest_24_hour_trajectory_with_actuals_and_the_next_day_peak(
    client: TestClient,
) -> None:
    body = get(client, "/api/v1/devices/dev-ber/forecasts", horizon="24h", model_id="gru-a")
    assert (body["horizon"], body["model_id"], body["tz"]) == ("24h", "gru-a", "Europe/Berlin")
    assert body["issue_time"] == "2026-03-29T00:00:00+01:00"
    items = body["items"]
    assert [i["step"] for i in items] == list(range(1, 25))
    assert items[0]["actual_kwh"] == 1.5 and items[1]["actual_kwh"] is None
    assert all(i["p10_kwh"] <= i["p50_kwh"] <= i["p90_kwh"] for i in items)
    assert items[2]["target_start"] == "2026-03-29T03:00:00+02:00"  # 02:00 does not exist
    # Issued at midnight, after the 28th's last hour: the next day is the 23-hour 29th.
    assert body["peak"] == {
        "local_date": "2026-03-29", "target_start": "2026-03-29T19:00:00+02:00",
        "local_hour": 19, "p50_kwh": 5.0, "covered_hours": 23,
    }  # fmt: skip


def test_an_earlier_issue_and_the_peak_of_the_day_it_precedes(client: TestClient) -> None:
    body = get(
        client, "/api/v1/devices/dev-ber/forecasts", horizon="24h", model_id="gru-a",
        issued_before="2026-03-28T23:30:00+01:00",
    )  # fmt: skip
    assert body["issue_time"] == "2026-03-28T23:00:00+01:00"
    peak = body["peak"]
    assert (peak["local_date"], peak["local_hour"], peak["p50_kwh"]) == ("2026-03-29", 19, 4.0)
    assert peak["covered_hours"] == 23  # 23:00 on the 28th, then the whole 23-hour 29th


def test_seven_local_days_from_midnight(client: TestClient) -> None:
    body = get(client, "/api/v1/devices/dev-ber/forecasts", horizon="7d")
    assert body["peak"] is None and len(body["items"]) == 7
    first = body["items"][0]
    assert (first["local_date"], first["local_hour"]) == ("2026-03-29", None)
    assert first["target_start"] == "2026-03-29T00:00:00+01:00"
    assert first["target_end"] == "2026-03-30T00:00:00+02:00"


def test_no_forecast_yet_and_unknown_devices(client: TestClient) -> None:
    body = get(client, "/api/v1/devices/dev-ktm/forecasts", horizon="7d")
    assert (body["items"], body["issue_time"], body["model_id"]) == ([], None, None)
    assert (
        client.get("/api/v1/devices/dev-nope/forecasts", params={"horizon": "24h"}).status_code
        == 404
    )


def test_the_next_hour_stays_the_default(client: TestClient) -> None:
    body = get(client, "/api/v1/devices/dev-ber/forecasts")
    assert body["horizon"] == "1h" and "latest" in body


@pytest.mark.parametrize(
    ("path", "params", "where"),
    [
        ("/api/v1/devices/dev-ber/forecasts", {"horizon": "2d"}, "horizon"),
        ("/api/v1/devices/dev-ber/forecasts", {"horizon": "24h", "issued_before": "2026-03-29"},
         "issued_before"),
        ("/api/v1/fleet/forecasts", {"horizon": "1h"}, "horizon"),
    ],
)  # fmt: skip
def test_bad_parameters_are_a_422_naming_the_parameter(
    client: TestClient, path: str, params: dict[str, str], where: str
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert where in response.text


def test_fleet_forecast_sums_each_devices_latest_trajectory_of_the_active_model(
    client: TestClient,
) -> None:
    body = get(client, "/api/v1/fleet/forecasts", horizon="24h")
    assert body["model_id"] == "gru-a"  # the active one: gru-b's rows are not summed
    items = body["items"]
    # Each device's latest issue (dev-ber 23:00Z, not 22:00Z; dev-ktm 00:15Z, in the 2 hours).
    assert body["issued_from"] == "2026-03-28T23:00:00Z"
    both = [i for i in items if i["devices"] == 2]
    assert both and all(i["p10_kwh"] <= i["p50_kwh"] <= i["p90_kwh"] for i in items)
    first = items[0]
    assert (first["bucket"], first["devices"], first["p50_kwh"]) == ("2026-03-28T23:00:00Z", 1, 2.0)
    assert body["peak"]["p50_kwh"] == max(i["p50_kwh"] for i in items)
    week = get(client, "/api/v1/fleet/forecasts", horizon="7d")
    assert [i["local_date"] for i in week["items"]][:2] == ["2026-03-29", "2026-03-30"]
    assert week["items"][0]["p50_kwh"] == 24.0 and week["peak"] is None


def test_models_list_and_one_model_with_its_card(client: TestClient) -> None:
    models = get(client, "/api/v1/models")
    assert [(m["model_id"], m["active"]) for m in models] == [("gru-b", False), ("gru-a", True)]
    assert "card" not in models[0]
    one = get(client, "/api/v1/models/gru-a")
    assert one["active"] is True
    assert one["metrics"]["horizons_summary"]["hourly"]["coverage_p10_p90"] == 0.81
    assert one["card"]["architecture"] == {"horizon_hours": 24}
    missing = client.get("/api/v1/models/nope")
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]


def test_forecast_accuracy_per_horizon(client: TestClient) -> None:
    body = get(
        client, "/api/v1/devices/dev-ber/forecasts/accuracy", model_id="gru-a",
        start="2026-03-28T00:00:00Z", end="2026-04-10T00:00:00Z",
    )  # fmt: skip
    by = {h["horizon"]: h for h in body["horizons"]}
    assert list(by) == ["1h", "24h", "7d"]
    assert by["1h"]["n"] == 0 and by["1h"]["rmse_kwh"] is None
    # One 24-hours-ahead pair: the older trajectory's last hour (23:00 on the 29th), P50 1.23,
    # P10-P90 1.03-1.53, actual 2.0.
    day = by["24h"]
    assert day["n"] == 1
    assert day["rmse_kwh"] == pytest.approx(0.77) and day["bias_kwh"] == pytest.approx(-0.77)
    assert day["coverage_p10_p90"] == 0.0
    assert by["7d"]["n"] == 0  # no local day of a 7th-day target has passed with readings
    bad = client.get("/api/v1/devices/dev-ber/forecasts/accuracy", params={"start": "yesterday"})
    assert bad.status_code == 422 and "start" in bad.text


# ------------------------------------------------------------------ health per horizon
async def load_recent(url: str, now: datetime) -> None:
    """A UTC device with one pair of each horizon inside its health window, up to ``now``."""
    hour = now.replace(minute=0, second=0, microsecond=0)
    issue, midnight = hour - 30 * H, datetime.combine(now.date(), datetime.min.time(), UTC)
    week_issue = midnight - timedelta(days=10)  # its 7th day ended 3 days ago
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO devices (device_id, kind, tz) VALUES ('dev-now', 'hvac', 'UTC')"
        )
        # 24 hours ahead: P50 1.5 (P10-P90 1.0-2.5) of the trajectory's 24th hour, actual 2.0.
        hours = [issue + k * H for k in range(25)]
        week = [week_issue + timedelta(days=k) for k in range(8)]
        await conn.executemany(
            "INSERT INTO forecast_trajectories VALUES ('dev-now', $1, $2, 'gru-a', $3, $4, $5,"
            " $6, $7, $8, $1)",
            [
                (issue, "24h", hours, [h.date() for h in hours[:-1]], [h.hour for h in hours[:-1]],
                 [1.0] * 24, [1.5] * 24, [2.5] * 24),
                (week_issue, "7d", week, [d.date() for d in week[:-1]], None, [18.0] * 7,
                 [20.0] * 7, [30.0] * 7),
            ],
        )  # fmt: skip
        # The next hour: 1.0 forecast, 1.5 actual.
        await conn.executemany(
            "INSERT INTO hourly (device_id, hour_start, hour_end, tz, local_date, local_hour,"
            " energy_kwh, reading_count, expected_count, completeness)"
            " VALUES ('dev-now', $1, $2, 'UTC', $3, $4, $5, 4, 4, 1.0)",
            [(t, t + H, t.date(), t.hour, e) for t, e in ((hours[23], 2.0), (hour - 3 * H, 1.5))],
        )
        await conn.execute(
            "INSERT INTO forecasts (device_id, hour_start, model_id, predicted_kwh, based_on_hour,"
            " issued_at) VALUES ('dev-now', $1, 'gru-a', 1.0, $2, $2)",
            hour - 3 * H,
            hour - 4 * H,
        )
        # The 7th day's actual: 96 quarter-hours of 0.25 kWh = 24 kWh.
        await conn.execute(
            "INSERT INTO readings (device_id, ts, seq, tz, interval_s, energy_kwh, power_kw)"
            " SELECT 'dev-now', $1::timestamptz + q * INTERVAL '15 minutes', q, 'UTC', 900, 0.25,"
            " 1.0 FROM generate_series(0, 95) q",
            week[6],
        )
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def recent_database(services: Services) -> AsyncIterator[str]:
    async with migrated_database(services) as url:
        await load_recent(url, datetime.now(UTC))
        yield url


def test_health_shows_each_horizons_rolling_error_next_to_the_next_hour(
    recent_database: str, services: Services
) -> None:
    settings = settings_for(recent_database, services, f"t{uuid.uuid4().hex[:10]}")
    with TestClient(create_app(settings)) as recent:
        body = get(recent, "/api/v1/devices/dev-now/health")
    by = {h["horizon"]: h for h in body["horizons"]}
    assert list(by) == ["1h", "24h", "7d"]
    assert (by["1h"]["n"], by["1h"]["bias_kwh"], by["1h"]["coverage_p10_p90"]) == (1, -0.5, None)
    assert (by["24h"]["n"], by["24h"]["rmse_kwh"], by["24h"]["coverage_p10_p90"]) == (1, 0.5, 1.0)
    assert (by["7d"]["n"], by["7d"]["bias_kwh"], by["7d"]["coverage_p10_p90"]) == (1, -4.0, 1.0)
    span = {
        name: datetime.fromisoformat(h["window_end"]) - datetime.fromisoformat(h["window_start"])
        for name, h in by.items()
    }
    assert span == {"1h": 24 * H, "24h": 24 * H, "7d": timedelta(days=14)}
