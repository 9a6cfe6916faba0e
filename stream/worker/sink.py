"""PostgreSQL/TimescaleDB sink: one transaction per batch, every write idempotent.

Raw readings go in by COPY into a session-local staging table, then ``INSERT ... SELECT ...
ON CONFLICT DO NOTHING`` (COPY itself cannot skip duplicates). Results are upserts keyed on
(device, hour[, model]); an hourly row is only replaced by one of the same or a newer revision,
so a replayed batch never undoes a restatement. A failed write is retried with jittered
exponential backoff until it succeeds or the worker stops: the agent acknowledges a batch to
Kafka only after :meth:`ResultSink.write` returned.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from mode import Service

from stream.worker.processor import SinkBatch
from stream.worker.rollup_settle import RollupSettler

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0
RETRIABLE = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)

STAGING = """
CREATE TEMP TABLE IF NOT EXISTS readings_staging
    (LIKE readings INCLUDING DEFAULTS) ON COMMIT DELETE ROWS
"""
READING_COLUMNS = ("device_id", "ts", "seq", "tz", "interval_s", "energy_kwh", "power_kw")
MERGE_READINGS = """
INSERT INTO readings (device_id, ts, seq, tz, interval_s, energy_kwh, power_kw)
SELECT device_id, ts, seq, tz, interval_s, energy_kwh, power_kw FROM readings_staging
ON CONFLICT (device_id, ts) DO NOTHING
"""


@dataclass(frozen=True, slots=True)
class Upsert:
    """``INSERT ... SELECT unnest(...) ON CONFLICT (key) DO UPDATE`` for one table."""

    table: str
    columns: tuple[tuple[str, str], ...]
    """(column, PostgreSQL type) in row order."""
    key: tuple[str, ...]
    where: str = ""
    """Condition under which an existing row is replaced (default: always)."""

    @property
    def sql(self) -> str:
        names = [name for name, _ in self.columns]
        arrays = ", ".join(f"${i}::{kind}[]" for i, (_, kind) in enumerate(self.columns, start=1))
        updates = ", ".join(f"{n} = EXCLUDED.{n}" for n in names if n not in self.key)
        where = f" WHERE {self.where}" if self.where else ""
        return (
            f"INSERT INTO {self.table} ({', '.join(names)}) SELECT * FROM unnest({arrays}) "
            f"ON CONFLICT ({', '.join(self.key)}) DO UPDATE SET {updates}{where}"
        )

    async def run(self, conn: asyncpg.Connection, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await conn.execute(self.sql, *(list(column) for column in zip(*rows, strict=True)))


HOURLY = Upsert(
    "hourly",
    (
        ("device_id", "text"),
        ("hour_start", "timestamptz"),
        ("hour_end", "timestamptz"),
        ("tz", "text"),
        ("local_date", "date"),
        ("local_hour", "smallint"),
        ("energy_kwh", "float8"),
        ("power_mean_kw", "float8"),
        ("power_min_kw", "float8"),
        ("power_max_kw", "float8"),
        ("reading_count", "int"),
        ("expected_count", "int"),
        ("completeness", "float8"),
        ("late_count", "int"),
        ("duplicate_count", "int"),
        ("first_ts", "timestamptz"),
        ("last_ts", "timestamptz"),
        ("revision", "int"),
        ("closed_at", "timestamptz"),
    ),
    key=("device_id", "hour_start"),
    where="EXCLUDED.revision >= hourly.revision",
)
FORECASTS = Upsert(
    "forecasts",
    (
        ("device_id", "text"),
        ("hour_start", "timestamptz"),
        ("model_id", "text"),
        ("predicted_kwh", "float8"),
        ("baseline_kwh", "float8"),
        ("based_on_hour", "timestamptz"),
        ("issued_at", "timestamptz"),
    ),
    key=("device_id", "hour_start", "model_id"),
)
HEALTH = Upsert(
    "health",
    (
        ("device_id", "text"),
        ("hour_start", "timestamptz"),
        ("rmse_24h", "float8"),
        ("mae_24h", "float8"),
        ("mape_24h", "float8"),
        ("bias_24h", "float8"),
        ("naive_rmse_24h", "float8"),
        ("rmse_ratio", "float8"),
        ("status", "text"),
        ("completeness_24h", "float8"),
        ("gaps_24h", "int"),
        ("late_24h", "int"),
        ("duplicates_24h", "int"),
        ("presence", "text"),
        ("last_seen", "timestamptz"),
        ("computed_at", "timestamptz"),
    ),
    key=("device_id", "hour_start"),
)
ALERTS = Upsert(
    "alerts",
    (
        ("device_id", "text"),
        ("hour_start", "timestamptz"),
        ("kind", "text"),
        ("severity", "text"),
        ("residual_kwh", "float8"),
        ("sigma", "float8"),
        ("z", "float8"),
        ("message", "text"),
        ("raised_at", "timestamptz"),
    ),
    key=("device_id", "hour_start", "kind"),
)
DEVICES = Upsert(
    "devices",
    (
        ("device_id", "text"),
        ("kind", "text"),
        ("tz", "text"),
        ("latitude", "float8"),
        ("longitude", "float8"),
        ("location_name", "text"),
        ("nominal_kw", "float8"),
        ("firmware", "text"),
        ("interval_s", "int"),
        ("first_seen", "timestamptz"),
        ("updated_at", "timestamptz"),
    ),
    key=("device_id",),
)
DEVICE_STATUS = Upsert(
    "device_status",
    (("device_id", "text"), ("status", "text"), ("changed_at", "timestamptz")),
    key=("device_id",),
    where="EXCLUDED.changed_at >= device_status.changed_at",
)


def _rows(batch: SinkBatch) -> list[tuple[Upsert, list[tuple[Any, ...]]]]:
    # Within one statement a key may appear only once: keep the last row per key.
    def last_by_key(upsert: Upsert, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        positions = [i for i, (name, _) in enumerate(upsert.columns) if name in upsert.key]
        return list({tuple(row[i] for i in positions): row for row in rows}.values())

    hourly = [
        (h.device_id, h.hour_start, h.hour_end, h.tz, h.local_date, h.local_hour, h.energy_kwh,
         h.power_mean_kw, h.power_min_kw, h.power_max_kw, h.reading_count, h.expected_count,
         h.completeness, h.late_count, h.duplicate_count, h.first_ts, h.last_ts, h.revision,
         h.closed_at)
        for h in batch.hourly
    ]  # fmt: skip
    forecasts = [
        (f.device_id, f.hour_start, f.model_id, f.predicted_kwh, f.baseline_kwh, f.based_on_hour,
         f.issued_at)
        for f in batch.forecasts
    ]  # fmt: skip
    health = [
        (h.device_id, h.hour_start, h.rmse_24h, h.mae_24h, h.mape_24h, h.bias_24h,
         h.naive_rmse_24h, h.rmse_ratio, h.status, h.completeness_24h, h.gaps_24h, h.late_24h,
         h.duplicates_24h, h.presence, h.last_seen, h.computed_at)
        for h in batch.health
    ]  # fmt: skip
    alerts = [
        (a.device_id, a.hour_start, a.alert_kind, a.severity, a.residual_kwh, a.sigma, a.z,
         a.message, a.raised_at)
        for a in batch.alerts
    ]  # fmt: skip
    devices = [
        (b.device_id, b.kind, b.tz, b.location.latitude, b.location.longitude, b.location.name,
         b.nominal_kw, b.firmware, b.interval_s, b.ts, b.ts)
        for b in batch.births
    ]  # fmt: skip
    statuses = [(s.device_id, s.status.value, at) for s, at in batch.statuses]
    pairs: list[tuple[Upsert, list[tuple[Any, ...]]]] = [
        (DEVICES, devices),
        (DEVICE_STATUS, statuses),
        (HOURLY, hourly),
        (FORECASTS, forecasts),
        (HEALTH, health),
        (ALERTS, alerts),
    ]
    return [(upsert, last_by_key(upsert, rows)) for upsert, rows in pairs]


OFFSETS = """
INSERT INTO stream_offsets (group_id, topic, partition, next_offset, updated_at)
SELECT $1, * FROM unnest($2::text[], $3::int[], $4::bigint[]), now()
ON CONFLICT (group_id, topic, partition) DO UPDATE
SET next_offset = GREATEST(stream_offsets.next_offset, EXCLUDED.next_offset),
    updated_at = EXCLUDED.updated_at
"""
STORED_OFFSETS = "SELECT topic, partition, next_offset FROM stream_offsets WHERE group_id = $1"


class ResultSink(Service):
    """Owns the asyncpg pool for the worker's lifetime (a mode service Faust starts/stops)."""

    def __init__(self, dsn: str, group_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._dsn = dsn
        self._group_id = group_id
        self._pool: asyncpg.Pool | None = None
        self._settler: RollupSettler | None = None
        self._ready = asyncio.Event()

    async def on_start(self) -> None:
        self._pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=4)
        self._settler = await RollupSettler.for_pool(self._pool)  # TimescaleDB mode only
        if self._settler is not None:
            self._settler.start()
        self._ready.set()
        log.info("result sink connected")

    async def on_stop(self) -> None:
        if self._settler is not None:
            await self._settler.aclose()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def stored_offsets(self) -> dict[tuple[str, int], int]:
        await self._ready.wait()
        assert self._pool is not None
        rows = await self._pool.fetch(STORED_OFFSETS, self._group_id)
        return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}

    async def write(self, batch: SinkBatch) -> None:
        await self._ready.wait()
        readings = [
            (r.device_id, r.ts_utc, r.seq, r.tz, r.interval_s, r.energy.value, r.power.value)
            for r in batch.readings
        ]
        upserts = _rows(batch)
        backoff = 0.5
        while True:
            assert self._pool is not None
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    if readings:
                        await conn.execute(STAGING)
                        await conn.copy_records_to_table(
                            "readings_staging", records=readings, columns=READING_COLUMNS
                        )
                        await conn.execute(MERGE_READINGS)
                    for upsert, rows in upserts:
                        await upsert.run(conn, rows)
                    if batch.offsets:
                        (topics, partitions), offsets = (
                            zip(*batch.offsets, strict=True),
                            list(batch.offsets.values()),
                        )
                        await conn.execute(
                            OFFSETS, self._group_id, list(topics), list(partitions), offsets
                        )
            except RETRIABLE as exc:
                delay = backoff * random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not crypto
                log.warning("sink write failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
            else:
                if self._settler is not None:
                    self._settler.readings_committed(r.ts_utc for r in batch.readings)
                return
