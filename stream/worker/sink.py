"""PostgreSQL sink: idempotent writes of readings, owned by a mode service Faust starts/stops.

Writes are ``INSERT ... ON CONFLICT DO NOTHING`` on the table's natural key, so a batch
redelivered after a crash (at-least-once) changes nothing. A failed write is retried with
jittered exponential backoff until it succeeds or the worker stops: the agent acknowledges a
batch to Kafka only after :meth:`ReadingSink.write` returns.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from typing import Any

import asyncpg
from mode import Service

from schema.wire import Reading

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0
INSERT_READINGS = """
INSERT INTO readings (device_id, ts, seq, tz, interval_s, energy_kwh, power_kw)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::bigint[], $4::text[], $5::int[],
                     $6::float8[], $7::float8[])
ON CONFLICT (device_id, ts) DO NOTHING
"""


class ReadingSink(Service):
    """Owns the asyncpg pool for the worker's lifetime."""

    def __init__(self, dsn: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._dsn = dsn
        self._pool: asyncpg.Pool | None = None
        self._ready = asyncio.Event()

    async def on_start(self) -> None:
        self._pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=4)
        self._ready.set()
        log.info("reading sink connected")

    async def on_stop(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def write(self, readings: Sequence[Reading]) -> int:
        """Store a batch (idempotently); return how many rows were new."""
        await self._ready.wait()
        columns = (
            [r.device_id for r in readings],
            [r.ts_utc for r in readings],
            [r.seq for r in readings],
            [r.tz for r in readings],
            [r.interval_s for r in readings],
            [r.energy.value for r in readings],
            [r.power.value for r in readings],
        )
        backoff = 0.5
        while True:
            assert self._pool is not None
            try:
                status: str = await self._pool.execute(INSERT_READINGS, *columns)
            except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
                delay = backoff * random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not crypto
                log.warning("sink write failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
            else:
                return int(status.rsplit(" ", 1)[-1])
