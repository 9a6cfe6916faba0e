"""Parity: the rollups equal an independent recomputation in Python from the raw rows.

One fixed data set — devices in Berlin (a 23-hour day), Sydney (a 25-hour day), Lord Howe
(30-minute DST: a 24.5-hour day), Chatham (+13:45 -> +12:45), Kathmandu (+05:45), Kolkata
(+05:30) and UTC, readings off the bucket grid, a gap — is loaded through the sink's own
code path (:func:`stream.worker.sink.store`: COPY into staging, then a merge), then late
readings arrive out of order, some are restated (upsert and UPDATE), some deleted, and a batch
is redelivered; Kathmandu reports production, the others none. After each phase every row of
``readings_15m``, ``readings_hourly_utc``, ``daily_local`` and ``fleet_hourly`` must equal
:func:`oracle`, which knows nothing of SQL: it buckets in UTC by integer arithmetic and finds
local days with ``zoneinfo``.

The test runs once per storage mode; TimescaleDB runs through testcontainers where a Docker
engine answers. There the policies' work is done at once with ``storage.refresh_statements``
after each phase, as the refresh policy would on its next run.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from schema.wire import Energy, Power, Production, Reading
from stream.worker.processor import SinkBatch
from stream.worker.sink import store
from stream.worker.statements import READINGS, reading_row
from tests.fixtures.rollups import settle_rollups

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 27, tzinfo=UTC)
END = datetime(2026, 4, 7, tzinfo=UTC)
# (device, zone, interval_s, phase_s): phases put readings off the 15-minute grid.
DEVICES = (
    ("berlin", "Europe/Berlin", 300, 0),
    ("sydney", "Australia/Sydney", 300, 60),
    ("lordhowe", "Australia/Lord_Howe", 600, 0),
    ("chatham", "Pacific/Chatham", 900, 450),
    ("kathmandu", "Asia/Kathmandu", 300, 150),
    ("kolkata", "Asia/Kolkata", 120, 30),
    ("utc", "UTC", 300, 0),
)
ABS = 1e-9
REL = 1e-9


@dataclass(frozen=True)
class Row:
    device_id: str
    ts: datetime
    seq: int
    tz: str
    interval_s: int
    energy_kwh: float
    power_kw: float
    production_units: float | None = None


def generate() -> list[Row]:
    rng = random.Random(7)
    rows: list[Row] = []
    for device, zone, interval, phase in DEVICES:
        ts = START + timedelta(seconds=phase)
        seq = 0
        while ts < END:
            gap = device == "sydney" and datetime(2026, 4, 1, 3, tzinfo=UTC) <= ts < datetime(
                2026, 4, 1, 6, 20, tzinfo=UTC
            )
            if not gap:
                power = round(rng.uniform(0.05, 4.0), 4)
                # Kathmandu is an industrial line: it reports production (0 now and then).
                units = round(power * 2, 1) if device == "kathmandu" else None
                energy = power * interval / 3600
                rows.append(Row(device, ts, seq, zone, interval, energy, power, units))
            seq += 1
            ts += timedelta(seconds=interval)
    return rows


# ----------------------------------------------------------------------------- the oracle
def floor_to(ts: datetime, seconds: int) -> datetime:
    epoch = int(ts.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


def local_midnight(day: date, zone: str) -> datetime:
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(zone)).astimezone(UTC)


def oracle(rows: Iterable[Row]) -> dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]:
    """Every rollup row by key, recomputed straight from the readings."""
    by_15m: dict[tuple[str, datetime], list[Row]] = defaultdict(list)
    by_hour: dict[tuple[str, datetime], list[Row]] = defaultdict(list)
    by_day: dict[tuple[str, date, str], list[Row]] = defaultdict(list)
    by_fleet: dict[datetime, list[Row]] = defaultdict(list)
    for row in rows:
        by_15m[row.device_id, floor_to(row.ts, 900)].append(row)
        by_hour[row.device_id, floor_to(row.ts, 3600)].append(row)
        local = row.ts.astimezone(ZoneInfo(row.tz)).date()
        by_day[row.device_id, local, row.tz].append(row)
        by_fleet[floor_to(row.ts, 3600)].append(row)

    def stats(group: Sequence[Row]) -> tuple[float, int, float, float, float]:
        power = [r.power_kw for r in group]
        return (
            math.fsum(r.energy_kwh for r in group),
            len(group),
            math.fsum(power) / len(power),
            min(power),
            max(power),
        )

    def produced(group: Sequence[Row]) -> float | None:
        """Sum of the production reported; None if no reading reported any (SQL's sum)."""
        units = [r.production_units for r in group if r.production_units is not None]
        return math.fsum(units) if units else None

    days = {}
    for (device, day, zone), group in by_day.items():
        start, end = local_midnight(day, zone), local_midnight(day + timedelta(days=1), zone)
        days[device, day] = (
            zone,
            start,
            end,
            math.fsum(r.energy_kwh for r in group),
            len(group),
            (end - start).total_seconds() / 3600,
            produced(group),
        )
    return {
        "readings_15m": {
            key: (*stats(group), max(r.tz for r in group), produced(group))
            for key, group in by_15m.items()
        },
        "readings_hourly_utc": {
            key: (*stats(group), produced(group)) for key, group in by_hour.items()
        },
        "daily_local": days,
        "fleet_hourly": {
            (hour,): (
                math.fsum(r.energy_kwh for r in group),
                len(group),
                len({r.device_id for r in group}),
                produced(group),
            )
            for hour, group in by_fleet.items()
        },
    }


KEYS = {
    "readings_15m": ("device_id", "bucket"),
    "readings_hourly_utc": ("device_id", "bucket"),
    "daily_local": ("device_id", "local_date"),
    "fleet_hourly": ("bucket",),
}


async def stored(conn: asyncpg.Connection) -> dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]:
    result = {}
    for relation, key in KEYS.items():
        rows = await conn.fetch(f"SELECT * FROM {relation} ORDER BY {', '.join(key)}")
        result[relation] = {
            tuple(r[k] for k in key): tuple(v for name, v in r.items() if name not in key)
            for r in rows
        }
    return result


def same(a: object, b: object) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return (
            isinstance(a, int | float)
            and isinstance(b, int | float)
            and math.isclose(a, b, rel_tol=REL, abs_tol=ABS)
        )
    return a == b


def assert_parity(
    got: dict[str, dict[tuple[Any, ...], tuple[Any, ...]]], rows: Iterable[Row]
) -> None:
    want = oracle(rows)
    for relation in KEYS:
        assert set(got[relation]) == set(want[relation]), relation
        for key, expected in want[relation].items():
            actual = got[relation][key]
            assert len(actual) == len(expected), (relation, key)
            assert all(same(a, e) for a, e in zip(actual, expected, strict=True)), (
                relation,
                key,
                actual,
                expected,
            )


# ----------------------------------------------------------------------------- loading
def reading(row: Row) -> Reading:
    return Reading(
        device_id=row.device_id,
        seq=row.seq,
        ts=row.ts.astimezone(ZoneInfo(row.tz)),
        tz=row.tz,
        interval_s=row.interval_s,
        energy=Energy(value=row.energy_kwh),
        power=Power(value=row.power_kw),
        production=None if row.production_units is None else Production(value=row.production_units),
    )


async def write(conn: asyncpg.Connection, rows: Sequence[Row], batch: int) -> None:
    """As the worker's sink writes: one transaction per batch."""
    for i in range(0, len(rows), batch):
        async with conn.transaction():
            await store(conn, SinkBatch(readings=[reading(r) for r in rows[i : i + batch]]), "p")


async def restate(conn: asyncpg.Connection, rows: Sequence[Row], batch: int) -> None:
    """An upsert that overwrites readings (the sink never does; a correction tool would),
    built from the same table definition as the sink's statements."""
    upsert = READINGS.target
    for i in range(0, len(rows), batch):
        values = upsert.rows(reading_row(reading(r)) for r in rows[i : i + batch])
        await conn.execute(upsert.upsert_sql, *upsert.arrays(values))


def is_late(row: Row) -> bool:
    """Held back in phase 1: Kathmandu's whole local 30 March, and every 7th Berlin reading
    around its DST change."""
    if row.device_id == "kathmandu":
        return row.ts.astimezone(ZoneInfo(row.tz)).date() == date(2026, 3, 30)
    return row.device_id == "berlin" and row.seq % 7 == 3 and row.ts.day in (28, 29, 30)


async def test_rollups_equal_a_recomputation_from_the_raw_rows(storage_database: str) -> None:
    rows = generate()
    late = [r for r in rows if is_late(r)]
    on_time = sorted((r for r in rows if not is_late(r)), key=lambda r: (r.ts, r.device_id))
    conn = await asyncpg.connect(storage_database)
    try:
        # Phase 1: in time order, in batches, as the sink writes; one batch redelivered.
        await write(conn, on_time, 1000)
        await write(conn, on_time[3000:4000], 1000)
        await settle_rollups(conn)
        assert_parity(await stored(conn), on_time)

        # Phase 2: late readings out of order, with duplicates of stored ones.
        rng = random.Random(11)
        shuffled = late + rng.sample(on_time, 500)
        rng.shuffle(shuffled)
        await write(conn, shuffled, 400)
        current = {(r.device_id, r.ts): r for r in [*on_time, *late]}

        # Restatement through an upsert: Lord Howe's long day doubles its energy.
        restated = [
            replace(r, energy_kwh=r.energy_kwh * 2, power_kw=r.power_kw + 1)
            for r in current.values()
            if r.device_id == "lordhowe" and date(2026, 4, 4) <= r.ts.date() <= date(2026, 4, 5)
        ]
        await restate(conn, restated, 250)
        current.update({(r.device_id, r.ts): r for r in restated})

        # Restatement by UPDATE, moving readings across buckets and days (ts changes).
        # 22:50 and 22:55 UTC move to 23:02:30 and 23:07:30: another bucket and hour, the same
        # UTC day (TimescaleDB cannot move a row into another chunk; chunks are UTC days).
        shift = timedelta(minutes=12, seconds=30)
        since = datetime(2026, 4, 2, 22, 50, tzinfo=UTC)
        until = datetime(2026, 4, 2, 23, tzinfo=UTC)
        await conn.execute(
            "UPDATE readings SET ts = ts + $3::interval, energy_kwh = 0.5"
            " WHERE device_id = 'utc' AND ts >= $1 AND ts < $2",
            since,
            until,
            shift,
        )
        moved = [r for r in current.values() if r.device_id == "utc" and since <= r.ts < until]
        assert len(moved) == 2
        for r in moved:
            del current[r.device_id, r.ts]
            current[r.device_id, r.ts + shift] = replace(r, ts=r.ts + shift, energy_kwh=0.5)

        # Deletions: a whole Chatham hour (its 15-minute and hourly rows must go) and one
        # Kolkata reading.
        hour = datetime(2026, 4, 3, 10, tzinfo=UTC)
        await conn.execute(
            "DELETE FROM readings WHERE device_id = 'chatham' AND ts >= $1 AND ts < $2",
            hour,
            hour + timedelta(hours=1),
        )
        await conn.execute(
            "DELETE FROM readings WHERE device_id = 'kolkata' AND ts = $1",
            datetime(2026, 3, 31, 12, 0, 30, tzinfo=UTC),
        )
        for key in [
            k for k in current if k[0] == "chatham" and hour <= k[1] < hour + timedelta(hours=1)
        ]:
            del current[key]
        del current["kolkata", datetime(2026, 3, 31, 12, 0, 30, tzinfo=UTC)]

        await settle_rollups(conn)
        got = await stored(conn)
        assert_parity(got, current.values())
        assert ("chatham", hour) not in got["readings_hourly_utc"]

        # The DST days, independently of the oracle: hours and the day's first instant.
        days = got["daily_local"]
        assert days["berlin", date(2026, 3, 29)][5] == 23
        assert days["sydney", date(2026, 4, 5)][5] == 25
        assert days["lordhowe", date(2026, 4, 5)][5] == 24.5
        assert days["chatham", date(2026, 4, 5)][5] == 25
        assert days["kolkata", date(2026, 4, 1)][5] == 24
        assert days["kathmandu", date(2026, 3, 30)][1] == datetime(2026, 3, 29, 18, 15, tzinfo=UTC)
        # A local day sums exactly its readings: all of Berlin's 23-hour day, at 5-minute steps.
        assert days["berlin", date(2026, 3, 29)][4] == 23 * 12

        # What the API asks: one device's days and hours in a range, from the indexed relations.
        daily = await conn.fetch(
            "SELECT local_date, energy_kwh FROM daily_local"
            " WHERE device_id = $1 AND local_date BETWEEN $2 AND $3 ORDER BY local_date",
            "lordhowe",
            date(2026, 4, 3),
            date(2026, 4, 6),
        )
        assert [r["local_date"] for r in daily] == [date(2026, 4, d) for d in range(3, 7)]
        hourly = await conn.fetch(
            "SELECT bucket FROM readings_hourly_utc WHERE device_id = $1"
            " AND bucket >= $2 AND bucket < $3 ORDER BY bucket",
            "sydney",
            datetime(2026, 4, 1, tzinfo=UTC),
            datetime(2026, 4, 1, 12, tzinfo=UTC),
        )
        # The gap (03:00-06:20 UTC) leaves no hours 03, 04 and 05.
        assert [r["bucket"].hour for r in hourly] == [0, 1, 2, 6, 7, 8, 9, 10, 11]
    finally:
        await conn.close()
