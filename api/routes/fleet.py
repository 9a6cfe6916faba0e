"""Fleet-wide views: ``GET /api/v1/fleet/summary``, ``GET /api/v1/alerts`` and how good the
alerts are, ``GET /api/v1/alerts/quality``."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from api import pagination, queries, timerange
from api.alertscore import ScoredAlert, score
from api.deps import Caller, Deps, FleetWide
from api.errors import InvalidRequest
from api.models import (
    AlertOut,
    AlertQuality,
    AlertsPage,
    AlertState,
    EnergyVsForecast,
    FleetSummary,
    KindQuality,
)
from api.params import Cursor, End, Instant, Start
from api.responses import answers
from api.routes.devices import localise, zone_or_utc
from schema.device_messages import AnomalyLabel
from schema.results import AlertKind
from schema.wire import DEVICE_ID_PATTERN

router = APIRouter(prefix="/api/v1", tags=["fleet"], responses=answers(422))

HOUR = timedelta(hours=1)
QUALITY_WINDOW = timedelta(days=7)
"""The range the alerts are scored over when ``start`` is not given."""


def _hour_floor(instant: datetime) -> datetime:
    return instant.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@router.get("/fleet/summary", response_model=FleetSummary, dependencies=[FleetWide])
async def fleet_summary(
    deps: Deps,
    at: Annotated[
        Instant | None,
        Query(description="The instant to summarise (ISO-8601 with offset); default: now"),
    ] = None,
) -> FleetSummary:
    """Devices by presence and by latest health status; the fleet's energy in the current UTC
    hour against the forecasts for it; and the last closed hour, actual against forecast over
    the device-hours that have both."""
    at = (at or datetime.now(UTC)).astimezone(UTC)
    current = _hour_floor(at)
    async with deps.pool.acquire() as conn:
        counts = await queries.fleet_counts(conn)
        current_kwh = await conn.fetchval(queries.FLEET_HOUR_ENERGY, current)
        current_forecast = await conn.fetchval(queries.FORECAST_AT, at)
        last_closed = await conn.fetchval(queries.LAST_CLOSED_HOUR, at)
        if last_closed is not None:
            hour = _hour_floor(last_closed)
            pair = await conn.fetchrow(queries.ACTUAL_VS_FORECAST, hour, hour + HOUR)
            closed = EnergyVsForecast(
                hour_start=hour,
                actual_kwh=pair["actual_kwh"],
                forecast_kwh=pair["forecast_kwh"],
                device_hours=pair["device_hours"],
            )
        else:
            closed = EnergyVsForecast(
                hour_start=None, actual_kwh=None, forecast_kwh=None, device_hours=0
            )
    total = counts["devices"]
    known_health = counts["green"] + counts["amber"] + counts["red"]
    return FleetSummary(
        at=at,
        devices=total,
        presence={
            "online": counts["online"],
            "offline": counts["offline"],
            "unknown": total - counts["online"] - counts["offline"],
        },
        health={
            "green": counts["green"],
            "amber": counts["amber"],
            "red": counts["red"],
            "unknown": total - known_health,
        },
        current_hour_start=current,
        current_hour_kwh=current_kwh,
        current_hour_forecast_kwh=current_forecast,
        last_closed_hour=closed,
    )


def _alert_key(cursor: str) -> tuple[datetime, str, datetime, str]:
    raised_at, device_id, hour_start, kind = pagination.decode("alerts", cursor, 4)
    try:
        return (
            datetime.fromisoformat(raised_at),
            str(device_id),
            datetime.fromisoformat(hour_start),
            str(kind),
        )
    except (TypeError, ValueError) as exc:
        raise InvalidRequest("cursor: not a cursor of the alerts list", title="Bad cursor") from exc


def alert_out(row: dict[str, Any]) -> AlertOut:
    """An alert row as the API answers it, its times in the device's zone."""
    return AlertOut(**{k: v for k, v in localise(row, zone_or_utc(row["tz"])).items() if k != "tz"})


@router.get("/alerts", response_model=AlertsPage)
async def list_alerts(
    *,
    deps: Deps,
    caller: Caller,
    device_id: Annotated[str | None, Query(pattern=DEVICE_ID_PATTERN)] = None,
    severity: Literal["warning", "critical"] | None = None,
    start: Start = None,
    end: End = None,
    kind: AlertKind | None = None,
    state: Annotated[
        list[AlertState] | None,
        Query(description="Only alerts in these states (repeat the parameter for several)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Cursor = None,
) -> AlertsPage:
    """Alerts (of the key's devices), newest first, optionally for one device, one severity,
    one kind, some states, or opened in hours starting in ``[start, end)``; one page at a time
    (follow ``next_cursor``). An alert is one row from the hour it opened until its condition
    cleared (``resolved``); ``open`` and ``acknowledged`` alerts still hold."""
    if caller is not None and device_id is not None:
        caller.check_device(device_id)
    if start is not None and end is not None:
        timerange.check_range(start, end, deps.settings.max_daily_range)
    limit = min(limit, deps.settings.page_size_max)
    after = _alert_key(cursor) if cursor else None
    async with deps.pool.acquire() as conn:
        rows = await queries.alerts_page(
            conn,
            device_id=device_id,
            severity=severity,
            start=start,
            end=end,
            after=after,
            limit=limit + 1,
            kind=kind,
            states=list(state) if state else None,
            within=caller.sql_filter() if caller else (None, None),
        )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more:
        last = rows[-1]
        next_cursor = pagination.encode(
            "alerts",
            [
                last["raised_at"].isoformat(),
                last["device_id"],
                last["hour_start"].isoformat(),
                last["kind"],
            ],
        )
    return AlertsPage(
        items=[alert_out(row) for row in rows],
        next_cursor=next_cursor,
    )


@router.get("/alerts/quality", response_model=AlertQuality)
async def alert_quality(
    deps: Deps, caller: Caller, start: Start = None, end: End = None
) -> AlertQuality:
    """Precision and recall per alert kind against the anomalies the simulator injected (its
    ground-truth labels), over ``[start, end)`` (default: the 7 days before now), for the key's
    devices. An alert counts when its hours overlap the range, a label when its anomaly does.

    An alert is *true* when it is about a device that had an injected anomaly (of any kind)
    within 3 hours of the alert's hours; an anomaly is *detected* when an alert of the kind
    meant for it (spike: ``residual``, drift: ``level_shift``, stuck: ``stuck``, dropout:
    ``silent``) matches it. ``precision`` = true / alerts, ``recall`` = detected / injected;
    ``null`` with nothing to divide by. Without any label in the range (no simulator, or one
    that publishes none) there is nothing to score against: the alerts are counted, and every
    precision and recall is ``null``."""
    start, end = timerange.resolve_range(start, end, now=datetime.now(UTC), window=QUALITY_WINDOW)
    timerange.check_range(start, end, deps.settings.max_daily_range)
    async with deps.pool.acquire() as conn:
        alerts, labels = await queries.quality_rows(
            conn, start, end, caller.sql_filter() if caller else (None, None)
        )
    truth = [AnomalyLabel.model_validate(row) for row in labels]
    found = [
        ScoredAlert.spanning(
            a["device_id"], a["kind"], a["hour_start"], a["last_hour_start"], a["resolved_hour"]
        )
        for a in alerts
    ]
    kinds = [
        KindQuality.model_validate(
            {**asdict(s), "precision": s.precision if truth else None, "recall": s.recall}
        )
        for s in score(found, truth).values()
    ]
    return AlertQuality(start=start, end=end, labels=len(truth), kinds=kinds)
