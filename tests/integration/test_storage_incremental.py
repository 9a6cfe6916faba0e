"""The rollups under concurrent writers, and the plain-PostgreSQL path's incrementality.

Concurrent sink writers (the worker's pool, several partitions) touch the same fleet hour, and
sometimes the same device's bucket; the rollups must still equal a recomputation (no lost
update). In plain PostgreSQL a new or restated reading must rewrite only its own 15-minute
group, its hour and its fleet hour, and a redelivered batch nothing at all.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from schema.wire import Energy, Power, Reading
from stream.worker.processor import SinkBatch
from stream.worker.sink import store
from tests.fixtures.rollups import settle_rollups

pytestmark = pytest.mark.integration

T0 = datetime(2026, 6, 1, tzinfo=UTC)
KOLKATA = ZoneInfo("Asia/Kolkata")


def reading(device: str, minute: int) -> Reading:
    ts = T0 + timedelta(minutes=minute)
    # Energies are multiples of 1/1024: every sum is exact in any order, so == is fair.
    return Reading(
        device_id=device,
        seq=minute,
        ts=ts.astimezone(KOLKATA),
        tz="Asia/Kolkata",
        interval_s=60,
        energy=Energy(value=(minute % 7 + 1) / 1024),
        power=Power(value=1.0 + minute % 5),
    )


async def write(conn: asyncpg.Connection, rows: list[Reading]) -> None:
    """As the worker's sink writes a batch: one transaction, COPY into staging, merge."""
    async with conn.transaction():
        await store(conn, SinkBatch(readings=rows), "incremental")


async def test_concurrent_writers_lose_no_update(storage_database: str) -> None:
    # Eight writers, 24 devices, 3 hours of 1-minute readings. Writers 0-3 own devices
    # d00-d11 (disjoint); writers 4-7 split d12-d23 by EVEN/ODD minute, so two writers share
    # every bucket of those devices. Each writes many small batches, all in the same hours.
    rng = random.Random(3)
    plans: list[list[list[Reading]]] = []
    for writer in range(8):
        if writer < 4:
            rows = [
                reading(f"d{d:02}", m)
                for d in range(writer * 3, writer * 3 + 3)
                for m in range(180)
            ]
        else:
            devices = range(12 + (writer - 4) * 3, 12 + (writer - 4) * 3 + 3)
            rows = [reading(f"d{d:02}", m) for d in devices for m in range(180) if m % 2 == 0]
            partner = [reading(f"d{d:02}", m) for d in devices for m in range(180) if m % 2 == 1]
            plans.append([partner[i : i + 20] for i in range(0, len(partner), 20)])
        rng.shuffle(rows)
        plans.append([rows[i : i + 20] for i in range(0, len(rows), 20)])

    async def run(batches: list[list[Reading]]) -> None:
        conn = await asyncpg.connect(storage_database)
        try:
            for batch in batches:
                await write(conn, batch)
        finally:
            await conn.close()

    await asyncio.gather(*(run(plan) for plan in plans))
    every = [reading(f"d{d:02}", m) for d in range(24) for m in range(180)]

    conn = await asyncpg.connect(storage_database)
    try:
        await settle_rollups(conn)
        assert await conn.fetchval("SELECT count(*) FROM readings") == len(every)
        fleet = await conn.fetch("SELECT * FROM fleet_hourly ORDER BY bucket")
        expected: dict[datetime, list[float]] = defaultdict(list)
        for r in every:
            expected[r.ts_utc.replace(minute=0)].append(r.energy.value)
        assert [
            (f["bucket"], f["energy_kwh"], f["reading_count"], f["devices"]) for f in fleet
        ] == [
            (hour, sum(energies), len(energies), 24) for hour, energies in sorted(expected.items())
        ]
        per_bucket = await conn.fetch(
            "SELECT reading_count, count(*) AS n FROM readings_15m GROUP BY 1"
        )
        assert [(r["reading_count"], r["n"]) for r in per_bucket] == [(15, 24 * 12)]
    finally:
        await conn.close()


async def versions(conn: asyncpg.Connection) -> dict[tuple[str, object], str]:
    """Row version (xmin) of every rollup row: it changes exactly when the row is rewritten."""
    found = {}
    for table, key in (
        ("readings_15m", "device_id || ' ' || bucket"),
        ("readings_hourly_utc", "device_id || ' ' || bucket"),
        ("fleet_hourly", "bucket::text"),
    ):
        for row in await conn.fetch(f"SELECT {key} AS k, xmin::text AS v FROM {table}"):
            found[table, row["k"]] = row["v"]
    return found


async def test_plain_postgresql_rewrites_only_the_touched_groups(storage_database: str) -> None:
    conn = await asyncpg.connect(storage_database)
    try:
        if await conn.fetchval("SELECT value FROM storage_info WHERE key = 'mode'") != "postgresql":
            pytest.skip("plain-PostgreSQL path: TimescaleDB tracks invalidations itself")
        rows = [reading(f"d{d}", m) for d in range(3) for m in range(0, 240, 2)]
        await write(conn, rows)
        before = await versions(conn)
        assert len(before) == 3 * 16 + 3 * 4 + 4

        await write(conn, rows[:50])  # a redelivered batch: nothing is rewritten
        assert await versions(conn) == before

        # A late reading for d1 at 01:31 (odd minutes were never sent).
        await write(conn, [reading("d1", 91)])
        after = await versions(conn)
        changed = {key for key in before if after[key] != before[key]}
        hour, bucket = T0 + timedelta(hours=1), T0 + timedelta(hours=1, minutes=30)
        assert set(after) == set(before)
        assert {k[0] for k in changed} == {"readings_15m", "readings_hourly_utc", "fleet_hourly"}
        assert len(changed) == 3
        row = await conn.fetchrow(
            "SELECT reading_count FROM readings_15m WHERE device_id = 'd1' AND bucket = $1",
            bucket,
        )
        assert row["reading_count"] == 8 + 1
        assert (
            await conn.fetchval("SELECT reading_count FROM fleet_hourly WHERE bucket = $1", hour)
            == 3 * 30 + 1
        )

        # TRUNCATE empties the rollups too.
        await conn.execute("TRUNCATE readings")
        assert await versions(conn) == {}
    finally:
        await conn.close()
