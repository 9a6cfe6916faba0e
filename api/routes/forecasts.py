"""``GET /api/v1/devices/{device_id}/forecasts``: next-hour forecasts beside the actuals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api import queries, timerange
from api.deps import AllowedDevice, Deps
from api.errors import NotFound
from api.models import ForecastOut, ForecastsPage
from api.params import End, Start
from api.responses import answers
from api.routes.devices import localise, zone_or_utc

router = APIRouter(prefix="/api/v1", tags=["forecasts"], responses=answers(422))

WINDOW = timedelta(hours=24)
AHEAD = timedelta(hours=2)
"""The default range ends this far after now, so it holds the next hour's forecast."""


def _forecast(row: dict[str, Any], zone: Any) -> ForecastOut:
    local = localise(row, zone)
    return ForecastOut(**{k: v for k, v in local.items() if k != "closed_hour_end"})


@router.get("/devices/{device_id}/forecasts", response_model=ForecastsPage, responses=answers(404))
async def device_forecasts(
    deps: Deps,
    device_id: AllowedDevice,
    start: Start = None,
    end: End = None,
    model_id: Annotated[
        str | None, Query(max_length=128, description="Only this model's forecasts")
    ] = None,
) -> ForecastsPage:
    """Forecasts whose target hour starts in ``[start, end)`` (default: the last 24 hours and
    the next two), each with the energy the hour actually had once it closed (``actual_kwh``)
    and the seasonal-naive baseline; ``latest`` is the forecast of the latest hour."""
    now = datetime.now(UTC)
    if end is None:
        end = now + AHEAD
    start, end = timerange.resolve_range(start, end, now=now, window=WINDOW + AHEAD)
    timerange.check_range(start, end, deps.settings.max_hourly_range)
    async with deps.pool.acquire() as conn:
        tz = await queries.device_zone(conn, device_id)
        if tz is None:
            raise NotFound(f"no device {device_id!r}")
        rows = await queries.forecasts_in_range(
            conn, device_id, start=start, end=end, model_id=model_id, limit=deps.settings.max_rows
        )
        latest = await queries.latest_forecast(conn, device_id, model_id)
    zone = zone_or_utc(tz)
    return ForecastsPage(
        device_id=device_id,
        tz=tz,
        start=start.astimezone(zone),
        end=end.astimezone(zone),
        items=[_forecast(row, zone) for row in rows],
        latest=_forecast(latest, zone) if latest else None,
    )
