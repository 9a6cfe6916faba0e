"""Price slots (what the device KPI statement groups by) give the KPIs the quarters give: the
cuts of a window, and a Python model of the statement's grouping checked against
:func:`api.kpi.figures.compute` on random quarters across a DST change and a month. No I/O."""

from __future__ import annotations

import bisect
import random
from collections import defaultdict
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.kpi.figures import QUARTER, Demand, Quarter, Slot, Span, Window, compute, compute_slots
from api.kpi.segments import cuts
from api.kpi.tariffs import Band, Region, Tariff, TariffBook

pytestmark = pytest.mark.unit


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


BOOK = TariffBook(
    tariffs={
        "two-rate": Tariff(
            base_rate=0.10,
            bands=(Band(rate=0.20, days="weekdays", start="17:00", end="21:00"),),
        ),
        # A season (April only) and a band wrapping midnight: the month cut matters.
        "seasonal": Tariff(
            base_rate=0.12,
            bands=(
                Band(rate=0.30, start="07:15", end="09:45", months=(4,)),
                Band(rate=0.04, days="weekends", start="22:00", end="05:00"),
            ),
        ),
    },
    regions={
        "grid": Region(kg_per_kwh=0.45),
        "by-hour": Region(hourly_kg_per_kwh=tuple(h / 100 for h in range(24))),
        "london-hours": Region(
            hourly_kg_per_kwh=tuple(0.2 + h / 50 for h in range(24)), tz="Europe/London"
        ),
    },
)


def test_a_month_in_berlin_is_cut_at_the_spring_change() -> None:
    first, last = utc(2026, 2, 28, 23), utc(2026, 3, 31, 22)  # March, local
    assert cuts("Europe/Berlin", None, first, last) == (first, utc(2026, 3, 29, 1))


def test_cuts_at_month_starts_and_the_profile_zone_changes() -> None:
    found = cuts("Australia/Lord_Howe", "Europe/London", utc(2026, 3, 1), utc(2026, 5, 1))
    assert found == (
        utc(2026, 3, 1),
        utc(2026, 3, 29, 1),  # London springs forward
        utc(2026, 3, 31, 13),  # 1 April 00:00 at Lord Howe (+11:00)
        utc(2026, 4, 4, 15),  # Lord Howe moves back 30 minutes (02:00 -> 01:30)
        utc(2026, 4, 30, 13, 30),  # 1 May 00:00 (+10:30)
    )


def test_a_utc_day_has_no_cut() -> None:
    assert cuts("UTC", None, utc(2026, 6, 1), utc(2026, 6, 2)) == (utc(2026, 6, 1),)


def slots_as_the_statement_groups(
    rows: list[Quarter], zone: str, region_tz: str | None, window: Window
) -> tuple[list[Slot], Demand]:
    """What DEVICE_SLOTS returns, computed in Python: grouped by zone, segment and UTC quarter
    of the week (a quarter of another zone on its own), the earliest bucket standing for it."""
    edges = cuts(zone, region_tz, window.first, window.last)
    groups: dict[tuple[str, int, int], list[Quarter]] = defaultdict(list)
    for row in rows:
        epoch = int(row.bucket.timestamp())
        segment = bisect.bisect_right(edges, row.bucket)
        groups[row.tz, segment, epoch % 604_800 if row.tz == zone else epoch].append(row)
    slots = [
        Slot(
            min(q.bucket for q in group),
            group[0].tz,
            group[0].tariff,
            group[0].region,
            sum(q.energy_kwh for q in group),
            len(group),
        )
        for group in groups.values()
    ]
    demand = Demand.of({q.bucket: q.power_kw for q in rows if q.power_kw is not None})
    return slots, demand


START = utc(2026, 3, 16)
QUARTERS = 6 * 7 * 96  # six weeks: Europe's spring change and the start of April


@st.composite
def device_month(draw: st.DrawFn) -> tuple[list[Quarter], str, str]:
    """Six weeks of one device's quarters (a few missing, a few reported from another zone,
    as by a device that moved), with random power."""
    zone = draw(st.sampled_from(["Europe/Berlin", "Australia/Lord_Howe", "Asia/Kathmandu"]))
    tariff = draw(st.sampled_from(["two-rate", "seasonal"]))
    region = draw(st.sampled_from(["grid", "by-hour", "london-hours"]))
    rng = random.Random(draw(st.integers(0, 2**32)))
    rows = []
    for index in range(QUARTERS):
        if rng.random() < 0.1:
            continue
        power = rng.uniform(0.01, 20.0)
        tz = "UTC" if rng.random() < 0.01 else zone
        rows.append(Quarter(START + index * QUARTER, tz, tariff, region, power / 4, power))
    return rows, zone, region


@settings(max_examples=25, deadline=None)
@given(case=device_month())
def test_slots_give_the_kpis_of_the_quarters(case: tuple[list[Quarter], str, str]) -> None:
    rows, zone, region = case
    window = Window(START, START + QUARTERS * QUARTER)
    slots, demand = slots_as_the_statement_groups(rows, zone, BOOK.regions[region].tz, window)
    spans = [Span(zone, 1)]
    by_slots, by_quarters = (
        compute_slots(slots, demand, spans, window, BOOK),
        compute(rows, spans, window, BOOK),
    )
    assert by_slots.energy_kwh == pytest.approx(by_quarters.energy_kwh)
    assert by_slots.cost["EUR"] == pytest.approx(by_quarters.cost["EUR"])
    assert by_slots.carbon_kg == pytest.approx(by_quarters.carbon_kg)
    assert (by_slots.peak_kw, by_slots.peak_at) == (by_quarters.peak_kw, by_quarters.peak_at)
    assert by_slots.load_factor == pytest.approx(by_quarters.load_factor)
    assert by_slots.quarters == by_quarters.quarters == len(rows)
    assert len(slots) < len(rows) / 2  # what the statement saves


def test_sec_is_the_producing_quarters_energy_per_unit() -> None:
    window = Window(utc(2026, 6, 1), utc(2026, 6, 2))
    at = utc(2026, 6, 1, 10)
    rows = [
        # Two devices of a group in one quarter: a line (3 kWh, 12 units) and a meter (1 kWh).
        Quarter(at, "UTC", "two-rate", "grid", 4.0, 16.0, 2, 12.0, 3.0),
        Quarter(at + QUARTER, "UTC", "two-rate", "grid", 2.0, 8.0, 1, 0.0, 2.0),  # idle line
        Quarter(at + 2 * QUARTER, "UTC", "two-rate", "grid", 1.0, 4.0),  # only the meter
    ]
    kpis = compute(rows, [], window, BOOK)
    assert kpis.production_units == 12.0
    assert kpis.sec_kwh_per_unit == pytest.approx((3.0 + 2.0) / 12.0)
    nothing = compute(rows[2:], [], window, BOOK)
    assert (nothing.production_units, nothing.sec_kwh_per_unit) == (None, None)
    idle = compute(rows[1:2], [], window, BOOK)
    assert (idle.production_units, idle.sec_kwh_per_unit) == (0.0, None)  # no unit: no SEC
