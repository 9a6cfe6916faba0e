"""Fleet files, --anomaly flags, scenarios, durations and how settings resolve into a plan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schema.device_messages import AnomalyKind, LabelSource
from simulator.__main__ import parse_args
from simulator.app import make_plan
from simulator.durations import duration_seconds
from simulator.errors import FleetDefinitionError
from simulator.fleet import DST_ZONES, ODD_OFFSET_ZONES
from simulator.fleetfile import load_fleet_file, parse_anomaly
from simulator.profiles import DeviceKind
from simulator.scenarios import DeliveryFaults, Scenario, delivery_faults, dst_start, fleet_zones
from simulator.settings import SimulatorSettings
from simulator.transport import ConnectionMode

pytestmark = pytest.mark.unit

FLEET = """
seed = 7
interval = "15m"
start = 2026-03-29T00:00:00+01:00
scenarios = ["duplicates", "odd-offsets"]

[faults]
duplicate_p = 0.25

[[group]]
count = 3
kinds = ["fridge"]
zones = ["Asia/Kathmandu"]
nominal_kw = [0.1, 0.2]

[[group]]
count = 2

[[anomaly]]
device = "dev-00004"
kind = "stuck"
after = "1h"
duration = "30m"
"""


@pytest.fixture
def fleet_file(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.toml"
    path.write_text(FLEET)
    return path


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("14d", 14 * 86_400),
        ("6h", 21_600),
        ("1h30m", 5400),
        ("60s", 60),
        ("PT6H", 21_600),
        ("P14D", 14 * 86_400),
        ("3600", 3600),
        ("1w", 604_800),
    ],
)
def test_durations(text: str, seconds: int) -> None:
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "6 hours", "-5s", "h", "1.5s"])
def test_bad_durations_say_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration|negative|whole"):
        duration_seconds(text)


def test_fleet_file(fleet_file: Path) -> None:
    file = load_fleet_file(fleet_file)
    assert (file.seed, file.interval_s, file.devices) == (7, 900, 5)
    assert file.start == datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
    assert file.scenarios == (Scenario.DUPLICATES, Scenario.ODD_OFFSETS)
    assert file.groups[0].kinds == (DeviceKind.FRIDGE,)
    assert file.anomalies[0].kind is AnomalyKind.STUCK
    assert (file.anomalies[0].after_s, file.anomalies[0].duration_s) == (3600, 1800)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sead = 1", r"unknown keys \['sead'\]"),
        ("[[group]]\ncount = 0", r"\[\[group\]\] #1: 'count' must be at least 1"),
        ("[[group]]\ncount = 1\nzones = ['Mars/Base']", r"\[\[group\]\] #1: .*Mars/Base"),
        ("[[group]]\ncount = 1\nkinds = ['toaster']", r"\[\[group\]\] #1: .*toaster"),
        ("[[anomaly]]\nkind = 'spike'", r"\[\[anomaly\]\] #1: missing 'device'"),
        ("[[anomaly]]\ndevice = 'd'\nkind = 'boom'", r"\[\[anomaly\]\] #1: .*boom"),
        ("scenarios = ['chaos']", r"chaos"),
        ("[faults]\nduplicate_p = 2", r"duplicate_p is a probability"),
        ("start = 2026-03-29T00:00:00", r"'start' must be a TOML date-time with a UTC offset"),
        ("seed = ", r"not valid TOML"),
    ],
)
def test_fleet_file_errors_name_the_file_and_entry(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(FleetDefinitionError, match=message) as caught:
        load_fleet_file(path)
    assert str(path) in str(caught.value)


def test_anomaly_flag() -> None:
    planned = parse_anomaly("device=dev-00003,kind=spike,after=2h,duration=15m,magnitude=3")
    assert (
        planned.device_id,
        planned.kind,
        planned.after_s,
        planned.duration_s,
        planned.magnitude,
    ) == (
        "dev-00003",
        AnomalyKind.SPIKE,
        7200,
        900,
        3.0,
    )
    at = parse_anomaly("device=d,kind=dropout,at=2026-03-29T10:00:00+02:00")
    assert at.at_t(0) == int(datetime(2026, 3, 29, 8, 0, tzinfo=UTC).timestamp())
    with pytest.raises(FleetDefinitionError, match="key=value"):
        parse_anomaly("dev-00003:spike")
    with pytest.raises(FleetDefinitionError, match="not both"):
        parse_anomaly("device=d,kind=spike,after=1h,at=2026-03-29T10:00:00+02:00")


def test_scenarios_choose_zones_and_faults() -> None:
    assert fleet_zones([Scenario.ODD_OFFSETS]) == ODD_OFFSET_ZONES
    assert fleet_zones([Scenario.DST]) == DST_ZONES
    assert fleet_zones([Scenario.DST, Scenario.ODD_OFFSETS]) == (
        "Australia/Lord_Howe",
        "America/St_Johns",
    )
    faults = delivery_faults([Scenario.DUPLICATES, Scenario.CLOCK_SKEW], {"duplicate_p": 0.5})
    assert faults == DeliveryFaults(clock_skew_max_s=300, duplicate_p=0.5)
    assert not delivery_faults([Scenario.DST]).any
    with pytest.raises(ValueError, match="unknown delivery fault"):
        delivery_faults([], {"dupes": 1})
    now = int(datetime(2026, 2, 1, tzinfo=UTC).timestamp())
    assert datetime.fromtimestamp(dst_start(now, "Europe/Berlin"), UTC) == datetime(
        2026, 3, 28, 22, 0, tzinfo=UTC
    )


def test_connection_modes() -> None:
    assert ConnectionMode.parse("per-device").connections_for(10_000) == 10_000
    assert ConnectionMode.parse("pooled:16").connections_for(10_000) == 16
    assert ConnectionMode.parse("pooled:16").connections_for(3) == 3
    for bad in ["pooled", "pooled:0", "pool:3", "per_device"]:
        with pytest.raises(ValueError, match="per-device"):
            ConnectionMode.parse(bad)


def test_plan_from_the_fleet_file_with_flags_winning(fleet_file: Path) -> None:
    plan = make_plan(SimulatorSettings(fleet_file=fleet_file, seed=9))
    assert plan.seed == 9  # the flag
    assert plan.interval_s == 900  # the file
    assert plan.start == datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
    assert [m.spec.tz for m in plan.fleet[:3]] == ["Asia/Kathmandu"] * 3
    assert [m.spec.tz for m in plan.fleet[3:]] == list(ODD_OFFSET_ZONES[:2])  # odd-offsets
    assert plan.runtimes[0].faults.duplicate_p == 0.25
    events = [e for _ in range(6) for e in plan.runtimes[4].tick()]
    labels = [e for e in events if not hasattr(e, "seq") and hasattr(e, "label_id")]
    assert len(labels) == 1 and labels[0].source is LabelSource.SCHEDULE  # type: ignore[union-attr]
    with pytest.raises(
        FleetDefinitionError, match="--devices 4 but the fleet file's groups have 5"
    ):
        make_plan(SimulatorSettings(fleet_file=fleet_file, devices=4))


def test_plan_defaults_and_errors() -> None:
    now = datetime(2026, 2, 1, 12, 34, 56, tzinfo=UTC)
    plan = make_plan(SimulatorSettings(backfill=timedelta(hours=6), interval_s=60), now=now)
    assert plan.start == datetime(2026, 2, 1, 6, 34, tzinfo=UTC)
    assert plan.fleet[0].spec.tz == "Europe/Berlin"
    dst = make_plan(SimulatorSettings(scenarios=[Scenario.DST], speed=3600), now=now)
    assert dst.start == datetime(2026, 3, 28, 22, 0, tzinfo=UTC)
    with pytest.raises(FleetDefinitionError, match="needs accelerated time"):
        make_plan(SimulatorSettings(scenarios=[Scenario.DST]), now=now)
    with pytest.raises(FleetDefinitionError, match="unknown device 'dev-99999'"):
        make_plan(SimulatorSettings(anomalies=["device=dev-99999,kind=spike"]), now=now)


def test_environment_names_the_launcher_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "WATTSTREAM_SIM_MQTT_HOST": "broker.example",
        "WATTSTREAM_SIM_MQTT_PORT": "1884",
        "WATTSTREAM_SIM_DEVICES": "20",
        "WATTSTREAM_SIM_BACKFILL": "PT6H",
        "WATTSTREAM_SIM_INTERVAL_S": "60",
        "WATTSTREAM_SIM_MQTT_PASSWORD": "s3cret",
    }.items():
        monkeypatch.setenv(key, value)
    settings = SimulatorSettings()
    assert (settings.mqtt.host, settings.mqtt.port, settings.devices) == (
        "broker.example",
        1884,
        20,
    )
    assert settings.backfill == timedelta(hours=6)
    assert "s3cret" not in repr(settings)
    monkeypatch.setenv("WATTSTREAM_SIM_BACKFILL", "14d")
    assert SimulatorSettings().backfill == timedelta(days=14)


def test_flags() -> None:
    settings = parse_args(
        [
            "--devices=10000",
            "--interval=60s",
            "--connections=pooled:8",
            "--scenario=duplicates",
            "--scenario=clock-skew",
            "--anomaly=device=dev-00001,kind=spike",
            "--mqtt-tls",
            "--labels=/tmp/labels.jsonl",
            "--backfill=14d",
        ]
    )
    assert (settings.devices, settings.interval_s, settings.connections) == (10_000, 60, "pooled:8")
    assert settings.scenarios == [Scenario.DUPLICATES, Scenario.CLOCK_SKEW]
    assert settings.mqtt.tls and settings.backfill == timedelta(days=14)
    assert "seed" not in settings.model_fields_set  # unset flags leave env/file alone
