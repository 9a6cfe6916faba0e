"""TimescaleDB mode: settle the continuous aggregates right after the sink commits readings.

Below its watermark a continuous aggregate serves what its last refresh materialized, so a
late, backfilled or restated reading there is invisible until something refreshes the range.
``wattstream_settle_rollups()`` (migration 0005) refreshes the three aggregates in order, over
their whole history up to each open bucket; TimescaleDB recomputes only the ranges that writes
invalidated. A job runs it every 30 seconds; the worker runs it as soon as a committed batch
held a reading before the open 15-minute bucket, so its own readings are visible within one
settle (typically well under a second) of the commit. Readings in the open bucket need
nothing: real-time aggregation serves everything above the watermark.

Requests coalesce: one call runs at a time, and any number of commits during it lead to one
more call. A failed call is logged and retried with jittered backoff; it never fails a write.
In plain-PostgreSQL mode the rollups are maintained by triggers and :meth:`RollupSettler.for_pool`
returns ``None``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self

import asyncpg

log = logging.getLogger(__name__)

SETTLE = "CALL wattstream_settle_rollups()"
MODE = "SELECT value FROM storage_info WHERE key = 'mode'"
BUCKET = timedelta(minutes=15)
"""The finest aggregate's bucket; its grid is aligned to the Unix epoch (and to 2000-01-03)."""
MAX_BACKOFF_S = 30.0


def open_bucket_start(now: datetime) -> datetime:
    """Start of the 15-minute bucket ``now`` lies in: never materialized, served live."""
    step = int(BUCKET.total_seconds())
    epoch = int(now.timestamp())
    return datetime.fromtimestamp(epoch - epoch % step, UTC)


def needs_settle(timestamps: Iterable[datetime], now: datetime) -> bool:
    """Whether any reading lies before the open bucket, where a refresh may be needed."""
    boundary = open_bucket_start(now)
    return any(ts < boundary for ts in timestamps)


class RollupSettler:
    """Calls ``wattstream_settle_rollups()`` in the background whenever readings ask for it."""

    def __init__(
        self, pool: asyncpg.Pool, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._pool = pool
        self._clock = clock
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self.settled = 0
        """Calls that completed (for tests and metrics)."""

    @classmethod
    async def for_pool(cls, pool: asyncpg.Pool) -> RollupSettler | None:
        """A settler when the database is in TimescaleDB mode, else ``None``."""
        mode = await pool.fetchval(MODE)
        return cls(pool) if mode == "timescaledb" else None

    def start(self) -> None:
        """Start the background task (once; a mode service calls this from ``on_start``)."""
        if self._started:
            raise RuntimeError("RollupSettler cannot be started twice")
        self._started = True
        self._task = asyncio.create_task(self._run(), name="rollup-settle")

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop settling (a call under way is cancelled); idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def readings_committed(self, timestamps: Iterable[datetime]) -> None:
        """Call after a transaction that stored readings with these timestamps committed."""
        if needs_settle(timestamps, self._clock()):
            self._wanted.set()

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            try:
                await self._pool.execute(SETTLE)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                delay = backoff * random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not crypto
                log.warning("settling the rollups failed (%s); retrying in %.1fs", exc, delay)
                self._wanted.set()
                await asyncio.sleep(delay)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
            else:
                backoff = 0.5
                self.settled += 1
                log.debug("rollups settled (%d)", self.settled)
