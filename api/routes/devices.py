"""The fleet's devices: list (cursor-paginated), one device, its health history."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Query

from api import horizons, pagination, queries, timerange
from api.deps import AllowedDevice, Caller, Deps
from api.errors import NotFound
from api.models import (
    DeviceDetail,
    DevicesPage,
    DeviceSummary,
    HealthOut,
    HealthPage,
    HorizonHealth,
)
from api.params import Cursor, End, Start
from api.responses import answers

router = APIRouter(prefix="/api/v1", tags=["devices"], responses=answers(422))

HEALTH_WINDOW = timedelta(hours=24)


def zone_or_utc(name: str | None) -> ZoneInfo:
    """The device's zone for display; UTC when it is unknown or not a valid zone name."""
    if name:
        with contextlib.suppress(ZoneInfoNotFoundError, ValueError):
            return ZoneInfo(name)
    return ZoneInfo("UTC")


def localise(row: dict[str, Any], zone: ZoneInfo) -> dict[str, Any]:
    """Every datetime in ``row`` shown with ``zone``'s offset at its instant."""
    return {k: v.astimezone(zone) if isinstance(v, datetime) else v for k, v in row.items()}


SUMMARY_FIELDS = frozenset(DeviceSummary.model_fields)


def summary(row: dict[str, Any]) -> DeviceSummary:
    local = localise(row, zone_or_utc(row["tz"]))
    return DeviceSummary(**{k: v for k, v in local.items() if k in SUMMARY_FIELDS})


@router.get("/devices", response_model=DevicesPage)
async def list_devices(
    deps: Deps,
    caller: Caller,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size")] = 100,
    cursor: Cursor = None,
) -> DevicesPage:
    """Every known device (within the key's devices) with its presence, last-seen time and
    latest health status, in device-id order, one page at a time."""
    limit = min(limit, deps.settings.page_size_max)
    after = pagination.decode("devices", cursor, 1)[0] if cursor else ""
    if not isinstance(after, str):
        after = str(after)
    async with deps.pool.acquire() as conn:
        within = caller.sql_filter() if caller else (None, None)
        rows = await queries.devices_page(conn, after, limit + 1, within)
    more = len(rows) > limit
    rows = rows[:limit]
    return DevicesPage(
        items=[summary(row) for row in rows],
        next_cursor=pagination.encode("devices", [rows[-1]["device_id"]]) if more else None,
    )


@router.get("/devices/{device_id}", response_model=DeviceDetail, responses=answers(404))
async def get_device(deps: Deps, device_id: AllowedDevice) -> DeviceDetail:
    """Metadata (from the birth message), presence, last seen, and the latest health row."""
    async with deps.pool.acquire() as conn:
        row = await queries.device(conn, device_id)
        if row is None:
            raise NotFound(f"no device {device_id!r}")
        health = await queries.latest_health(conn, device_id)
    zone = zone_or_utc(row["tz"])
    return DeviceDetail(
        **localise(row, zone),
        latest_health=HealthOut(**localise(health, zone)) if health else None,
    )


@router.get("/devices/{device_id}/health", response_model=HealthPage, responses=answers(404))
async def device_health(
    deps: Deps, device_id: AllowedDevice, start: Start = None, end: End = None
) -> HealthPage:
    """The latest health row and the hourly history in ``[start, end)`` (default: 24 hours):
    forecast accuracy over the trailing 24 hours against the seasonal-naive baseline, and data
    quality (completeness, gaps, late and duplicate readings); next to it, ``horizons``: the
    rolling error of the next-hour, 24-hour-ahead and 7-day-ahead forecasts up to now."""
    now = datetime.now(UTC)
    start, end = timerange.resolve_range(start, end, now=now, window=HEALTH_WINDOW)
    timerange.check_range(start, end, deps.settings.max_hourly_range)
    async with deps.pool.acquire() as conn:
        tz = await queries.known_device_zone(conn, device_id)
        latest = await queries.latest_health(conn, device_id)
        rows = await queries.health_in_range(conn, device_id, start, end, deps.settings.max_rows)
        rolling = await horizons.rolling_health(conn, device_id, now)
    zone = zone_or_utc(tz)
    return HealthPage(
        device_id=device_id,
        tz=tz,
        latest=HealthOut(**localise(latest, zone)) if latest else None,
        horizons=[HorizonHealth(**localise(row, zone)) for row in rolling],
        start=start.astimezone(zone),
        end=end.astimezone(zone),
        items=[HealthOut(**localise(row, zone)) for row in rows],
    )
