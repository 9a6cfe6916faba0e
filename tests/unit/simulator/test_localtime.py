from __future__ import annotations

import statistics
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from simulator.fleet import FLEET_ZONES
from simulator.localtime import local_datetime, next_transition, utc_offset_s
from simulator.randomness import mix64, normal, stable_key, uniform

pytestmark = pytest.mark.unit


def zoneinfo_offset(zone: str, t: int) -> int:
    offset = datetime.fromtimestamp(t, ZoneInfo(zone)).utcoffset()
    assert offset is not None
    return int(offset.total_seconds())


@pytest.mark.parametrize("zone", [*FLEET_ZONES, "Australia/Sydney", "Europe/Dublin"])
def test_offsets_equal_zoneinfo_around_every_transition(zone: str) -> None:
    t = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp())
    end = int(datetime(2028, 1, 1, tzinfo=UTC).timestamp())
    checked = 0
    while True:
        try:
            change = next_transition(zone, t)
        except ValueError:
            break  # a zone without DST
        if change >= end:
            break
        assert zoneinfo_offset(zone, change - 1) != zoneinfo_offset(zone, change)
        for probe in range(change - 7200, change + 7200, 61):
            assert utc_offset_s(zone, probe) == zoneinfo_offset(zone, probe), probe
        t = change
        checked += 1
    # Between transitions too (hourly samples over three years).
    for probe in range(int(datetime(2025, 1, 1, tzinfo=UTC).timestamp()), end, 3600 * 7 + 13):
        assert utc_offset_s(zone, probe) == zoneinfo_offset(zone, probe)
    if zone in {"Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/St_Johns"}:
        assert checked == 6  # two a year


def test_next_transition_of_berlin() -> None:
    t = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    assert datetime.fromtimestamp(next_transition("Europe/Berlin", t), UTC) == datetime(
        2026, 3, 29, 1, 0, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="does not change"):
        next_transition("Asia/Kolkata", t)


def test_local_datetime_carries_the_zone_offset() -> None:
    at = local_datetime("Asia/Kathmandu", int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()))
    assert at.isoformat() == "2026-01-01T05:45:00+05:45"


def test_counter_based_randomness_is_stable_and_well_spread() -> None:
    assert stable_key("device", 1, "dev-00000") == stable_key("device", 1, "dev-00000")
    assert stable_key("device", 1, "dev-00000") != stable_key("device", 2, "dev-00000")
    key = stable_key("test")
    assert mix64(key, 5) == mix64(key, 5) != mix64(key, 6)
    uniforms = [uniform(key, i) for i in range(20_000)]
    assert min(uniforms) >= 0 and max(uniforms) < 1
    assert statistics.fmean(uniforms) == pytest.approx(0.5, abs=0.01)
    normals = [normal(key, i) for i in range(20_000)]
    assert statistics.fmean(normals) == pytest.approx(0, abs=0.03)
    assert statistics.pstdev(normals) == pytest.approx(1, abs=0.03)
