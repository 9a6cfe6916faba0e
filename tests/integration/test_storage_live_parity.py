"""Parity through the API while data arrives: TimescaleDB mode answers as plain PostgreSQL does.

The same readings go through the stream worker's sink into two databases, one per storage mode,
and an API serves each. Phase by phase - live readings up to now (the open bucket included), a
backfill more than a year old, late readings, restatements by SQL, readings into compressed
chunks - every aggregate request must give the same answer from both, within the freshness
bound (:data:`FRESHNESS_S`) and without anything forcing a refresh: TimescaleDB mode gets
there by the worker's settle after each commit and, for the SQL restatements, by the settle
job. The first look after each phase and the time to agree are printed (``-s``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest

from schema.topics import KafkaTopics
from schema.wire import Energy, Power, Reading
from stream.worker.processor import SinkBatch
from stream.worker.sink import ResultSink
from tests.conftest import Services, Spawn, Spawned, storage_mode_database
from tests.fixtures.api import start_api, wait_until_ready

pytestmark = [pytest.mark.integration, pytest.mark.timescaledb]

FRESHNESS_S = 60.0
"""The stated bound: a committed reading of any age shows in every aggregate within this."""
DEVICES = (("lp-berlin", "Europe/Berlin"), ("lp-kathmandu", "Asia/Kathmandu"), ("lp-utc", "UTC"))
STEP = timedelta(minutes=5)


def reading(device: str, zone: str, ts: datetime, variant: int = 0) -> Reading:
    # Energies are multiples of 1/1024 and powers small integers: sums are exact in any order.
    minute = int(ts.timestamp()) // 60
    return Reading(
        device_id=device,
        seq=minute,
        ts=ts.astimezone(ZoneInfo(zone)),
        tz=zone,
        interval_s=300,
        energy=Energy(value=(minute % 7 + 1 + variant) / 1024),
        power=Power(value=1.0 + minute % 5),
    )


@dataclass
class Side:
    mode: str
    url: str
    sink: ResultSink
    http: httpx.AsyncClient


@pytest.fixture
async def sides(
    services: Services,
    timescaledb_admin_url: str,
    spawn: Spawn,
    namespace: str,
    kafka_topics: KafkaTopics,  # the APIs' live feeds need their topics to be ready
) -> AsyncIterator[tuple[Side, Side]]:
    async with (
        storage_mode_database(services.admin_database_url, "postgresql") as plain_url,
        storage_mode_database(timescaledb_admin_url, "timescaledb") as tsdb_url,
    ):
        made: list[Side] = []
        apis: list[Spawned] = []
        try:
            for mode, url in (("postgresql", plain_url), ("timescaledb", tsdb_url)):
                api, port = start_api(spawn, services, url, namespace)
                apis.append(api)
                base = f"http://127.0.0.1:{port}"
                await wait_until_ready(api, base)
                sink = ResultSink(url, group_id="parity")
                await sink.start()
                made.append(Side(mode, url, sink, httpx.AsyncClient(base_url=base, timeout=30)))
            yield made[0], made[1]
        finally:
            for side in made:
                await side.http.aclose()
                await side.sink.stop()
            for api in apis:  # before their databases are dropped
                api.process.terminate()
                await asyncio.to_thread(api.process.wait, 20)


async def write(sides: Sequence[Side], readings: Sequence[Reading], batch: int = 36) -> None:
    """Through the worker's sink, in batches, into both databases."""
    for i in range(0, len(readings), batch):
        for side in sides:
            await side.sink.write(SinkBatch(readings=list(readings[i : i + batch])))


async def execute(sides: Sequence[Side], sql: str, *args: object) -> None:
    for side in sides:
        conn = await asyncpg.connect(side.url)
        try:
            await conn.execute(sql, *args)
        finally:
            await conn.close()


def requests(now: datetime, backfill_day: datetime) -> list[tuple[str, dict[str, str]]]:
    found: list[tuple[str, dict[str, str]]] = []
    recent = (now - timedelta(hours=7), now + timedelta(minutes=15))
    old = (backfill_day - timedelta(days=1), backfill_day + timedelta(days=3))
    for device, _ in DEVICES:
        path = f"/api/v1/devices/{device}/aggregates"
        for bucket in ("15m", "1h", "1d"):
            for start, end in (recent, old):
                found.append(
                    (path, {"bucket": bucket, "start": start.isoformat(), "end": end.isoformat()})
                )
    for at in (now, now - timedelta(hours=3), backfill_day + timedelta(hours=13)):
        found.append(("/api/v1/fleet/summary", {"at": at.isoformat()}))
    return found


def normalized(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, dict):
        return {k: normalized(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


async def answers(side: Side, asked: Iterable[tuple[str, dict[str, str]]]) -> list[Any]:
    found = []
    for path, params in asked:
        response = await side.http.get(path, params=params)
        assert response.status_code == 200, (side.mode, path, params, response.text)
        found.append(normalized(response.json()))
    return found


async def agree(
    phase: str, plain: Side, tsdb: Side, asked: list[tuple[str, dict[str, str]]]
) -> list[Any]:
    """Wait (at most FRESHNESS_S from now) until both APIs answer alike; print the figures."""
    started = time.monotonic()
    first_differing: int | None = None
    while True:
        want, got = await answers(plain, asked), await answers(tsdb, asked)
        differing = [i for i, (w, g) in enumerate(zip(want, got, strict=True)) if w != g]
        if first_differing is None:
            first_differing = len(differing)
        if not differing:
            print(
                f"parity {phase}: {len(asked)} requests, {first_differing} differed at first"
                f" look, all equal after {time.monotonic() - started:.1f}s"
            )
            return want
        if time.monotonic() - started > FRESHNESS_S:
            i = differing[0]
            raise AssertionError(
                f"{phase}: {len(differing)} of {len(asked)} answers still differ after"
                f" {FRESHNESS_S}s; first {asked[i]}:\nplain {want[i]}\ntsdb  {got[i]}"
            )


def total_count(pages: list[Any]) -> int:
    return sum(item["reading_count"] for page in pages if "items" in page for item in page["items"])


async def test_timescaledb_answers_as_plain_postgresql_while_data_arrives(
    sides: tuple[Side, Side],
) -> None:
    plain, tsdb = sides
    both = (plain, tsdb)
    now = datetime.now(UTC)
    start = now - timedelta(hours=6)
    backfill_day = (now - timedelta(days=400)).replace(hour=0, minute=0, second=0, microsecond=0)
    asked = requests(now, backfill_day)

    def live(variant: int = 0) -> list[Reading]:
        at = datetime.now(UTC).replace(microsecond=0)
        return [reading(device, zone, at, variant) for device, zone in DEVICES]

    def held_back(r: Reading) -> bool:  # sent late, in phase 3
        return r.device_id == "lp-berlin" and now - timedelta(hours=3) <= r.ts < now - timedelta(
            hours=2
        )

    series = [
        reading(device, zone, start + k * STEP)
        for k in range(int((now - start) / STEP) + 1)
        for device, zone in DEVICES
    ]
    late = [r for r in series if held_back(r)]

    # 1. Live: six hours up to now, in time order; the last ones fall in the open bucket.
    await write(both, [r for r in series if not held_back(r)])
    pages = await agree("live", plain, tsdb, asked)
    recent_count = total_count(pages)
    assert recent_count > 0

    # 2. A backfill more than a year old: two days of quarter-hourly readings.
    backfill = [
        reading(device, zone, backfill_day + k * timedelta(minutes=15))
        for k in range(2 * 96)
        for device, zone in DEVICES
    ]
    await write(both, [*backfill, *live()], batch=96)
    pages = await agree("backfill older than a year", plain, tsdb, asked)
    assert total_count(pages) > recent_count

    # 3. Late readings: an hour of one device, three hours old, plus live ones.
    await write(both, [*late, *live(1)])
    await agree("late readings", plain, tsdb, asked)

    # 4. Restatements by SQL (not the worker): the settle job must pick them up.
    for since in (now - timedelta(hours=5), backfill_day + timedelta(hours=10)):
        await execute(
            both,
            "UPDATE readings SET energy_kwh = energy_kwh * 2 WHERE device_id = 'lp-utc'"
            " AND ts >= $1 AND ts < $1 + INTERVAL '1 hour'",
            since,
        )
    await agree("restatements", plain, tsdb, asked)

    # 5. Readings into compressed chunks: the backfill's chunks are compressed first.
    conn = await asyncpg.connect(tsdb.url)
    try:
        compressed = await conn.fetchval(
            "SELECT count(*) FROM (SELECT compress_chunk(c, if_not_compressed => true)"
            " FROM show_chunks('readings', older_than => INTERVAL '300 days') c) AS x"
        )
    finally:
        await conn.close()
    assert compressed >= 2
    into_compressed = [
        reading(device, zone, backfill_day + timedelta(minutes=15 * k + 7, seconds=30), 2)
        for k in range(0, 2 * 96, 5)
        for device, zone in DEVICES
    ]
    await write(both, [*into_compressed, *live(2)])
    pages = await agree("readings into compressed chunks", plain, tsdb, asked)
    assert total_count(pages) > 0
