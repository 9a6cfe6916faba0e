"""Reads what the pipeline stored: readings per (device, seq), result rows per (device, hour).

Counts come from ``GROUP BY`` queries, not from the tables' keys, so a duplicate would be
seen even if a uniqueness constraint were missing.
"""

from __future__ import annotations

import asyncpg

from stream.audit.compare import HOUR_TABLES, StoredHour, StoredReading

READINGS = """
SELECT device_id, seq, count(*) AS rows, min(ts) AS ts, min(tz) AS tz
FROM readings GROUP BY device_id, seq
"""
HOURS = {
    table: f"SELECT device_id, hour_start, count(*) AS rows FROM {table} "  # noqa: S608 - constant names
    "GROUP BY device_id, hour_start"
    for table in HOUR_TABLES
}


async def stored_rows(
    dsn: str,
) -> tuple[list[StoredReading], dict[str, list[StoredHour]]]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            readings = [
                StoredReading(r["device_id"], r["seq"], r["ts"], r["tz"], r["rows"])
                for r in await conn.fetch(READINGS)
            ]
            hours = {
                table: [
                    StoredHour(r["device_id"], r["hour_start"], r["rows"])
                    for r in await conn.fetch(sql)
                ]
                for table, sql in HOURS.items()
            }
    finally:
        await conn.close()
    return readings, hours
