"""The worker's result sink on the real PostgreSQL: one transaction, idempotent replays,
restatements only moving forward."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from schema.device_messages import DeviceBirth, DeviceStatus, Location, Presence
from schema.results import Alert, Forecast, Health, HourlyAggregate
from schema.wire import Energy, Power, Reading
from stream.worker.processor import SinkBatch
from stream.worker.sink import ResultSink

pytestmark = pytest.mark.integration

H = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


def hourly(revision: int, energy: float) -> HourlyAggregate:
    return HourlyAggregate(
        device_id="d1", hour_start=H, hour_end=H + timedelta(hours=1), tz="Europe/Berlin",
        local_date=date(2026, 3, 29), local_hour=1, energy_kwh=energy, power_mean_kw=1.0,
        power_min_kw=0.5, power_max_kw=1.5, reading_count=4, expected_count=4, completeness=1.0,
        late_count=revision, duplicate_count=0, first_ts=H, last_ts=H + timedelta(minutes=45),
        revision=revision, closed_at=H + timedelta(hours=2),
    )  # fmt: skip


def batch(revision: int = 0, energy: float = 1.0) -> SinkBatch:
    return SinkBatch(
        readings=[
            Reading(device_id="d1", seq=k, ts=(H + timedelta(minutes=15 * k)).astimezone(BERLIN),
                    tz="Europe/Berlin", interval_s=900, energy=Energy(value=0.25),
                    power=Power(value=1.0))
            for k in range(4)
        ],
        births=[
            DeviceBirth(device_id="d1", kind="hvac", tz="Europe/Berlin",
                        location=Location(latitude=52.5, longitude=13.4, name="Berlin"),
                        nominal_kw=3.0, firmware="2.1", interval_s=900, ts=H)
        ],
        statuses=[(DeviceStatus(device_id="d1", status=Presence.ONLINE, ts=H), H)],
        hourly=[hourly(revision, energy)],
        forecasts=[
            Forecast(device_id="d1", hour_start=H + timedelta(hours=1), model_id="m1",
                     predicted_kwh=1.1, baseline_kwh=0.9, based_on_hour=H, issued_at=H)
        ],
        health=[
            Health(device_id="d1", hour_start=H, rmse_24h=0.1, mae_24h=0.1, mape_24h=0.1,
                   bias_24h=0.0, naive_rmse_24h=0.2, rmse_ratio=0.5, status="green",
                   completeness_24h=1.0, gaps_24h=0, late_24h=0, duplicates_24h=0,
                   presence="online", last_seen=H, computed_at=H)
        ],
        alerts=[
            Alert(device_id="d1", hour_start=H, severity="warning", residual_kwh=0.3, sigma=0.1,
                  z=3.0, message="m", raised_at=H)
        ],
    )  # fmt: skip


@pytest.fixture
async def sink(database: str) -> AsyncIterator[ResultSink]:
    service = ResultSink(database, group_id="g1")
    await service.start()
    yield service
    await service.stop()


async def counts(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        return {
            t: await conn.fetchval(f"SELECT count(*) FROM {t}")
            for t in (
                "readings",
                "devices",
                "device_status",
                "hourly",
                "forecasts",
                "health",
                "alerts",
            )
        }
    finally:
        await conn.close()


async def test_a_batch_lands_once_however_often_it_is_written(
    sink: ResultSink, database: str
) -> None:
    await sink.write(batch())
    first = await counts(database)
    assert first == {
        "readings": 4, "devices": 1, "device_status": 1, "hourly": 1, "forecasts": 1,
        "health": 1, "alerts": 1,
    }  # fmt: skip
    await sink.write(batch())
    assert await counts(database) == first
    again = batch()
    again.offsets = {("readings", 3): 42}
    await sink.write(again)
    again.offsets = {("readings", 3): 17}  # a replay never moves the stored offset back
    await sink.write(again)
    assert await sink.stored_offsets() == {("readings", 3): 42}


async def test_restatements_move_forward_only(sink: ResultSink, database: str) -> None:
    await sink.write(batch(revision=1, energy=1.3))
    await sink.write(batch(revision=0, energy=1.0))  # a stale replay of the first close
    conn = await asyncpg.connect(database)
    try:
        row = await conn.fetchrow("SELECT revision, energy_kwh FROM hourly")
        assert (row["revision"], row["energy_kwh"]) == (1, 1.3)
        # The storage layer's rollups saw the raw readings written through COPY.
        assert await conn.fetchval("SELECT sum(energy_kwh) FROM readings_15m") == pytest.approx(1.0)
    finally:
        await conn.close()
