"""KPIs computed by hand across DST changes, in a +05:45 zone and a 30-minute-DST zone, with
tariff band edges; properties over random rollup rows. No I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.kpi.figures import QUARTER, Quarter, Span, Window, compute
from api.kpi.tariffs import Band, Region, Tariff, TariffBook

pytestmark = pytest.mark.unit

BERLIN = "Europe/Berlin"
KATHMANDU = "Asia/Kathmandu"
LORD_HOWE = "Australia/Lord_Howe"

BOOK = TariffBook(
    tariffs={
        "two-rate": Tariff(
            base_rate=0.10,
            bands=(Band(name="peak", rate=0.20, days="weekdays", start="17:00", end="21:00"),),
        ),
        "night": Tariff(base_rate=0.15, bands=(Band(rate=0.05, start="00:00", end="06:00"),)),
    },
    regions={
        "grid": Region(kg_per_kwh=0.45),
        "by-hour": Region(hourly_kg_per_kwh=tuple(h / 100 for h in range(24))),
    },
)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def steady(
    tz: str, first: datetime, last: datetime, *, tariff: str = "night", region: str = "grid"
) -> list[Quarter]:
    """A 1 kW load (0.25 kWh a quarter) over ``[first, last)``."""
    rows = []
    bucket = first
    while bucket < last:
        rows.append(Quarter(bucket, tz, tariff, region, energy_kwh=0.25, power_kw=1.0))
        bucket += QUARTER
    return rows


def day(tz: str, on: date, *, own_zone: bool = False) -> Window:
    """The local day ``on`` of ``tz``: as a fixed zone, or as each device's own zone."""
    return Window.of_days(on, on + timedelta(days=1), None if own_zone else ZoneInfo(tz))


# Rows a day either side of the day measured: the window must keep exactly its own quarters.
def around(tz: str, on: date, **kwargs: str) -> list[Quarter]:
    start = datetime(on.year, on.month, on.day, tzinfo=UTC)
    return steady(tz, start - timedelta(days=1), start + timedelta(days=2), **kwargs)


@pytest.mark.parametrize("own_zone", [False, True])
def test_berlin_spring_forward_day_has_one_night_hour_less(own_zone: bool) -> None:
    # 2026-03-29 (Sunday): 02:00 -> 03:00, 23 hours, 92 quarters; the gap is in the night band.
    on = date(2026, 3, 29)
    rows = [
        r
        if r.bucket != utc(2026, 3, 29, 1, 0)
        else Quarter(r.bucket, BERLIN, "night", "grid", 1.25, 5.0)
        for r in around(BERLIN, on)
    ]
    kpis = compute(rows, [Span(BERLIN, 1)], day(BERLIN, on, own_zone=own_zone), BOOK)
    assert kpis.expected_quarters == kpis.quarters == 92
    assert kpis.completeness == 1.0
    # 22.75 kWh at 1 kW plus 1.25 kWh in the peak quarter (03:00 local, night band).
    assert kpis.energy_kwh == pytest.approx(24.0)
    # Night: 00:00-02:00 and 03:00-06:00 = 5 h -> 4.75 kWh + 1.25 kWh at 0.05; 18 h at 0.15.
    assert kpis.cost == {"EUR": pytest.approx(6.0 * 0.05 + 18 * 0.15)}
    assert kpis.carbon_kg == pytest.approx(24.0 * 0.45)
    assert kpis.peak_kw == 5.0
    assert kpis.peak_at == utc(2026, 3, 29, 1, 0)
    assert kpis.peak_at.astimezone(ZoneInfo(BERLIN)).isoformat() == "2026-03-29T03:00:00+02:00"
    assert kpis.mean_power_kw == pytest.approx(96 / 92)
    assert kpis.load_factor == pytest.approx(96 / 92 / 5)


@pytest.mark.parametrize("own_zone", [False, True])
def test_berlin_fall_back_day_has_one_night_hour_more(own_zone: bool) -> None:
    # 2026-10-25 (Sunday): 03:00 -> 02:00, 25 hours, 100 quarters; both 02:xx hours are night.
    on = date(2026, 10, 25)
    kpis = compute(around(BERLIN, on), [Span(BERLIN, 1)], day(BERLIN, on, own_zone=own_zone), BOOK)
    assert kpis.expected_quarters == kpis.quarters == 100
    assert kpis.energy_kwh == pytest.approx(25.0)
    assert kpis.cost == {"EUR": pytest.approx(7 * 0.05 + 18 * 0.15)}
    assert kpis.load_factor == 1.0


def test_hourly_carbon_profile_follows_local_hours_across_the_gap() -> None:
    # Intensity = local hour / 100; hour 2 does not exist on the Berlin spring-forward day.
    on = date(2026, 3, 29)
    rows = around(BERLIN, on, region="by-hour")
    kpis = compute(rows, [Span(BERLIN, 1)], day(BERLIN, on), BOOK)
    assert kpis.carbon_kg == pytest.approx(sum(h for h in range(24) if h != 2) / 100)


def test_kathmandu_work_day_two_rate_tariff() -> None:
    # 2026-03-04 is a Wednesday; +05:45 all year: 17:00-21:00 local = 11:15-15:15 UTC.
    on = date(2026, 3, 4)
    kpis = compute(
        around(KATHMANDU, on, tariff="two-rate"), [Span(KATHMANDU, 1)], day(KATHMANDU, on), BOOK
    )
    assert kpis.expected_quarters == kpis.quarters == 96
    assert kpis.energy_kwh == pytest.approx(24.0)
    assert kpis.cost == {"EUR": pytest.approx(4 * 0.20 + 20 * 0.10)}


def test_kathmandu_band_edges() -> None:
    # One kWh in each quarter either side of 17:00 and 21:00 local.
    buckets = {
        utc(2026, 3, 4, 11, 0): 0.10,  # 16:45-17:00: off-peak
        utc(2026, 3, 4, 11, 15): 0.20,  # 17:00-17:15: peak
        utc(2026, 3, 4, 15, 0): 0.20,  # 20:45-21:00: peak
        utc(2026, 3, 4, 15, 15): 0.10,  # 21:00-21:15: off-peak
    }
    rows = [Quarter(b, KATHMANDU, "two-rate", "grid", 1.0, 4.0) for b in buckets]
    kpis = compute(rows, [Span(KATHMANDU, 1)], day(KATHMANDU, date(2026, 3, 4)), BOOK)
    assert kpis.cost == {"EUR": pytest.approx(sum(buckets.values()))}
    assert kpis.completeness == pytest.approx(4 / 96)
    assert kpis.load_factor == 1.0


@pytest.mark.parametrize(
    ("on", "quarters", "night_hours"),
    [
        (date(2026, 10, 4), 94, 5.5),  # 02:00 -> 02:30 (+10:30 -> +11:00), in the night band
        (date(2026, 4, 5), 98, 6.5),  # 02:00 -> 01:30 (+11:00 -> +10:30), repeated half hour
    ],
)
def test_lord_howe_half_hour_dst(on: date, quarters: int, night_hours: float) -> None:
    for own_zone in (False, True):
        kpis = compute(
            around(LORD_HOWE, on), [Span(LORD_HOWE, 1)], day(LORD_HOWE, on, own_zone=own_zone), BOOK
        )
        assert kpis.expected_quarters == kpis.quarters == quarters
        hours = quarters / 4
        assert kpis.energy_kwh == pytest.approx(hours)
        assert kpis.cost == {"EUR": pytest.approx(night_hours * 0.05 + 18 * 0.15)}
    # A Sunday: the two-rate tariff's work-day band does not apply.
    kpis = compute(
        around(LORD_HOWE, on, tariff="two-rate"), [Span(LORD_HOWE, 1)], day(LORD_HOWE, on), BOOK
    )
    assert kpis.cost == {"EUR": pytest.approx(quarters / 4 * 0.10)}


def test_group_sums_devices_per_bucket_and_counts_their_completeness() -> None:
    # Two devices in different zones on the same UTC range; demand adds per bucket.
    first, last = utc(2026, 3, 4, 0), utc(2026, 3, 4, 1)
    rows = steady(BERLIN, first, last) + steady(KATHMANDU, first, first + 2 * QUARTER)
    kpis = compute(rows, [Span(BERLIN, 1), Span(KATHMANDU, 1)], Window(first, last), BOOK)
    assert kpis.expected_quarters == 8
    assert kpis.quarters == 6
    assert kpis.peak_kw == 2.0
    assert kpis.peak_at == first
    assert kpis.mean_power_kw == pytest.approx((2 + 2 + 1 + 1) / 4)


def test_no_rows_gives_zeroes_and_no_peak() -> None:
    kpis = compute([], [], Window(utc(2026, 1, 1), utc(2026, 1, 2)), BOOK)
    assert (kpis.energy_kwh, kpis.cost, kpis.peak_kw, kpis.load_factor) == (0.0, {}, None, None)
    assert kpis.completeness == 0.0


def test_net_export_has_no_load_factor() -> None:
    rows = [Quarter(utc(2026, 6, 1, 12), BERLIN, "night", "grid", -0.5, -2.0)]
    kpis = compute(rows, [Span(BERLIN, 1)], Window(utc(2026, 6, 1), utc(2026, 6, 2)), BOOK)
    assert kpis.peak_kw == -2.0
    assert kpis.load_factor is None


ZONES = st.sampled_from([BERLIN, KATHMANDU, LORD_HOWE, "UTC", "America/St_Johns"])
START = utc(2026, 3, 28)  # spans the Berlin spring-forward day


@st.composite
def quarters(draw: st.DrawFn) -> list[Quarter]:
    slots = draw(st.lists(st.integers(0, 3 * 96 - 1), min_size=1, max_size=60, unique=True))
    rows = []
    for slot in slots:
        power = draw(st.floats(0.001, 50.0))
        rows.append(
            Quarter(
                START + slot * QUARTER,
                draw(ZONES),
                draw(st.sampled_from(["two-rate", "night"])),
                draw(st.sampled_from(["grid", "by-hour"])),
                energy_kwh=power / 4,
                power_kw=power,
            )
        )
    return rows


@given(rows=quarters(), split=st.integers(0, 3 * 96))
def test_cost_energy_and_carbon_add_up_over_a_partition(rows: list[Quarter], split: int) -> None:
    end = START + 3 * 96 * QUARTER
    middle = START + split * QUARTER
    whole = compute(rows, [], Window(START, end), BOOK)
    parts = [compute(rows, [], Window(a, b), BOOK) for a, b in ((START, middle), (middle, end))]
    assert sum(p.energy_kwh for p in parts) == pytest.approx(whole.energy_kwh)
    assert sum(p.carbon_kg for p in parts) == pytest.approx(whole.carbon_kg)
    assert sum(p.cost.get("EUR", 0.0) for p in parts) == pytest.approx(whole.cost["EUR"])
    assert sum(p.quarters for p in parts) == whole.quarters


@given(rows=quarters())
def test_load_factor_lies_in_zero_one(rows: list[Quarter]) -> None:
    kpis = compute(rows, [], Window(START, START + 3 * 96 * QUARTER), BOOK)
    assert kpis.load_factor is not None
    assert 0 < kpis.load_factor <= 1
    assert kpis.peak_kw is not None
    assert kpis.mean_power_kw is not None
    assert kpis.mean_power_kw <= kpis.peak_kw
