"""SQL the API runs; every function takes a connection and returns plain rows (dicts).

Devices are known from any of three places: a birth message (``devices``), a status message
(``device_status``) or readings alone. The distinct device ids of ``readings`` are found by a
loose index scan on its primary key (one index probe per device, not a scan of the table).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from api.aggregation import QuarterRow
from api.errors import NotFound
from schema.results import HealthFigures

Row = dict[str, Any]

READINGS_IN_RANGE = """
SELECT device_id, ts, seq, tz, interval_s, energy_kwh, power_kw
FROM readings
WHERE device_id = $1 AND ts >= $2 AND ts < $3
ORDER BY ts
LIMIT $4
"""


async def readings_in_range(
    conn: asyncpg.Connection, device_id: str, start: datetime, end: datetime, limit: int
) -> list[Row]:
    rows = await conn.fetch(READINGS_IN_RANGE, device_id, start, end, limit)
    return [dict(row) for row in rows]


DEVICE_ZONE = """
SELECT tz FROM (
    (SELECT tz, 0 AS rank FROM devices WHERE device_id = $1)
    UNION ALL
    (SELECT tz, 1 AS rank FROM readings WHERE device_id = $1 ORDER BY ts DESC LIMIT 1)
) AS zones
ORDER BY rank
LIMIT 1
"""


async def device_zone(conn: asyncpg.Connection, device_id: str) -> str | None:
    """The device's IANA zone (birth message, else latest reading); ``None``: unknown device."""
    tz: str | None = await conn.fetchval(DEVICE_ZONE, device_id)
    return tz


async def known_device_zone(conn: asyncpg.Connection, device_id: str) -> str:
    """The device's zone, as :func:`device_zone`; :class:`~api.errors.NotFound` (a 404) for a
    device that has sent no birth and no reading. Every per-device route that needs the device
    to exist asks this."""
    tz = await device_zone(conn, device_id)
    if tz is None:
        raise NotFound(f"no device {device_id!r}")
    return tz


def _allowed(column: str, ids: int) -> str:
    """``column`` within a key's devices: the ids in parameter ``ids`` or a ``LIKE`` pattern
    in the next one; both ``NULL``: every device (:meth:`api.access.Grant.sql_filter`)."""
    return (
        f"(${ids}::text[] IS NULL OR {column} = ANY(${ids}::text[])"
        f" OR {column} LIKE ANY(${ids + 1}::text[]))"
    )


# Ids after $1 from readings (loose index scan), devices and device_status, within the key's
# devices ($3, $4); at most $2. The loose scan walks every device id after $1 until $2 are
# allowed (one index probe per device, never another device's readings).
_DEVICE_IDS = """
WITH RECURSIVE seen(device_id) AS (
    (SELECT device_id FROM readings WHERE device_id > $1 ORDER BY device_id LIMIT 1)
    UNION ALL
    SELECT (SELECT r.device_id FROM readings AS r
            WHERE r.device_id > seen.device_id ORDER BY r.device_id LIMIT 1)
    FROM seen WHERE seen.device_id IS NOT NULL
),
ids AS (
    (SELECT device_id FROM seen WHERE device_id IS NOT NULL AND {allowed} LIMIT $2)
    UNION
    (SELECT device_id FROM devices WHERE device_id > $1 AND {allowed}
     ORDER BY device_id LIMIT $2)
    UNION
    (SELECT device_id FROM device_status WHERE device_id > $1 AND {allowed}
     ORDER BY device_id LIMIT $2)
),
page AS (SELECT device_id FROM ids ORDER BY device_id LIMIT $2)
""".format(allowed=_allowed("device_id", 3))  # noqa: S608 - a constant predicate

_DEVICE_COLUMNS = """
SELECT page.device_id,
       d.kind, coalesce(d.tz, last_reading.tz) AS tz, d.location_name, d.latitude, d.longitude,
       d.nominal_kw, d.firmware, d.interval_s, d.first_seen, d.updated_at,
       s.status, s.changed_at AS status_changed_at,
       greatest(s.last_seen, last_reading.ts) AS last_seen,
       last_reading.ts AS last_reading_at,
       h.status AS health
FROM page
LEFT JOIN devices AS d USING (device_id)
LEFT JOIN device_status AS s USING (device_id)
LEFT JOIN LATERAL (
    SELECT r.tz, r.ts FROM readings AS r
    WHERE r.device_id = page.device_id ORDER BY r.ts DESC LIMIT 1
) AS last_reading ON true
LEFT JOIN LATERAL (
    SELECT hl.status FROM health AS hl
    WHERE hl.device_id = page.device_id ORDER BY hl.hour_start DESC LIMIT 1
) AS h ON true
"""

DEVICES_PAGE = _DEVICE_IDS + _DEVICE_COLUMNS + "ORDER BY page.device_id"

DEVICE_ONE = (
    "WITH page AS (SELECT $1::text AS device_id)"
    + _DEVICE_COLUMNS
    + "WHERE d.device_id IS NOT NULL OR s.device_id IS NOT NULL OR last_reading.ts IS NOT NULL"
)


async def devices_page(
    conn: asyncpg.Connection,
    after: str,
    limit: int,
    within: tuple[list[str] | None, list[str] | None] = (None, None),
) -> list[Row]:
    """Devices after ``after``; ``within``: a key's ids and ``LIKE`` patterns (``None``: all)."""
    return [dict(row) for row in await conn.fetch(DEVICES_PAGE, after, limit, *within)]


async def device(conn: asyncpg.Connection, device_id: str) -> Row | None:
    row = await conn.fetchrow(DEVICE_ONE, device_id)
    return dict(row) if row is not None else None


HEALTH_COLUMNS = ", ".join(HealthFigures.model_fields)
"""The health table's columns the API answers with: the health record's figures."""


async def latest_health(conn: asyncpg.Connection, device_id: str) -> Row | None:
    row = await conn.fetchrow(
        f"SELECT {HEALTH_COLUMNS} FROM health WHERE device_id = $1"  # noqa: S608 - constant columns
        " ORDER BY hour_start DESC LIMIT 1",
        device_id,
    )
    return dict(row) if row is not None else None


async def health_in_range(
    conn: asyncpg.Connection, device_id: str, start: datetime, end: datetime, limit: int
) -> list[Row]:
    rows = await conn.fetch(
        f"SELECT {HEALTH_COLUMNS} FROM health"  # noqa: S608 - constant columns
        " WHERE device_id = $1 AND hour_start >= $2 AND hour_start < $3"
        " ORDER BY hour_start LIMIT $4",
        device_id,
        start,
        end,
        limit,
    )
    return [dict(row) for row in rows]


QUARTERS = f"""
SELECT {", ".join(QuarterRow._fields)}
FROM readings_15m
WHERE device_id = $1 AND bucket >= $2 AND bucket < $3
ORDER BY bucket
"""  # noqa: S608 - constant columns (QuarterRow's fields)


async def quarters(
    conn: asyncpg.Connection, device_id: str, start: datetime, end: datetime
) -> list[QuarterRow]:
    """The rollup rows, each record straight into a tuple (its columns are the fields)."""
    make = QuarterRow._make
    return [make(row) for row in await conn.fetch(QUARTERS, device_id, start, end)]


_FORECAST_COLUMNS = """
SELECT f.hour_start, f.hour_start + interval '1 hour' AS hour_end, f.model_id, f.predicted_kwh,
       f.baseline_kwh, f.based_on_hour, f.issued_at,
       h.energy_kwh AS actual_kwh, h.completeness, h.hour_end AS closed_hour_end
FROM forecasts AS f
LEFT JOIN hourly AS h ON h.device_id = f.device_id AND h.hour_start = f.hour_start
"""

FORECASTS_IN_RANGE = (
    _FORECAST_COLUMNS
    + """
WHERE f.device_id = $1 AND f.hour_start >= $2 AND f.hour_start < $3
  AND ($4::text IS NULL OR f.model_id = $4)
ORDER BY f.hour_start, f.model_id
LIMIT $5
"""
)

LATEST_FORECAST = (
    _FORECAST_COLUMNS
    + """
WHERE f.device_id = $1 AND ($2::text IS NULL OR f.model_id = $2)
ORDER BY f.hour_start DESC, f.issued_at DESC
LIMIT 1
"""
)


async def forecasts_in_range(
    conn: asyncpg.Connection,
    device_id: str,
    *,
    start: datetime,
    end: datetime,
    model_id: str | None,
    limit: int,
) -> list[Row]:
    rows = await conn.fetch(FORECASTS_IN_RANGE, device_id, start, end, model_id, limit)
    return [dict(row) for row in rows]


async def latest_forecast(
    conn: asyncpg.Connection, device_id: str, model_id: str | None
) -> Row | None:
    row = await conn.fetchrow(LATEST_FORECAST, device_id, model_id)
    return dict(row) if row is not None else None


FLEET_COUNTS = """
WITH RECURSIVE seen(device_id) AS (
    (SELECT device_id FROM readings ORDER BY device_id LIMIT 1)
    UNION ALL
    SELECT (SELECT r.device_id FROM readings AS r
            WHERE r.device_id > seen.device_id ORDER BY r.device_id LIMIT 1)
    FROM seen WHERE seen.device_id IS NOT NULL
),
ids AS (
    SELECT device_id FROM seen WHERE device_id IS NOT NULL
    UNION SELECT device_id FROM devices
    UNION SELECT device_id FROM device_status
)
SELECT count(*) AS devices,
       count(*) FILTER (WHERE s.status = 'online') AS online,
       count(*) FILTER (WHERE s.status = 'offline') AS offline,
       count(*) FILTER (WHERE h.status = 'green') AS green,
       count(*) FILTER (WHERE h.status = 'amber') AS amber,
       count(*) FILTER (WHERE h.status = 'red') AS red
FROM ids
LEFT JOIN device_status AS s USING (device_id)
LEFT JOIN LATERAL (
    SELECT hl.status FROM health AS hl
    WHERE hl.device_id = ids.device_id ORDER BY hl.hour_start DESC LIMIT 1
) AS h ON true
"""

FLEET_HOUR_ENERGY = "SELECT energy_kwh FROM fleet_hourly WHERE bucket = $1"

# Latest forecast per device for the device-local hours that hold the instant $1.
FORECAST_AT = """
SELECT sum(predicted_kwh) FROM (
    SELECT DISTINCT ON (device_id) predicted_kwh
    FROM forecasts
    WHERE hour_start <= $1 AND hour_start > $1 - interval '1 hour'
    ORDER BY device_id, issued_at DESC
) AS latest
"""

LAST_CLOSED_HOUR = "SELECT max(hour_start) FROM hourly WHERE hour_end <= $1"

# Device-local hours that started in [$1, $2): actual beside the latest forecast of each.
ACTUAL_VS_FORECAST = """
SELECT sum(h.energy_kwh) AS actual_kwh, sum(f.predicted_kwh) AS forecast_kwh,
       count(*) AS device_hours
FROM hourly AS h
JOIN LATERAL (
    SELECT fc.predicted_kwh FROM forecasts AS fc
    WHERE fc.device_id = h.device_id AND fc.hour_start = h.hour_start
    ORDER BY fc.issued_at DESC LIMIT 1
) AS f ON true
WHERE h.hour_start >= $1 AND h.hour_start < $2
"""


async def fleet_counts(conn: asyncpg.Connection) -> Row:
    row = await conn.fetchrow(FLEET_COUNTS)
    assert row is not None  # an aggregate always returns a row
    return dict(row)


ALERT_STATE = """CASE WHEN a.resolved_hour IS NOT NULL THEN 'resolved'
     WHEN a.acknowledged_at IS NOT NULL THEN 'acknowledged' ELSE 'open' END"""
"""An alert's state: resolved once its condition cleared or a person resolved it, else
acknowledged once a person did."""

_ALERT_COLUMNS = f"""
SELECT a.alert_id, a.device_id, a.kind, a.hour_start, a.last_hour_start, a.hours, a.severity,
       a.residual_kwh, a.sigma, a.z, a.message, a.raised_at, a.updated_at, a.resolved_hour,
       a.resolved_at, a.acknowledged_at, a.acknowledged_by, a.note, a.resolved_by,
       a.resolution_note, {ALERT_STATE} AS state, coalesce(d.tz, 'UTC') AS tz
FROM alerts AS a LEFT JOIN devices AS d USING (device_id)
"""  # noqa: S608 - constant fragments, no input

ALERTS_PAGE = (
    _ALERT_COLUMNS
    + f"""
WHERE ($1::text IS NULL OR a.device_id = $1)
  AND ($2::text IS NULL OR a.severity = $2)
  AND ($3::timestamptz IS NULL OR a.hour_start >= $3)
  AND ($4::timestamptz IS NULL OR a.hour_start < $4)
  AND ($5::timestamptz IS NULL OR (a.raised_at, a.device_id, a.hour_start, a.kind)
                                    < ($5, $6::text, $7::timestamptz, $8::text))
  AND ($9::text IS NULL OR a.kind = $9)
  AND ($10::text[] IS NULL OR {ALERT_STATE} = ANY($10))
  AND {_allowed("a.device_id", 12)}
ORDER BY a.raised_at DESC, a.device_id DESC, a.hour_start DESC, a.kind DESC
LIMIT $11
"""
)

ALERT_BY_ID = _ALERT_COLUMNS + "WHERE a.alert_id = $1"

# The first acknowledgement wins: acknowledging again (a retry) changes nothing.
ACKNOWLEDGE_ALERT = """
UPDATE alerts SET acknowledged_at = now(), acknowledged_by = $2, note = $3
WHERE alert_id = $1 AND acknowledged_at IS NULL
"""


# A person resolves an open alert as of the end of the last hour its condition held. The
# worker never writes a row with resolved_by set again (stream/worker/statements.py).
RESOLVE_ALERT = """
UPDATE alerts SET resolved_hour = last_hour_start + interval '1 hour', resolved_at = now(),
                  updated_at = now(), resolved_by = $2, resolution_note = $3
WHERE alert_id = $1 AND resolved_hour IS NULL
RETURNING alert_id
"""


# Scoring (api.alertscore): the alerts whose hours overlap [$1, $2), the labels of the anomalies
# injected in it, both within the key's devices ($3, $4).
QUALITY_ALERTS = f"""
SELECT device_id, kind, hour_start, last_hour_start, resolved_hour FROM alerts
WHERE hour_start < $2 AND coalesce(resolved_hour, last_hour_start + interval '1 hour') > $1
  AND {_allowed("device_id", 3)}
"""  # noqa: S608 - constant fragments, no input
QUALITY_LABELS = f"""
SELECT label_id, device_id, anomaly, start, "end", first_seq, magnitude, nominal_kw, source,
       command_id
FROM anomaly_labels WHERE start < $2 AND "end" > $1 AND {_allowed("device_id", 3)}
"""  # noqa: S608 - constant fragments, no input


async def alerts_page(
    conn: asyncpg.Connection,
    *,
    device_id: str | None,
    severity: str | None,
    start: datetime | None,
    end: datetime | None,
    after: tuple[datetime, str, datetime, str] | None,
    limit: int,
    kind: str | None = None,
    states: list[str] | None = None,
    within: tuple[list[str] | None, list[str] | None] = (None, None),
) -> list[Row]:
    key = after or (None, None, None, None)
    rows = await conn.fetch(
        ALERTS_PAGE, device_id, severity, start, end, *key, kind, states, limit, *within
    )
    return [dict(row) for row in rows]


async def alert_device(conn: asyncpg.Connection, alert_id: str) -> str | None:
    """The device an alert is about, or ``None`` if there is no such alert."""
    device_id: str | None = await conn.fetchval(
        "SELECT device_id FROM alerts WHERE alert_id = $1", alert_id
    )
    return device_id


async def acknowledge_alert(
    conn: asyncpg.Connection, alert_id: str, by: str, note: str | None
) -> Row | None:
    """Acknowledge the alert (unless it already was); the alert as it is now, or ``None``."""
    await conn.execute(ACKNOWLEDGE_ALERT, alert_id, by, note)
    row = await conn.fetchrow(ALERT_BY_ID, alert_id)
    return None if row is None else dict(row)


async def resolve_alert(
    conn: asyncpg.Connection, alert_id: str, by: str, note: str | None
) -> tuple[bool, Row | None]:
    """Resolve the alert unless it already is: (whether this call resolved it, the alert as it
    is now or ``None`` if there is no such alert)."""
    resolved = await conn.fetchval(RESOLVE_ALERT, alert_id, by, note) is not None
    row = await conn.fetchrow(ALERT_BY_ID, alert_id)
    return resolved, None if row is None else dict(row)


async def quality_rows(
    conn: asyncpg.Connection,
    start: datetime,
    end: datetime,
    within: tuple[list[str] | None, list[str] | None],
) -> tuple[list[Row], list[Row]]:
    """(alerts, labels) of ``[start, end)`` for scoring, within the key's devices."""
    alerts = await conn.fetch(QUALITY_ALERTS, start, end, *within)
    labels = await conn.fetch(QUALITY_LABELS, start, end, *within)
    return [dict(r) for r in alerts], [dict(r) for r in labels]


async def activate_model(conn: asyncpg.Connection, model_id: str) -> Row | None:
    """Make ``model_id`` the only active model, in one transaction; ``None`` if unknown.

    The table lock serialises concurrent activations, so the partial unique index on
    ``active`` never sees two active rows, and a reader sees the old or the new model, never
    none.
    """
    async with conn.transaction():
        await conn.execute("LOCK TABLE models IN SHARE ROW EXCLUSIVE MODE")
        exists = await conn.fetchval("SELECT true FROM models WHERE model_id = $1", model_id)
        if not exists:
            return None
        await conn.execute(
            "UPDATE models SET active = false WHERE active AND model_id <> $1", model_id
        )
        row = await conn.fetchrow(
            "UPDATE models SET active = true,"
            " activated_at = CASE WHEN active THEN activated_at ELSE now() END"
            " WHERE model_id = $1"
            " RETURNING model_id, active, activated_at, created_at, metrics",
            model_id,
        )
    return dict(row) if row is not None else None
