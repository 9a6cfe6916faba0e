"""A device's quarters priced the way the device KPI statement prices them give the KPIs the
quarters give: the cuts of a window, the price tables, and a Python model of the statement
checked against :func:`api.kpi.figures.compute` on random quarters across a DST change and a
season. No I/O."""

from __future__ import annotations

import bisect
import random
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.kpi.figures import (
    QUARTER,
    Demand,
    Priced,
    Quarter,
    Span,
    Totals,
    Window,
    compute,
    compute_totals,
)
from api.kpi.segments import cuts, packed_tables, price_tables
from api.kpi.tariffs import Band, Region, Tariff, TariffBook

pytestmark = pytest.mark.unit


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


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


def priced_as_the_statement_prices(
    rows: list[Quarter], zone: str, tariff: str, region: str, window: Window
) -> tuple[Totals, list[Quarter], Demand]:
    """What DEVICE_FIGURES returns, computed in Python the way the statement computes it: each
    quarter of the device's zone finds its segment and, from the segment's offset, its local
    quarter of the week, which indexes the packed price tables; other quarters are left over."""
    tables = packed_tables(BOOK.tariffs[tariff], BOOK.regions[region], zone, *window_bounds(window))
    assert tables is not None
    energy = cost = carbon = 0.0
    count = 0
    others = []
    for row in rows:
        if row.tz != zone:
            others.append(row)
            continue
        segment = bisect.bisect_right(tables.starts, row.bucket) - 1
        assert row.bucket < tables.ends[segment]
        quarter = (int(row.bucket.timestamp()) + tables.shifts[segment]) % 604_800 // 900
        rate = tables.rate_palette[tables.rates[segment * 672 + quarter]]
        intensity = tables.intensity_palette[tables.intensities[segment * 96 + quarter % 96]]
        energy += row.energy_kwh
        cost += row.energy_kwh * rate
        carbon += row.energy_kwh * intensity
        count += 1
    demand = Demand.of({q.bucket: q.power_kw for q in rows if q.power_kw is not None})
    return Totals(energy, cost, carbon, count, None, None), others, demand


def window_bounds(window: Window) -> tuple[datetime, datetime]:
    return window.first, window.last


START = utc(2026, 3, 16)
QUARTERS = 6 * 7 * 96  # six weeks: Europe's spring change and the start of April


@st.composite
def device_month(draw: st.DrawFn) -> tuple[list[Quarter], str, str, str]:
    """Six weeks of one device's quarters (a few missing, a few reported from another zone,
    as by a device that moved), with random power; (quarters, zone, tariff, region)."""
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
    return rows, zone, tariff, region


@settings(max_examples=25, deadline=None)
@given(case=device_month())
def test_the_database_pricing_gives_the_kpis_of_the_quarters(
    case: tuple[list[Quarter], str, str, str],
) -> None:
    rows, zone, tariff, region = case
    window = Window(START, START + QUARTERS * QUARTER)
    totals, others, demand = priced_as_the_statement_prices(rows, zone, tariff, region, window)
    spans = [Span(zone, 1)]
    by_tables = compute_totals(Priced(totals, tariff, others, demand), spans, window, BOOK)
    by_quarters = compute(rows, spans, window, BOOK)
    assert by_tables.energy_kwh == pytest.approx(by_quarters.energy_kwh)
    assert by_tables.cost["EUR"] == pytest.approx(by_quarters.cost["EUR"])
    assert by_tables.carbon_kg == pytest.approx(by_quarters.carbon_kg)
    assert (by_tables.peak_kw, by_tables.peak_at) == (by_quarters.peak_kw, by_quarters.peak_at)
    assert by_tables.load_factor == pytest.approx(by_quarters.load_factor)
    assert by_tables.quarters == by_quarters.quarters == len(rows)


def test_price_tables_hold_the_rate_at_each_local_quarter() -> None:
    """Spot checks by hand: Berlin, March 2026 (winter time, then summer time from the 29th)."""
    tables = price_tables(
        BOOK.tariffs["two-rate"], BOOK.regions["london-hours"], "Europe/Berlin",
        utc(2026, 2, 28, 23), utc(2026, 3, 31, 22),
    )  # fmt: skip
    assert tables.offsets == (3600, 7200)
    monday_17 = (4 * 96 + 17 * 4) % 672  # Thursday is quarter 0: Monday is day 4
    assert tables.rates[monday_17] == tables.rates[672 + monday_17] == 0.20
    assert tables.rates[monday_17 - 1] == 0.10  # Monday 16:45
    assert tables.rates[2 * 96 + 17 * 4] == 0.10  # Saturday 17:00
    # London's profile by London's hour: 10:00 in Berlin is 09:00 in London all month.
    assert tables.intensities[40] == tables.intensities[96 + 40] == pytest.approx(0.2 + 9 / 50)


def test_packed_tables_index_the_same_prices() -> None:
    tariff, region = BOOK.tariffs["seasonal"], BOOK.regions["london-hours"]
    first, last = utc(2026, 3, 16), utc(2026, 4, 27)
    tables = price_tables(tariff, region, "Australia/Lord_Howe", first, last)
    packed = packed_tables(tariff, region, "Australia/Lord_Howe", first, last)
    assert packed is not None
    assert packed.starts == tables.cuts
    assert packed.ends == (*tables.cuts[1:], last)
    assert packed.shifts == tuple(offset + 604_800 for offset in tables.offsets)
    assert tuple(packed.rate_palette[k] for k in packed.rates) == tables.rates
    assert tuple(packed.intensity_palette[k] for k in packed.intensities) == tables.intensities
    assert packed.rate_palette == (0.04, 0.12, 0.30)  # weekend nights, base, April mornings


def test_a_tariff_with_more_than_256_rates_is_not_packed() -> None:
    """(Priced in Python instead, quarter by quarter.)"""
    days = ("mon", "tue", "wed", "thu")
    slots = [(d, h, m) for d in days for h in range(24) for m in (0, 15, 30)]  # 288
    many = Tariff(
        base_rate=0.1,
        bands=tuple(
            Band(rate=1 + k / 1000, days=(d,), start=f"{h:02}:{m:02}", end=f"{h:02}:{m + 15:02}")
            for k, (d, h, m) in enumerate(slots)
        ),
    )
    week = (utc(2026, 6, 1), utc(2026, 6, 8))
    assert packed_tables(many, BOOK.regions["grid"], "UTC", *week) is None


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
