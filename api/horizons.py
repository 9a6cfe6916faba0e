"""Queries of multi-horizon forecasts and of the ``models`` table.

A forecast is stored as one ``forecast_trajectories`` row (its targets as arrays); the view
``forecast_horizons`` reads it one row per target. Which issue to answer is looked up in the
table, its targets in the view.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import asyncpg

Row = dict[str, Any]

LATEST_ISSUE = """
SELECT issue_time, model_id, issued_at FROM forecast_trajectories
WHERE device_id = $1 AND horizon = $2 AND ($3::text IS NULL OR model_id = $3)
  AND ($4::timestamptz IS NULL OR issue_time <= $4)
ORDER BY issue_time DESC, issued_at DESC
LIMIT 1
"""

TARGETS = """
SELECT f.step, f.target_start, f.target_end, f.local_date, f.local_hour,
       f.p10_kwh, f.p50_kwh, f.p90_kwh,
       CASE WHEN f.horizon = '24h' THEN h.energy_kwh ELSE d.energy_kwh END AS actual_kwh
FROM forecast_horizons AS f
LEFT JOIN hourly AS h
  ON f.horizon = '24h' AND h.device_id = f.device_id AND h.hour_start = f.target_start
LEFT JOIN daily_local AS d
  ON f.horizon = '7d' AND d.device_id = f.device_id AND d.local_date = f.local_date
WHERE f.device_id = $1 AND f.horizon = $2 AND f.issue_time = $3 AND f.model_id = $4
ORDER BY f.step
"""

ACTIVE_MODEL = "SELECT model_id FROM models WHERE active"

# Each device's latest issue (of one model) near the fleet's newest, summed per target period.
FLEET = """
WITH newest AS (
    SELECT max(issue_time) AS at FROM forecast_trajectories
    WHERE horizon = $1 AND ($2::text IS NULL OR model_id = $2)
),
latest AS (
    SELECT f.device_id, max(f.issue_time) AS issue_time
    FROM forecast_trajectories AS f, newest
    WHERE f.horizon = $1 AND ($2::text IS NULL OR f.model_id = $2)
      AND f.issue_time > newest.at - $3::interval
    GROUP BY f.device_id
),
rows AS (
    SELECT DISTINCT ON (f.device_id, f.target_start) f.*
    FROM forecast_horizons AS f JOIN latest USING (device_id, issue_time)
    WHERE f.horizon = $1 AND ($2::text IS NULL OR f.model_id = $2)
    ORDER BY f.device_id, f.target_start, f.issued_at DESC
)
SELECT CASE WHEN $1 = '24h' THEN date_trunc('hour', target_start) END AS bucket,
       CASE WHEN $1 = '7d' THEN local_date END AS local_date,
       count(DISTINCT device_id) AS devices,
       sum(p10_kwh) AS p10_kwh, sum(p50_kwh) AS p50_kwh, sum(p90_kwh) AS p90_kwh,
       min(issue_time) AS issued_from, max(issue_time) AS issued_until
FROM rows
GROUP BY 1, 2
ORDER BY 1, 2
"""

MODELS = """
SELECT model_id, active, activated_at, created_at, metrics FROM models
ORDER BY created_at DESC, model_id
"""

MODEL = """
SELECT model_id, active, activated_at, created_at, metrics, card FROM models
WHERE model_id = $1
"""


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def latest_issue(
    conn: asyncpg.Connection,
    device_id: str,
    horizon: str,
    model_id: str | None,
    issued_before: datetime | None,
) -> Row | None:
    row = await conn.fetchrow(LATEST_ISSUE, device_id, horizon, model_id, issued_before)
    return dict(row) if row is not None else None


async def targets(
    conn: asyncpg.Connection, device_id: str, horizon: str, issue_time: datetime, model_id: str
) -> list[Row]:
    rows = await conn.fetch(TARGETS, device_id, horizon, issue_time, model_id)
    return [dict(row) for row in rows]


async def active_model(conn: asyncpg.Connection) -> str | None:
    value = await conn.fetchval(ACTIVE_MODEL)
    return None if value is None else str(value)


async def fleet(
    conn: asyncpg.Connection, horizon: str, model_id: str | None, window: timedelta
) -> list[Row]:
    return [dict(row) for row in await conn.fetch(FLEET, horizon, model_id, window)]


async def models(conn: asyncpg.Connection) -> list[Row]:
    return [{**row, "metrics": _json(row["metrics"])} for row in await conn.fetch(MODELS)]


async def model(conn: asyncpg.Connection, model_id: str) -> Row | None:
    row = await conn.fetchrow(MODEL, model_id)
    if row is None:
        return None
    return {**row, "metrics": _json(row["metrics"]), "card": _json(row["card"])}


# Forecasts paired with the actuals of their targets: next hour, 24 hours ahead (the last hour
# of each trajectory) and 7 days ahead (the last day of each 7-day forecast). The bounds on
# issue_time (a target starts less than 2 or 8 days after its issue) let the table's key find a
# device's trajectories before the view unnests them.
ACCURACY = """
WITH pairs AS (
    SELECT '1h' AS horizon, f.predicted_kwh AS predicted, h.energy_kwh AS actual,
           NULL::double precision AS p10, NULL::double precision AS p90
    FROM forecasts AS f
    JOIN hourly AS h ON h.device_id = f.device_id AND h.hour_start = f.hour_start
    WHERE f.device_id = $1 AND f.hour_start >= $2 AND f.hour_start < $3
      AND ($4::text IS NULL OR f.model_id = $4)
    UNION ALL
    SELECT '24h', fh.p50_kwh, h.energy_kwh, fh.p10_kwh, fh.p90_kwh
    FROM forecast_horizons AS fh
    JOIN hourly AS h ON h.device_id = fh.device_id AND h.hour_start = fh.target_start
    WHERE fh.device_id = $1 AND fh.horizon = '24h' AND fh.step = 24
      AND fh.target_start >= $2 AND fh.target_start < $3
      AND fh.issue_time > $2 - INTERVAL '2 days' AND fh.issue_time < $3
      AND ($4::text IS NULL OR fh.model_id = $4)
    UNION ALL
    SELECT '7d', fh.p50_kwh, d.energy_kwh, fh.p10_kwh, fh.p90_kwh
    FROM forecast_horizons AS fh
    JOIN daily_local AS d ON d.device_id = fh.device_id AND d.local_date = fh.local_date
    WHERE fh.device_id = $1 AND fh.horizon = '7d' AND fh.step = 7
      AND fh.target_start >= $2 AND fh.target_start < $3 AND fh.target_end <= $5
      AND fh.issue_time > $2 - INTERVAL '8 days' AND fh.issue_time < $3
      AND ($4::text IS NULL OR fh.model_id = $4)
)
SELECT horizon, count(*) AS n,
       sqrt(avg((predicted - actual) ^ 2)) AS rmse_kwh,
       avg(abs(predicted - actual)) AS mae_kwh,
       avg(predicted - actual) AS bias_kwh,
       avg(CASE WHEN p10 IS NULL THEN NULL
                WHEN actual BETWEEN p10 AND p90 THEN 1.0 ELSE 0.0 END) AS coverage_p10_p90
FROM pairs
GROUP BY horizon
"""


async def accuracy(
    conn: asyncpg.Connection,
    device_id: str,
    *,
    start: datetime,
    end: datetime,
    model_id: str | None,
    now: datetime,
) -> dict[str, Row]:
    """Error of each horizon's forecasts whose targets lie in ``[start, end)``, by horizon
    (a 7-day target counts once its local day is over)."""
    rows = await conn.fetch(ACCURACY, device_id, start, end, model_id, now)
    return {row["horizon"]: dict(row) for row in rows}


HORIZONS = ("1h", "24h", "7d")
NO_PAIRS: Row = {
    "n": 0,
    "rmse_kwh": None,
    "mae_kwh": None,
    "bias_kwh": None,
    "coverage_p10_p90": None,
}


def per_horizon(found: dict[str, Row]) -> list[Row]:
    """One row per horizon, in :data:`HORIZONS` order; no pairs yet: ``n = 0`` and ``None``s."""
    return [{**NO_PAIRS, **found.get(name, {}), "horizon": name} for name in HORIZONS]


HEALTH_WINDOWS = {"1h": timedelta(hours=24), "24h": timedelta(hours=24), "7d": timedelta(days=14)}
"""The trailing window of each horizon's rolling error next to a device's health: the next-hour
health's 24 hours for the hourly targets; 14 days for the daily ones (one target a day)."""


async def rolling_health(conn: asyncpg.Connection, device_id: str, now: datetime) -> list[Row]:
    """Each horizon's error over its trailing window (:data:`HEALTH_WINDOWS`) up to ``now``,
    with the window's bounds, any model."""
    found: dict[str, Row] = {}
    for window in sorted(set(HEALTH_WINDOWS.values())):
        start = now - window
        rows = await accuracy(conn, device_id, start=start, end=now, model_id=None, now=now)
        for name, span in HEALTH_WINDOWS.items():
            if span == window:
                found[name] = {**rows.get(name, {}), "window_start": start, "window_end": now}
    return per_horizon(found)
