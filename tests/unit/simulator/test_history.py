"""The hourly history export equals the live readings summed per UTC hour."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schema.history import HourlyEnergy
from schema.wire import Reading
from simulator.__main__ import main
from simulator.behaviour import DeviceRuntime
from simulator.fleet import build_fleet
from simulator.history import hourly_history, read_history

pytestmark = pytest.mark.unit

# Straddles Berlin's spring change (01:00 UTC) and a weekend-to-Monday boundary.
START = datetime(2026, 3, 28, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("interval_s", [900, 300])
def test_export_equals_live_readings_summed_per_utc_hour(interval_s: int) -> None:
    devices, days, seed = 10, 3, 21
    rows = list(hourly_history(devices, days, seed, START, interval_s))
    assert len(rows) == devices * days * 24

    live: dict[tuple[str, datetime], list[float]] = defaultdict(list)
    for model in build_fleet(devices, seed):
        rt = DeviceRuntime(model, start_t=int(START.timestamp()), interval_s=interval_s)
        for _ in range(days * 86_400 // interval_s):
            for event in rt.tick():  # the live path, reading by reading
                assert isinstance(event, Reading)
                hour = event.ts_utc.replace(minute=0, second=0)
                live[event.device_id, hour].append(event.energy.value)

    assert {(r.device_id, r.hour_start) for r in rows} == set(live)
    for row in rows:
        values = live[row.device_id, row.hour_start]
        assert row.readings == len(values) == 3600 // interval_s
        assert row.energy_kwh == round(sum(values), 6)
    kinds = {r.kind for r in rows}
    assert {
        "household_meter",
        "hvac",
        "ev_charger",
        "fridge",
        "water_heater",
        "solar_inverter",
    } <= kinds
    assert any(r.energy_kwh < 0 for r in rows if r.kind == "solar_inverter")


def test_rows_are_per_device_then_hour_and_utc() -> None:
    rows = list(hourly_history(2, 1, 1, START, 900))
    assert [r.device_id for r in rows] == ["dev-00000"] * 24 + ["dev-00001"] * 24
    assert [r.hour_start for r in rows[:24]] == [START + timedelta(hours=h) for h in range(24)]
    assert all(r.hour_start.utcoffset() == timedelta(0) for r in rows)
    assert rows[0].tz == "Europe/Berlin"


def test_a_start_inside_an_hour_gives_a_partial_first_hour() -> None:
    rows = list(hourly_history(1, 1, 1, START + timedelta(minutes=30), 900))
    assert rows[0].readings == 2 and rows[-1].readings == 2


def test_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        list(hourly_history(1, 1, 1, datetime(2026, 1, 1), 900))  # noqa: DTZ001


def test_cli_writes_json_lines(tmp_path: Path) -> None:
    out = tmp_path / "history.jsonl"
    main(
        [
            "history",
            "--devices", "3",
            "--days", "2",
            "--seed", "4",
            "--start", "2026-01-05T00:00:00+00:00",
            "--interval-s", "900",
            "--out", str(out),
        ]
    )  # fmt: skip
    lines = out.read_text().splitlines()
    assert len(lines) == 3 * 2 * 24
    first = HourlyEnergy.model_validate_json(lines[0])
    assert json.loads(lines[0])["hour_start"] == "2026-01-05T00:00:00Z"
    assert first == next(hourly_history(3, 2, 4, datetime(2026, 1, 5, tzinfo=UTC), 900))
    assert list(read_history(out)) == list(
        hourly_history(3, 2, 4, datetime(2026, 1, 5, tzinfo=UTC), 900)
    )
    assert not (tmp_path / "history.jsonl.partial").exists()
