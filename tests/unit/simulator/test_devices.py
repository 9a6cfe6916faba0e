from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from schema.wire import decode_reading
from simulator.devices import DeviceKind, DeviceModel, DeviceSpec, tick_time
from simulator.fleet import FLEET_ZONES, DeviceGroup, build_fleet

pytestmark = pytest.mark.unit

START = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)


def model(kind: DeviceKind, tz: str, nominal_kw: float = 2.0, seed: int = 1) -> DeviceModel:
    return DeviceModel(DeviceSpec(f"{kind}-{tz.replace('/', '_')}", kind, tz, nominal_kw), seed)


def test_same_seed_same_bytes() -> None:
    def payloads(seed: int) -> list[bytes]:
        return [
            m.reading(k, tick_time(START, k, 60), 60).to_json()
            for m in build_fleet(20, seed=seed)
            for k in range(5)
        ]

    assert payloads(7) == payloads(7)
    assert payloads(7) != payloads(8)


def test_a_fleet_does_not_change_when_it_grows() -> None:
    small = [m.reading(0, START, 60).to_json() for m in build_fleet(5, seed=3)]
    large = [m.reading(0, START, 60).to_json() for m in build_fleet(50, seed=3)]
    assert large[:5] == small


def test_default_fleet_has_every_kind_and_berlin_first() -> None:
    fleet = build_fleet(70, seed=1)
    assert fleet[0].spec.tz == "Europe/Berlin"
    assert fleet[0].spec.kind is DeviceKind.HOUSEHOLD_METER
    # Industrial lines are opt-in (a fleet file names them): the model is not trained on them.
    kinds = set(DeviceKind) - {DeviceKind.INDUSTRIAL_LINE}
    assert {m.spec.kind for m in fleet} == kinds
    assert {m.spec.tz for m in fleet} == set(FLEET_ZONES)
    assert {(m.spec.kind, m.spec.tz) for m in fleet} == {(k, z) for k in kinds for z in FLEET_ZONES}


def test_groups_choose_kinds_and_zones() -> None:
    fleet = build_fleet(
        4,
        seed=1,
        groups=[
            DeviceGroup(
                3, kinds=(DeviceKind.FRIDGE,), zones=("Asia/Tokyo",), nominal_kw=(0.2, 0.2)
            ),
            DeviceGroup(1, kinds=(DeviceKind.EV_CHARGER,)),
        ],
    )
    assert [(m.spec.device_id, m.spec.kind, m.spec.tz, m.spec.nominal_kw) for m in fleet[:3]] == [
        (f"dev-0000{i}", DeviceKind.FRIDGE, "Asia/Tokyo", 0.2) for i in range(3)
    ]
    assert fleet[3].spec.kind is DeviceKind.EV_CHARGER
    with pytest.raises(ValueError, match="groups have 4 devices, not 5"):
        build_fleet(5, seed=1, groups=[DeviceGroup(4)])


def mean_by_local_hour(m: DeviceModel, days: int, *, weekend: bool | None = None) -> list[float]:
    """Mean power per local hour over ``days`` days (15-min samples)."""
    zone = ZoneInfo(m.spec.tz)
    by_hour: dict[int, list[float]] = defaultdict(list)
    t0 = int(datetime(2026, 5, 4, tzinfo=UTC).timestamp())  # a Monday
    for t in range(t0, t0 + days * 86_400, 900):
        local = datetime.fromtimestamp(t, zone)
        if weekend is None or (local.weekday() >= 5) == weekend:
            by_hour[local.hour].append(m.power_kw(t))
    return [statistics.fmean(by_hour[h]) for h in range(24)]


def test_daily_peak_is_at_the_same_local_hour_in_berlin_and_kolkata() -> None:
    berlin = mean_by_local_hour(model(DeviceKind.HOUSEHOLD_METER, "Europe/Berlin"), 28)
    kolkata = mean_by_local_hour(model(DeviceKind.HOUSEHOLD_METER, "Asia/Kolkata"), 28)
    peak = berlin.index(max(berlin))
    assert peak == kolkata.index(max(kolkata))
    assert 18 <= peak <= 20  # the evening peak, in local time
    # In UTC the two peaks are 3.5 hours apart (+02:00 vs +05:30 in May).
    assert min(berlin) < 0.5 * max(berlin)


def test_work_days_and_weekends_differ() -> None:
    office = model(DeviceKind.HVAC, "Europe/Berlin", nominal_kw=10)
    workday = mean_by_local_hour(office, 28, weekend=False)
    weekend = mean_by_local_hour(office, 28, weekend=True)
    assert workday[11] > 2.5 * weekend[11]  # office hours
    assert workday[3] == pytest.approx(weekend[3], rel=0.25)  # nights alike
    heater = model(DeviceKind.WATER_HEATER, "America/New_York")
    w, e = (
        mean_by_local_hour(heater, 28, weekend=False),
        mean_by_local_hour(heater, 28, weekend=True),
    )
    assert w.index(max(w)) < e.index(max(e))  # showers later on weekends


def test_solar_exports_by_day_and_imports_by_night() -> None:
    solar = model(DeviceKind.SOLAR_INVERTER, "Asia/Kolkata", nominal_kw=6)
    hours = mean_by_local_hour(solar, 14)
    assert min(hours[11:14]) < -1.0  # net export around noon
    assert all(h > 0 for h in hours[:5] + hours[20:])  # the house draws at night


def test_every_kind_is_positive_except_solar() -> None:
    t0 = int(START.timestamp())
    for kind in DeviceKind:
        m = model(kind, "Europe/Berlin")
        values = [m.power_kw(t) for t in range(t0, t0 + 7 * 86_400, 900)]
        assert all(abs(v) < 3 * m.spec.nominal_kw for v in values), kind
        if kind is not DeviceKind.SOLAR_INVERTER:
            assert min(values) > 0, kind


def test_noise_is_moderate() -> None:
    """Neighbouring quarter hours differ by noise, not by wild jumps: forecastable structure."""
    m = model(DeviceKind.HOUSEHOLD_METER, "Europe/Berlin")
    t0 = int(START.timestamp())
    values = [m.power_kw(t) for t in range(t0, t0 + 14 * 86_400, 900)]
    steps = [abs(b - a) / a for a, b in pairwise(values)]
    assert statistics.median(steps) < 0.15


@pytest.mark.parametrize(
    ("tz", "start", "offsets"),
    [
        # Spring: Berlin moves from +01:00 to +02:00 at 01:00 UTC on 29 March 2026.
        ("Europe/Berlin", datetime(2026, 3, 29, 0, 0, tzinfo=UTC), {1, 2}),
        # Autumn: back from +02:00 to +01:00 at 01:00 UTC on 25 October 2026.
        ("Europe/Berlin", datetime(2026, 10, 25, 0, 0, tzinfo=UTC), {2, 1}),
        # New York, spring (8 March 2026, 07:00 UTC) and autumn (1 November 2026, 06:00 UTC).
        ("America/New_York", datetime(2026, 3, 8, 6, 0, tzinfo=UTC), {-5, -4}),
        ("America/New_York", datetime(2026, 11, 1, 5, 0, tzinfo=UTC), {-4, -5}),
        # Lord Howe shifts by half an hour: +11:00 -> +10:30 on 4 April 2026 at 15:00 UTC.
        ("Australia/Lord_Howe", datetime(2026, 4, 4, 14, 0, tzinfo=UTC), {11, 10.5}),
    ],
)
def test_readings_across_dst_carry_the_offset_of_each_side(
    tz: str, start: datetime, offsets: set[float]
) -> None:
    m = model(DeviceKind.HOUSEHOLD_METER, tz)
    readings = [m.reading(k, tick_time(start, k, 900), 900) for k in range(8)]
    seen = [r.ts.utcoffset() for r in readings]
    assert {o.total_seconds() / 3600 for o in seen if o is not None} == offsets
    # The offset changes exactly once, at the transition, and every instant stays 15 min apart.
    assert sum(1 for a, b in pairwise(seen) if a != b) == 1
    utc = [r.ts_utc for r in readings]
    assert all(b - a == timedelta(minutes=15) for a, b in pairwise(utc))
    for r in readings:  # and each one is valid on the wire (offset must match the zone)
        decoded = decode_reading(r.to_json(), topic_device_id=r.device_id)
        # (Compared as bytes and instants: an aware datetime in the repeated autumn hour never
        # equals one in another tzinfo, PEP 495.)
        assert decoded.to_json() == r.to_json()
        assert decoded.ts_utc == r.ts_utc


def test_readings_at_odd_offsets() -> None:
    for tz, offset in [
        ("Asia/Kathmandu", "+05:45"),
        ("Asia/Kolkata", "+05:30"),
        ("America/St_Johns", "-02:30"),
    ]:
        r = model(DeviceKind.FRIDGE, tz).reading(0, datetime(2026, 7, 1, 12, 0, tzinfo=UTC), 60)
        assert r.ts.isoformat().endswith(offset)


def test_energy_matches_power_over_interval() -> None:
    m = build_fleet(1, seed=3)[0]
    r = m.reading(0, START, 900)
    assert r.energy.value == pytest.approx(r.power.value * 900 / 3600, rel=1e-3)
    assert r.energy.value == m.energy_kwh(int(START.timestamp()), 900)


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        build_fleet(1, seed=3)[0].reading(0, datetime(2026, 1, 1), 60)  # noqa: DTZ001


def test_an_industrial_line_reports_production_and_its_energy_follows_it() -> None:
    line = model(DeviceKind.INDUSTRIAL_LINE, "Europe/Berlin", nominal_kw=100.0)
    week = datetime(2026, 6, 1, tzinfo=ZoneInfo("Europe/Berlin"))  # a Monday
    readings = [line.reading(k, tick_time(week, k, 900), 900) for k in range(7 * 96)]
    units = [r.production.value for r in readings if r.production is not None]
    energy = [r.energy.value for r in readings]
    assert len(units) == len(readings)
    assert all(u >= 0 for u in units)
    by_day: dict[int, float] = defaultdict(float)
    for r in readings:
        assert r.production is not None
        by_day[r.ts.weekday()] += r.production.value
    assert by_day[5] == by_day[6] == 0.0  # idle at weekends
    assert all(by_day[d] > 0 for d in range(5))
    nights = [u for r, u in zip(readings, units, strict=True) if r.ts.hour < 5]
    assert nights and max(nights) == 0.0
    # Energy = base load + per-unit energy x units (+ noise): a straight line fits it closely.
    slope, intercept = statistics.linear_regression(units, energy)
    assert slope == pytest.approx(line.kwh_per_unit, rel=0.05)
    assert intercept == pytest.approx(100.0 * 0.2 * 900 / 3600, rel=0.05)
    assert statistics.correlation(units, energy) > 0.95
    # Other kinds report no production; the bytes of their readings carry no such field.
    meter = model(DeviceKind.HOUSEHOLD_METER, "Europe/Berlin").reading(0, week, 900)
    assert meter.production is None
    assert b"production" not in meter.to_json()


def test_industrial_lines_come_from_a_fleet_group() -> None:
    fleet = build_fleet(
        3, seed=2, groups=[DeviceGroup(3, kinds=(DeviceKind.INDUSTRIAL_LINE,), zones=("UTC",))]
    )
    assert {m.spec.kind for m in fleet} == {DeviceKind.INDUSTRIAL_LINE}
    assert all(40 <= m.spec.nominal_kw <= 160 for m in fleet)
    assert len({m.kwh_per_unit for m in fleet}) == 3  # each line its own per-unit energy
    decoded = decode_reading(fleet[0].reading(0, datetime(2026, 6, 1, 9, tzinfo=UTC), 60).to_json())
    assert decoded.production is not None
    assert decoded.production.value > 0
