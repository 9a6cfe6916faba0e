from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from simulator.devices import DeviceKind, DeviceModel, DeviceSpec, tick_time
from simulator.fleet import FLEET_ZONES, build_fleet

pytestmark = pytest.mark.unit

START = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)


def test_same_seed_same_bytes() -> None:
    a = [m.reading(3, START, 60).to_json() for m in build_fleet(20, seed=7)]
    b = [m.reading(3, START, 60).to_json() for m in build_fleet(20, seed=7)]
    c = [m.reading(3, START, 60).to_json() for m in build_fleet(20, seed=8)]
    assert a == b
    assert a != c


def test_fleet_covers_odd_offsets() -> None:
    zones = {m.spec.tz for m in build_fleet(len(FLEET_ZONES), seed=1)}
    assert {"Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe"} <= zones


def test_readings_across_dst_carry_both_offsets() -> None:
    model = DeviceModel(DeviceSpec("d", DeviceKind.HOUSEHOLD_METER, "Europe/Berlin", 2.0), seed=1)
    offsets = {model.reading(k, tick_time(START, k, 900), 900).ts.utcoffset() for k in range(8)}
    assert offsets == {timedelta(hours=1), timedelta(hours=2)}


def test_energy_matches_power_over_interval() -> None:
    model = build_fleet(1, seed=3)[0]
    r = model.reading(0, START, 900)
    assert r.energy.value == pytest.approx(r.power.value * 900 / 3600, rel=1e-3)


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        build_fleet(1, seed=3)[0].reading(0, datetime(2026, 1, 1), 60)  # noqa: DTZ001
