"""Energy KPIs and the tariff book.

* ``GET /api/v1/devices/{device_id}/kpis``: one device over a local day, week, month or range.
* ``GET /api/v1/fleet/kpis?group_by=kind|location``: the fleet, and a breakdown.
* ``GET /api/v1/tariffs``; ``PUT /api/v1/tariffs`` (admin key): the tariff book.

Periods are local to ``tz``: ``device`` (each device's own zone: its tariff bands and its days),
``UTC`` or an IANA name. Every figure comes from the 15-minute rollup (:mod:`api.kpi.queries`).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query

from api import timerange
from api.deps import AdminKey, AllowedDevice, Deps, FleetWide
from api.errors import InvalidRequest, NotFound
from api.kpi.figures import Kpis, Quarter, Span, Window, compute, compute_totals
from api.kpi.queries import device_figures, device_site, group_quarters
from api.kpi.tariffs import TariffBook
from api.models import DeviceKpis, FleetKpis, KpiFigures, KpiPeriod, TariffsSaved
from api.params import End, Start
from api.responses import answers
from schema.wire import EARLIEST_TS, LATEST_TS

router = APIRouter(prefix="/api/v1", tags=["kpis"], responses=answers(422))

Period = Literal["day", "week", "month"]
PeriodQuery = Annotated[
    Period | None,
    Query(
        description="The local day, week (Monday to Monday) or month holding `date`; "
        "default `day` unless `start`/`end` are given"
    ),
]
OnQuery = Annotated[
    date | None,
    Query(alias="date", description="A local date in the period (default: today in `tz`)"),
]
TzQuery = Annotated[
    str,
    Query(
        max_length=64,
        description="`device` (each device's own zone), `UTC` or an IANA zone name",
    ),
]


def period_dates(period: Period, on: date) -> tuple[date, date]:
    """Local dates ``[start, end)`` of the day, week (from Monday) or month holding ``on``."""
    if period == "day":
        return on, on + timedelta(days=1)
    if period == "week":
        monday = on - timedelta(days=on.weekday())
        return monday, monday + timedelta(days=7)
    first = on.replace(day=1)
    return first, first + timedelta(days=calendar.monthrange(on.year, on.month)[1])


@dataclass(frozen=True)
class PeriodChoice:
    """The period parameters both KPI endpoints take."""

    period: Period | None
    on: date | None
    tz: str
    start: datetime | None
    end: datetime | None


async def _period_choice(
    period: PeriodQuery = None,
    on: OnQuery = None,
    tz: TzQuery = "device",
    start: Start = None,
    end: End = None,
) -> PeriodChoice:
    return PeriodChoice(period, on, tz, start, end)


Choice = Annotated[PeriodChoice, Depends(_period_choice)]


def resolve_window(
    choice: PeriodChoice, zone: ZoneInfo | None, longest: timedelta
) -> tuple[Window, KpiPeriod]:
    """The window and its description; ``zone`` ``None``: each device's own zone."""
    period, on, start, end = choice.period, choice.on, choice.start, choice.end
    tz_name = "device" if zone is None else str(zone.key)
    if start is not None or end is not None:
        if period is not None or on is not None:
            raise InvalidRequest(
                "give either period (with date) or start/end, not both", title="Ambiguous period"
            )
        start, end = timerange.resolve_range(
            start, end, now=datetime.now(UTC), window=timedelta(days=1)
        )
        timerange.check_range(start, end, longest)
        first, last = timerange.align(start, end, "15m", ZoneInfo("UTC"))
        shown = zone or ZoneInfo("UTC")
        described = KpiPeriod(
            period="range",
            tz=tz_name,
            start=first.astimezone(shown),
            end=last.astimezone(shown),
            start_date=None,
            end_date=None,
        )
        return Window(first, last), described
    today = datetime.now(zone or UTC).date()
    if on is not None and not EARLIEST_TS.date() < on < LATEST_TS.date() - timedelta(days=31):
        raise InvalidRequest(
            f"date: {on.isoformat()} is outside the dates readings can have "
            f"({EARLIEST_TS.date().isoformat()} to {LATEST_TS.date().isoformat()})"
        )
    days = period_dates(period or "day", on or today)
    window = Window.of_days(*days, zone)
    described = KpiPeriod(
        period=period or "day",
        tz=tz_name,
        start=window.first.astimezone(zone) if zone else None,
        end=window.last.astimezone(zone) if zone else None,
        start_date=days[0],
        end_date=days[1],
    )
    return window, described


def figures(group: str, kpis: Kpis, devices: int, shown: ZoneInfo, book: TariffBook) -> KpiFigures:
    currencies = list(kpis.cost)
    single = len(currencies) <= 1
    return KpiFigures(
        group=group,
        devices=devices,
        energy_kwh=kpis.energy_kwh,
        cost=(kpis.cost[currencies[0]] if currencies else 0.0) if single else None,
        currency=(currencies[0] if currencies else book.tariff(None).currency) if single else None,
        cost_by_currency=kpis.cost,
        carbon_kg=kpis.carbon_kg,
        peak_kw=kpis.peak_kw,
        peak_at=kpis.peak_at.astimezone(shown) if kpis.peak_at else None,
        mean_power_kw=kpis.mean_power_kw,
        load_factor=kpis.load_factor,
        quarters=kpis.quarters,
        expected_quarters=kpis.expected_quarters,
        completeness=kpis.completeness,
        production_units=kpis.production_units,
        sec_kwh_per_unit=kpis.sec_kwh_per_unit,
    )


@router.get("/devices/{device_id}/kpis", response_model=DeviceKpis, responses=answers(404))
async def device_kpis(deps: Deps, device_id: AllowedDevice, choice: Choice) -> DeviceKpis:
    """Energy, time-of-use cost, carbon, peak demand (15-minute mean power, with its local
    time), load factor, SEC (kWh per unit, for devices that report production) and
    completeness of one device over a local day, week or month holding
    `date`, or over `[start, end)`. Tariff bands apply at the device's wall-clock time."""
    book = deps.tariffs.book
    async with deps.pool.acquire() as conn:
        site = await device_site(conn, device_id)
        if site is None:
            raise NotFound(f"no device {device_id!r}: it has sent no birth and no reading")
        tz = choice.tz
        zone = timerange.zone(site.tz if tz == "device" else tz)
        window, described = resolve_window(choice, zone, deps.settings.max_daily_range)
        found = await device_figures(conn, book, window, device_id, site)
    kpis = compute_totals(found, [Span(site.tz, 1)], window, book)
    shown = timerange.zone(site.tz)
    return DeviceKpis(
        device_id=device_id,
        period=described.model_copy(update={"tz": tz if tz == "device" else zone.key}),
        kpis=figures(device_id, kpis, 1 if kpis.quarters else 0, shown, book),
    )


@router.get("/fleet/kpis", response_model=FleetKpis, dependencies=[FleetWide])
async def fleet_kpis(
    deps: Deps,
    choice: Choice,
    group_by: Annotated[
        Literal["kind", "location"] | None,
        Query(description="Also break the fleet down by device kind or location"),
    ] = None,
) -> FleetKpis:
    """The fleet's KPIs over a local day, week or month holding `date` (with `tz=device`,
    each device's own local days), or over `[start, end)`; with `group_by`, per kind or
    location too. Fleet peak demand is the highest sum of the devices' 15-minute mean power."""
    book = deps.tariffs.book
    zone = None if choice.tz == "device" else timerange.zone(choice.tz)
    window, described = resolve_window(choice, zone, deps.settings.max_daily_range)
    async with deps.pool.acquire() as conn:
        groups = await group_quarters(conn, book, window, group_by or "fleet")
    shown = zone or ZoneInfo("UTC")
    everything: list[Quarter] = []
    all_spans: list[Span] = []
    parts = []
    for name, (rows, spans) in groups.items():
        everything += rows
        all_spans += spans
        devices = sum(s.devices for s in spans)
        parts.append(figures(name, compute(rows, spans, window, book), devices, shown, book))
    fleet = compute(everything, all_spans, window, book)
    return FleetKpis(
        period=described,
        group_by=group_by,
        fleet=figures("fleet", fleet, sum(s.devices for s in all_spans), shown, book),
        groups=sorted(parts, key=lambda f: -f.energy_kwh) if group_by else [],
    )


@router.get("/tariffs", response_model=TariffBook, dependencies=[FleetWide])
async def get_tariffs(deps: Deps) -> TariffBook:
    """The tariff book in force: tariffs (base rate and bands in local wall-clock time), carbon
    regions, defaults, and the per-device and per-location choices."""
    return deps.tariffs.book


@router.put(
    "/tariffs",
    response_model=TariffsSaved,
    dependencies=[AdminKey, FleetWide],
    responses=answers(400),
)
async def put_tariffs(deps: Deps, book: TariffBook) -> TariffsSaved:
    """Replace the tariff book (admin key). It is validated first: an unknown tariff or region
    name, a band off the quarter hour or a missing rate is a 422 naming the field."""
    saved = await deps.tariffs.replace(book)
    return TariffsSaved(saved_to=str(saved) if saved else None)
