"""KPI endpoints against a real PostgreSQL: figures from the rollups, checked by hand.

``dev-ber`` (Berlin, location ``Berlin`` on the ``night`` tariff) runs at 1 kW on the
spring-forward Sunday 2026-03-29 (23 hours) with 5 kW in its 03:00 quarter, and at 1 kW on
Monday 2026-03-30; ``dev-ktm`` (Kathmandu, +05:45, the reference two-rate tariff) runs at 1 kW
on Monday 2026-03-30. One reading per quarter hour goes into ``readings``; the storage layer
keeps ``readings_15m``, which is all the KPI queries read.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import fields
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.kpi import queries
from api.kpi.figures import Kpis, Priced, Quarter, Span, Window, compute, compute_totals
from api.kpi.tariffs import Band, Tariff, TariffBook
from tests.fixtures.rollups import settle_rollups

from ..conftest import migrated_database
from .test_api_rest import ADMIN_KEY, KEY, get, settings_for

if TYPE_CHECKING:
    from tests.conftest import Services

pytestmark = pytest.mark.integration

Q = timedelta(minutes=15)
BERLIN_SPRING = datetime(2026, 3, 28, 23, tzinfo=UTC)  # 2026-03-29 00:00+01:00, 92 quarters
BERLIN_MONDAY = datetime(2026, 3, 29, 22, tzinfo=UTC)  # 2026-03-30 00:00+02:00
KATHMANDU_MONDAY = datetime(2026, 3, 29, 18, 15, tzinfo=UTC)  # 2026-03-30 00:00+05:45
PEAK = datetime(2026, 3, 29, 1, tzinfo=UTC)  # 03:00+02:00

BOOK = TariffBook(
    tariffs={
        "two-rate": TariffBook().tariffs["two-rate"],
        "night": Tariff(base_rate=0.15, bands=(Band(rate=0.05, start="00:00", end="06:00"),)),
    },
    locations={"Berlin": {"tariff": "night"}},  # type: ignore[dict-item]  # validated
)


def steady(device: str, tz: str, start: datetime, quarters: int) -> list[tuple[Any, ...]]:
    rows = []
    for k in range(quarters):
        ts = start + k * Q
        power = 5.0 if device == "dev-ber" and ts == PEAK else 1.0
        rows.append((device, ts, k, tz, 900, power / 4, power))
    return rows


async def load(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.executemany(
            "INSERT INTO readings (device_id, ts, seq, tz, interval_s, energy_kwh, power_kw)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)",
            steady("dev-ber", "Europe/Berlin", BERLIN_SPRING, 92 + 96)
            + steady("dev-ktm", "Asia/Kathmandu", KATHMANDU_MONDAY, 96),
        )
        await conn.executemany(
            "INSERT INTO devices (device_id, kind, tz, location_name, interval_s)"
            " VALUES ($1, $2, $3, $4, 900)",
            [
                ("dev-ber", "household_meter", "Europe/Berlin", "Berlin"),
                ("dev-ktm", "hvac", "Asia/Kathmandu", "Kathmandu"),
            ],
        )
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def kpi_database(services: Services) -> AsyncIterator[str]:
    async with migrated_database(services) as url:
        await load(url)
        yield url


def book_file(directory: Path) -> Path:
    path = directory / "tariffs.json"
    path.write_text(json.dumps(BOOK.model_dump(mode="json")))
    return path


@pytest.fixture(scope="module")
def client(
    kpi_database: str, services: Services, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    path = book_file(tmp_path_factory.mktemp("tariffs"))
    app = create_app(settings_for(kpi_database, services, "kpis", tariffs_file=path))
    with TestClient(app) as client:
        yield client


def test_device_day_across_spring_forward(client: TestClient) -> None:
    body = get(client, "/api/v1/devices/dev-ber/kpis", period="day", date="2026-03-29")
    assert body["period"]["start"] == "2026-03-29T00:00:00+01:00"
    assert body["period"]["end"] == "2026-03-30T00:00:00+02:00"
    kpis = body["kpis"]
    assert (kpis["quarters"], kpis["expected_quarters"], kpis["completeness"]) == (92, 92, 1.0)
    assert kpis["energy_kwh"] == pytest.approx(24.0)
    # Night band 00:00-06:00 holds 5 local hours that day (6 kWh with the peak) at 0.05.
    assert kpis["cost"] == pytest.approx(6.0 * 0.05 + 18 * 0.15)
    assert kpis["currency"] == "EUR"
    assert kpis["carbon_kg"] == pytest.approx(24.0 * 0.45)
    assert kpis["peak_kw"] == 5.0
    assert kpis["peak_at"] == "2026-03-29T03:00:00+02:00"
    assert kpis["load_factor"] == pytest.approx(96 / 92 / 5)
    assert kpis["sec_kwh_per_unit"] is None
    # The same day as an explicit range gives the same figures.
    ranged = get(
        client,
        "/api/v1/devices/dev-ber/kpis",
        start="2026-03-29T00:00:00+01:00",
        end="2026-03-30T00:00:00+02:00",
    )
    assert ranged["period"]["period"] == "range"
    assert ranged["kpis"] == kpis


def test_device_week_counts_the_gap(client: TestClient) -> None:
    # Monday 2026-03-23 .. 2026-03-30: only the Sunday has readings.
    body = get(client, "/api/v1/devices/dev-ber/kpis", period="week", date="2026-03-25")
    assert body["period"]["start_date"] == "2026-03-23"
    assert body["period"]["end_date"] == "2026-03-30"
    kpis = body["kpis"]
    assert kpis["expected_quarters"] == 6 * 96 + 92
    assert kpis["completeness"] == pytest.approx(92 / (6 * 96 + 92))
    assert kpis["energy_kwh"] == pytest.approx(24.0)


def test_fleet_day_in_each_device_zone_by_kind(client: TestClient) -> None:
    body = get(client, "/api/v1/fleet/kpis", period="day", date="2026-03-30", group_by="kind")
    groups = {g["group"]: g for g in body["groups"]}
    berlin, kathmandu = groups["household_meter"], groups["hvac"]
    assert berlin["energy_kwh"] == pytest.approx(24.0)
    assert berlin["cost"] == pytest.approx(6 * 0.05 + 18 * 0.15)  # night tariff, Monday
    assert kathmandu["energy_kwh"] == pytest.approx(24.0)
    assert kathmandu["cost"] == pytest.approx(4 * 0.20 + 20 * 0.10)  # two-rate, work day
    fleet = body["fleet"]
    assert fleet["devices"] == 2
    assert fleet["energy_kwh"] == pytest.approx(48.0)
    assert fleet["cost"] == pytest.approx(3.0 + 2.8)
    # The two local days overlap for 81 quarters (22:00Z to 18:15Z): 2 kW there.
    assert fleet["peak_kw"] == 2.0
    assert fleet["load_factor"] == pytest.approx(192 / 111 / 2)
    assert fleet["completeness"] == 1.0


def test_fleet_by_location_in_one_zone(client: TestClient) -> None:
    body = get(
        client,
        "/api/v1/fleet/kpis",
        period="day",
        date="2026-03-30",
        tz="UTC",
        group_by="location",
    )
    groups = {g["group"]: g for g in body["groups"]}
    # UTC 2026-03-30: Berlin from 00:00Z (22:00Z the day before is outside), 88 quarters;
    # Kathmandu until 18:15Z, 73 quarters.
    assert groups["Berlin"]["quarters"] == 88
    assert groups["Kathmandu"]["quarters"] == 73
    assert body["fleet"]["peak_at"] == "2026-03-30T00:00:00Z"  # the first 2 kW quarter


@pytest.mark.parametrize(
    ("path", "params", "detail"),
    [
        ("/api/v1/fleet/kpis", {"tz": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ("/api/v1/fleet/kpis", {"group_by": "colour"}, "group_by"),
        ("/api/v1/fleet/kpis", {"period": "year"}, "period"),
        ("/api/v1/fleet/kpis", {"date": "2026-02-30"}, "date"),
        ("/api/v1/fleet/kpis", {"date": "9999-12-31"}, "outside the dates readings can have"),
        (
            "/api/v1/fleet/kpis",
            {"period": "day", "start": "2026-03-29T00:00:00Z"},
            "either period (with date) or start/end",
        ),
        (
            "/api/v1/devices/dev-ber/kpis",
            {"start": "2026-03-30T00:00:00Z", "end": "2026-03-29T00:00:00Z"},
            "must be after start",
        ),
        ("/api/v1/devices/dev-ber/kpis", {"start": "2026-03-29T00:00:00"}, "start"),
    ],
)
def test_bad_parameters_are_422_saying_what(
    client: TestClient, path: str, params: dict[str, str], detail: str
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert detail in response.text


def test_unknown_device_is_404(client: TestClient) -> None:
    assert client.get("/api/v1/devices/dev-none/kpis").status_code == 404


def test_openapi_documents_the_kpi_endpoints(client: TestClient) -> None:
    paths = get(client, "/openapi.json")["paths"]
    assert {"/api/v1/devices/{device_id}/kpis", "/api/v1/fleet/kpis", "/api/v1/tariffs"} <= set(
        paths
    )
    assert "put" in paths["/api/v1/tariffs"]


def test_tariffs_are_readable_and_writable_with_the_admin_key(
    kpi_database: str, services: Services, tmp_path: Path
) -> None:
    path = book_file(tmp_path)
    app = create_app(settings_for(kpi_database, services, "kpis-admin", tariffs_file=path))
    with TestClient(app) as client:
        assert get(client, "/api/v1/tariffs") == BOOK.model_dump(mode="json")
        flat = {"tariffs": {"flat": {"base_rate": 0.3}}, "default_tariff": "flat"}
        assert client.put("/api/v1/tariffs", json=flat).status_code == 401
        assert (
            client.put("/api/v1/tariffs", json=flat, headers={"X-API-Key": KEY}).status_code == 403
        )
        bad = {**flat, "devices": {"dev-ber": {"tariff": "missing"}}}
        response = client.put("/api/v1/tariffs", json=bad, headers={"X-API-Key": ADMIN_KEY})
        assert response.status_code == 422
        assert "devices.dev-ber.tariff: no tariff 'missing'" in response.text
        response = client.put("/api/v1/tariffs", json=flat, headers={"X-API-Key": ADMIN_KEY})
        assert response.status_code == 200, response.text
        assert response.json() == {"saved_to": str(path)}
        assert json.loads(path.read_text())["default_tariff"] == "flat"
        kpis = get(client, "/api/v1/devices/dev-ber/kpis", date="2026-03-29")["kpis"]
        assert kpis["cost"] == pytest.approx(24.0 * 0.3)


async def test_kpis_match_the_raw_readings(client: TestClient, kpi_database: str) -> None:
    conn = await asyncpg.connect(kpi_database)
    try:
        energy = await conn.fetchval(
            "SELECT sum(energy_kwh) FROM readings WHERE device_id = 'dev-ktm'"
            " AND (ts AT TIME ZONE tz)::date = '2026-03-30'"
        )
    finally:
        await conn.close()
    body = get(client, "/api/v1/devices/dev-ktm/kpis", date="2026-03-30")
    assert body["kpis"]["energy_kwh"] == pytest.approx(energy)


async def test_same_kpis_in_each_storage_mode_and_from_raw_readings(storage_database: str) -> None:
    """The fleet-day by kind in each storage mode: the hand-computed figures, and the same
    figures as the statement run over raw readings instead of the rollup."""
    await load(storage_database)
    conn = await asyncpg.connect(storage_database)
    try:
        await settle_rollups(conn)
        window = Window.of_days(date(2026, 3, 30), date(2026, 3, 31), None)
        answers = []
        for sql in (
            queries.statement("kind", own_zone=True),
            queries.reference_statement("kind", own_zone=True),
        ):
            groups = queries.groups_of(await conn.fetch(sql, *queries.arguments(BOOK, window)))
            answers.append(
                {k: compute(rows, spans, window, BOOK) for k, (rows, spans) in groups.items()}
            )
    finally:
        await conn.close()
    rollup, raw = answers
    assert rollup.keys() == raw.keys() == {"household_meter", "hvac"}
    for kind, expected_cost in (("household_meter", 3.0), ("hvac", 2.8)):
        assert rollup[kind].energy_kwh == pytest.approx(24.0) == raw[kind].energy_kwh
        assert rollup[kind].cost["EUR"] == pytest.approx(expected_cost) == raw[kind].cost["EUR"]
        assert rollup[kind].peak_at == raw[kind].peak_at
        assert rollup[kind].completeness == raw[kind].completeness == 1.0


LINE_DAY = datetime(2026, 5, 31, 22, tzinfo=UTC)  # Monday 2026-06-01 00:00+02:00 in Berlin


def line_and_meter() -> list[tuple[Any, ...]]:
    """A line making 10 units a quarter at 4 kW from 06:00 to 22:00 local (0 units at 1 kW
    otherwise), and a meter at 1 kW reporting no production, over Berlin's 2026-06-01."""
    rows: list[tuple[Any, ...]] = []
    for k in range(96):
        ts = LINE_DAY + k * Q
        running = 6 <= ts.astimezone(ZoneInfo("Europe/Berlin")).hour < 22
        power, units = (4.0, 10.0) if running else (1.0, 0.0)
        rows.append(("line", ts, k, "Europe/Berlin", 900, power / 4, power, units))
        rows.append(("meter", ts, k, "Europe/Berlin", 900, 0.25, 1.0, None))
        # A line that moved to Kathmandu at noon: those quarters carry the other zone.
        moved = "Asia/Kathmandu" if k >= 48 else "Europe/Berlin"
        rows.append(("mover", ts, k, moved, 900, power / 4 + k / 1000, power, units))
    return rows


def assert_same(a: Kpis, b: Kpis) -> None:
    """Equal KPIs, bar the rounding of sums taken in another order."""
    for name in (f.name for f in fields(Kpis)):
        mine, theirs = getattr(a, name), getattr(b, name)
        if isinstance(mine, float | dict):
            assert mine == pytest.approx(theirs, rel=1e-12), name
        else:
            assert mine == theirs, name


async def test_sec_in_each_storage_mode_from_rollups_and_raw_readings(
    storage_database: str,
) -> None:
    """Production through every rollup in each storage mode, and the same SEC (by hand:
    64 running quarters of 1 kWh and 32 idle of 0.25 kWh over 640 units) from the device
    statement, the per-quarter path, the fleet statement and raw readings."""
    conn = await asyncpg.connect(storage_database)
    try:
        await conn.executemany(
            "INSERT INTO devices (device_id, kind, tz, location_name, interval_s)"
            " VALUES ($1, $2, 'Europe/Berlin', 'Plant', 900)",
            [("line", "industrial_line"), ("meter", "household_meter"), ("mover", "lathe")],
        )
        await conn.executemany(
            "INSERT INTO readings (device_id, ts, seq, tz, interval_s, energy_kwh, power_kw,"
            " production_units) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            line_and_meter(),
        )
        await settle_rollups(conn)
        for relation in ("readings_15m", "readings_hourly_utc", "daily_local"):
            produced = dict(
                await conn.fetch(
                    f"SELECT device_id, sum(production_units) FROM {relation} GROUP BY 1"
                )
            )
            assert produced == {"line": 640.0, "meter": None, "mover": 640.0}, relation
        assert await conn.fetchval("SELECT sum(production_units) FROM fleet_hourly") == 1280.0

        window = Window.of_days(date(2026, 6, 1), date(2026, 6, 2), ZoneInfo("Europe/Berlin"))
        site = await queries.device_site(conn, "line")
        assert site == queries.Site("Europe/Berlin", "Plant")
        found = await queries.device_figures(conn, BOOK, window, "line", site)
        quarters = await queries.device_quarters(conn, BOOK, window, "line", site)
        spans = [Span("Europe/Berlin", 1)]
        by_device = compute_totals(found, spans, window, BOOK)
        by_quarters = compute(quarters, spans, window, BOOK)
        # The mover's afternoon is priced in Python (Kathmandu's wall clock), the rest in SQL.
        moved_site = queries.Site("Europe/Berlin", "Plant")
        moved = await queries.device_figures(conn, BOOK, window, "mover", moved_site)
        assert (moved.totals.quarters, len(moved.others)) == (48, 48)
        assert_same(
            compute_totals(moved, spans, window, BOOK),
            compute(
                await queries.device_quarters(conn, BOOK, window, "mover", moved_site),
                spans,
                window,
                BOOK,
            ),
        )
        own_days = Window.of_days(date(2026, 6, 1), date(2026, 6, 2), None)
        groups = {}
        for sql in (
            queries.statement("kind", own_zone=True),
            queries.reference_statement("kind", own_zone=True),
        ):
            grouped = queries.groups_of(await conn.fetch(sql, *queries.arguments(BOOK, own_days)))
            groups[sql] = {k: compute(r, s, own_days, BOOK) for k, (r, s) in grouped.items()}
    finally:
        await conn.close()
    assert (len(quarters), found.totals.quarters, found.others) == (96, 96, [])
    assert_same(by_device, by_quarters)
    assert by_device.energy_kwh == pytest.approx(72.0)
    assert by_device.production_units == pytest.approx(640.0)
    assert by_device.sec_kwh_per_unit == pytest.approx(72.0 / 640)
    # Two-rate tariff, a Monday: 17:00-21:00 (16 running quarters) at 0.20, the rest at 0.10.
    assert by_device.cost["EUR"] == pytest.approx(16 * 0.20 + 56 * 0.10)
    assert (by_device.peak_kw, by_device.peak_at) == (4.0, datetime(2026, 6, 1, 4, tzinfo=UTC))
    rollup, raw = groups.values()
    for answer in (rollup, raw):
        assert answer["industrial_line"].sec_kwh_per_unit == pytest.approx(72.0 / 640)
        assert answer["industrial_line"].energy_kwh == pytest.approx(72.0)
        assert answer["household_meter"].production_units is None
        assert answer["household_meter"].sec_kwh_per_unit is None
    assert rollup.keys() == raw.keys()
    for kind, kpis in rollup.items():
        assert_same(kpis, raw[kind])


async def test_a_window_from_the_first_instant_a_reading_can_have(services: Services) -> None:
    """At 1970-01-01 00:00 UTC it is still Wednesday 31 December 1969, 19:00, in New York: the
    device statement's local quarter of the week stays in range (SQL's ``%`` keeps the sign of
    a negative dividend), and the two hours are in the two-rate tariff's evening band. (The
    statement is the same in both storage modes; the parity tests above cover the modes.)"""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    async with migrated_database(services) as url:
        found, quarters = await early_figures(url, epoch)
    spans = [Span("America/New_York", 1)]
    window = Window(epoch, epoch + 8 * Q)
    by_device = compute_totals(found, spans, window, BOOK)
    assert found.totals.quarters == 8
    assert by_device.cost["EUR"] == pytest.approx(8 * 0.25 * 0.20)
    assert_same(by_device, compute(quarters, spans, window, BOOK))


async def early_figures(url: str, epoch: datetime) -> tuple[Priced, list[Quarter]]:
    """Two hours of readings of a New York device from ``epoch``: the device statement's
    figures and the quarters."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO devices (device_id, kind, tz, location_name, interval_s)"
            " VALUES ('early', 'hvac', 'America/New_York', 'New York', 900)"
        )
        await conn.executemany(
            "INSERT INTO readings (device_id, ts, seq, tz, interval_s, energy_kwh, power_kw)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)",
            [("early", epoch + k * Q, k, "America/New_York", 900, 0.25, 1.0) for k in range(8)],
        )
        await settle_rollups(conn)
        window = Window(epoch, epoch + 8 * Q)
        site = await queries.device_site(conn, "early")
        assert site is not None
        return (
            await queries.device_figures(conn, BOOK, window, "early", site),
            await queries.device_quarters(conn, BOOK, window, "early", site),
        )
    finally:
        await conn.close()
