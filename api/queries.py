"""SQL the API runs; every function takes a connection and returns plain rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

READINGS_IN_RANGE = """
SELECT device_id, ts, seq, tz, interval_s, energy_kwh, power_kw
FROM readings
WHERE device_id = $1 AND ts >= $2 AND ts < $3
ORDER BY ts
LIMIT $4
"""


async def readings_in_range(
    conn: asyncpg.Connection, device_id: str, start: datetime, end: datetime, limit: int
) -> list[dict[str, Any]]:
    rows = await conn.fetch(READINGS_IN_RANGE, device_id, start, end, limit)
    return [dict(row) for row in rows]
