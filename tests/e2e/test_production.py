"""Production end to end (issue 16): an industrial line's units travel simulator --MQTT-->
bridge --Kafka--> worker --> PostgreSQL, and the KPI endpoints give its specific energy
consumption (kWh per unit), while a household meter beside it has none and does not dilute it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from simulator.fleet import DeviceGroup, build_fleet
from simulator.profiles import DeviceKind

from ..conftest import Services, Spawn
from ..integration.test_api_rest import get, settings_for
from .test_cold_start import Pipeline, wait_until

pytestmark = pytest.mark.e2e

# Monday 2026-06-01, 08:00-11:00 in Berlin: the line runs its morning shift.
START = datetime(2026, 6, 1, 6, tzinfo=UTC)
INTERVAL_S, TICKS, SEED = 300, 36, 5
FLEET_FILE = """
seed = 5

[[group]]
count = 1
kinds = ["industrial_line"]
zones = ["Europe/Berlin"]

[[group]]
count = 1
kinds = ["household_meter"]
zones = ["Europe/Berlin"]
"""


async def rows(database: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


async def test_an_industrial_line_has_sec_from_the_simulator_to_the_api(
    services: Services, database: str, namespace: str, spawn: Spawn, tmp_path: Path
) -> None:
    fleet_file = tmp_path / "fleet.toml"
    fleet_file.write_text(FLEET_FILE)
    line, meter = build_fleet(
        2,
        SEED,
        [
            DeviceGroup(1, (DeviceKind.INDUSTRIAL_LINE,), ("Europe/Berlin",)),
            DeviceGroup(1, (DeviceKind.HOUSEHOLD_METER,), ("Europe/Berlin",)),
        ],
    )
    published = [
        line.reading(k, START + timedelta(seconds=k * INTERVAL_S), INTERVAL_S) for k in range(TICKS)
    ]
    units = [r.production.value for r in published if r.production is not None]
    energy = sum(r.energy.value for r in published)
    assert len(units) == TICKS and sum(units) > 0

    pipeline = Pipeline(services, spawn, database, namespace, tmp_path)
    pipeline.worker()
    bridge = pipeline.bridge()

    async def subscribed() -> bool:
        return "subscribed" in bridge.log.read_text(errors="replace")

    await wait_until("the bridge's subscription", subscribed, 60, bridge)
    simulator = pipeline.simulator(
        f"--fleet={fleet_file}",
        "--devices=2",
        f"--interval-s={INTERVAL_S}",
        f"--start={START.isoformat()}",
        f"--max-ticks={TICKS}",
        "--speed=3000",
    )

    async def stored() -> bool:
        found = await rows(database, "SELECT count(*) AS n FROM readings")
        return bool(found[0]["n"] == 2 * TICKS)

    async def two_hours_closed() -> bool:
        found = await rows(database, "SELECT 1 FROM hourly WHERE device_id = 'dev-00000'")
        return len(found) >= 2

    await wait_until("every reading stored", stored, 180, *pipeline.running())
    assert simulator.process.wait(timeout=60) == 0
    await wait_until("the line's first hours closed", two_hours_closed, 180, *pipeline.running())

    # The worker's hours: production summed per local hour, none for the meter.
    hours = await rows(
        database,
        "SELECT device_id, hour_start, production_units FROM hourly ORDER BY device_id, hour_start",
    )
    for hour in hours:
        if hour["device_id"] == meter.spec.device_id:
            assert hour["production_units"] is None
            continue
        made = [
            r.production.value
            for r in published
            if r.production is not None
            and hour["hour_start"] <= r.ts_utc < hour["hour_start"] + timedelta(hours=1)
        ]
        assert hour["production_units"] == pytest.approx(sum(made))

    app = create_app(settings_for(database, services, namespace))
    with TestClient(app) as client:
        span = {
            "start": START.isoformat(),
            "end": (START + timedelta(seconds=TICKS * INTERVAL_S)).isoformat(),
        }
        kpis = get(client, f"/api/v1/devices/{line.spec.device_id}/kpis", **span)["kpis"]
        assert kpis["production_units"] == pytest.approx(sum(units))
        assert kpis["energy_kwh"] == pytest.approx(energy)
        assert kpis["sec_kwh_per_unit"] == pytest.approx(energy / sum(units))
        # Base load plus per-unit energy: SEC lies a little above the line's per-unit energy.
        assert line.kwh_per_unit < kpis["sec_kwh_per_unit"] < 2 * line.kwh_per_unit
        other = get(client, f"/api/v1/devices/{meter.spec.device_id}/kpis", **span)["kpis"]
        assert other["energy_kwh"] > 0
        assert (other["production_units"], other["sec_kwh_per_unit"]) == (None, None)
        # The fleet: SEC is the line's alone (the meter produces nothing and does not dilute
        # it); by kind, only the industrial line has one.
        day = {"date": "2026-06-01", "tz": "Europe/Berlin", "group_by": "kind"}
        body = get(client, "/api/v1/fleet/kpis", **day)
        groups = {g["group"]: g for g in body["groups"]}
        assert groups["industrial_line"]["sec_kwh_per_unit"] == pytest.approx(energy / sum(units))
        assert groups["household_meter"]["sec_kwh_per_unit"] is None
        assert body["fleet"]["sec_kwh_per_unit"] == pytest.approx(energy / sum(units))
        assert (
            body["period"]["start"]
            == datetime(2026, 6, 1, tzinfo=ZoneInfo("Europe/Berlin")).isoformat()
        )
