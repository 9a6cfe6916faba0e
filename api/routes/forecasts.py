"""Forecasts: a device's next hour beside the actuals (``horizon=1h``), its 24-hour hourly
trajectory (``24h``) or 7 local-day totals (``7d``) with P10-P90 intervals, and the fleet's."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from api import horizons, queries, timerange
from api.deps import AllowedDevice, Deps, FleetWide
from api.models import (
    FleetHorizonPage,
    FleetHorizonTarget,
    ForecastAccuracy,
    ForecastOut,
    ForecastsPage,
    HorizonAccuracy,
    HorizonPage,
    HorizonTarget,
    PeakOut,
)
from api.params import TEXT, End, Instant, Start
from api.responses import answers
from api.routes.devices import localise, zone_or_utc

router = APIRouter(prefix="/api/v1", tags=["forecasts"], responses=answers(422))

WINDOW = timedelta(hours=24)
AHEAD = timedelta(hours=2)
"""The default range ends this far after now, so it holds the next hour's forecast."""
ACCURACY_WINDOW = timedelta(days=14)
FLEET_SPREAD = {"24h": timedelta(hours=2), "7d": timedelta(days=1)}
"""A device's latest issue counts for the fleet if it is this close to the fleet's newest."""

HorizonParam = Annotated[
    Literal["1h", "24h", "7d"],
    Query(
        description="`1h`: next-hour forecasts beside the actuals; `24h`: the latest 24-hour "
        "hourly trajectory; `7d`: the latest 7 local-day totals (issued at local midnight)"
    ),
]
ModelParam = Annotated[
    str | None, Query(max_length=128, pattern=TEXT, description="Only this model's forecasts")
]
IssuedBefore = Annotated[
    Instant | None,
    Query(description="`24h`/`7d`: the latest issue at or before this instant (default: now)"),
]


def _forecast(row: dict[str, Any], zone: Any) -> ForecastOut:
    local = localise(row, zone)
    return ForecastOut(**{k: v for k, v in local.items() if k != "closed_hour_end"})


def _peak(items: list[HorizonTarget], issue_time: datetime, zone: Any) -> PeakOut | None:
    """The highest P50 among the targets on the local day after the issue hour's day."""
    day: date = (issue_time - timedelta(microseconds=1)).astimezone(zone).date()
    following = [i for i in items if i.local_date == day + timedelta(days=1)]
    if not following:
        return None
    best = max(following, key=lambda i: (i.p50_kwh, -i.step))
    assert best.local_hour is not None
    return PeakOut(
        local_date=best.local_date,
        target_start=best.target_start,
        local_hour=best.local_hour,
        p50_kwh=best.p50_kwh,
        covered_hours=len(following),
    )


@router.get(
    "/devices/{device_id}/forecasts",
    response_model=ForecastsPage | HorizonPage,
    responses=answers(404),
)
async def device_forecasts(
    deps: Deps,
    device_id: AllowedDevice,
    *,
    horizon: HorizonParam = "1h",
    start: Start = None,
    end: End = None,
    model_id: ModelParam = None,
    issued_before: IssuedBefore = None,
) -> ForecastsPage | HorizonPage:
    """``horizon=1h`` (default): forecasts whose target hour starts in ``[start, end)``
    (default: the last 24 hours and the next two), each with the energy the hour actually had
    once it closed (``actual_kwh``) and the seasonal-naive baseline; ``latest`` is the
    forecast of the latest hour. ``24h`` / ``7d``: the latest multi-horizon forecast (at or
    before ``issued_before``) with P10/P50/P90 per target, the actuals known so far and, for
    ``24h``, the predicted peak hour of the next local day."""
    if horizon != "1h":
        return await _horizon(deps, device_id, horizon, model_id, issued_before)
    now = datetime.now(UTC)
    if end is None:
        end = now + AHEAD
    start, end = timerange.resolve_range(start, end, now=now, window=WINDOW + AHEAD)
    timerange.check_range(start, end, deps.settings.max_hourly_range)
    async with deps.pool.acquire() as conn:
        tz = await queries.known_device_zone(conn, device_id)
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


async def _horizon(
    deps: Deps,
    device_id: str,
    horizon: Literal["24h", "7d"],
    model_id: str | None,
    issued_before: datetime | None,
) -> HorizonPage:
    async with deps.pool.acquire() as conn:
        tz = await queries.known_device_zone(conn, device_id)
        issue = await horizons.latest_issue(conn, device_id, horizon, model_id, issued_before)
        rows = (
            await horizons.targets(conn, device_id, horizon, issue["issue_time"], issue["model_id"])
            if issue
            else []
        )
    zone = zone_or_utc(tz)
    items = [HorizonTarget(**localise(row, zone)) for row in rows]
    return HorizonPage(
        device_id=device_id,
        tz=tz,
        horizon=horizon,
        model_id=issue["model_id"] if issue else None,
        issue_time=issue["issue_time"].astimezone(zone) if issue else None,
        issued_at=issue["issued_at"].astimezone(zone) if issue else None,
        items=items,
        peak=_peak(items, issue["issue_time"], zone) if issue and horizon == "24h" else None,
    )


@router.get("/fleet/forecasts", response_model=FleetHorizonPage, dependencies=[FleetWide])
async def fleet_forecasts(
    deps: Deps,
    horizon: Annotated[
        Literal["24h", "7d"],
        Query(description="`24h`: per UTC hour; `7d`: per local date of the devices"),
    ] = "24h",
    model_id: Annotated[
        str | None, Query(max_length=128, pattern=TEXT, description="Default: the active model")
    ] = None,
) -> FleetHorizonPage:
    """The fleet's next 24 hours (or 7 days): each device's latest forecast summed per target
    period, with the hour of the predicted fleet peak."""
    async with deps.pool.acquire() as conn:
        chosen = model_id or await horizons.active_model(conn)
        rows = await horizons.fleet(conn, horizon, chosen, FLEET_SPREAD[horizon])
    items = [
        FleetHorizonTarget(**{k: v for k, v in row.items() if not k.startswith("issued_")})
        for row in rows
    ]
    return FleetHorizonPage(
        horizon=horizon,
        model_id=chosen,
        issued_from=min((r["issued_from"] for r in rows), default=None),
        issued_until=max((r["issued_until"] for r in rows), default=None),
        items=items,
        peak=max(items, key=lambda i: i.p50_kwh) if horizon == "24h" and items else None,
    )


@router.get(
    "/devices/{device_id}/forecasts/accuracy",
    response_model=ForecastAccuracy,
    responses=answers(404),
)
async def forecast_accuracy(
    deps: Deps,
    device_id: AllowedDevice,
    start: Start = None,
    end: End = None,
    model_id: ModelParam = None,
) -> ForecastAccuracy:
    """Rolling error per horizon against the actuals, for targets in ``[start, end)`` (default:
    the last 14 days): next hour, 24 hours ahead, 7 days ahead, with the P10-P90 coverage."""
    now = datetime.now(UTC)
    start, end = timerange.resolve_range(start, end, now=now, window=ACCURACY_WINDOW)
    timerange.check_range(start, end, deps.settings.max_hourly_range)
    async with deps.pool.acquire() as conn:
        tz = await queries.known_device_zone(conn, device_id)
        found = await horizons.accuracy(
            conn, device_id, start=start, end=end, model_id=model_id, now=now
        )
    zone = zone_or_utc(tz)
    return ForecastAccuracy(
        device_id=device_id,
        tz=tz,
        model_id=model_id,
        start=start.astimezone(zone),
        end=end.astimezone(zone),
        horizons=[HorizonAccuracy(**row) for row in horizons.per_horizon(found)],
    )
