"""Reading the history export, splitting it in time, and resolving the training settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from schema.history import HourlyEnergy
from stream.forecast.__main__ import parse_args
from stream.forecast.errors import HistoryError
from stream.forecast.features import FeatureSpec, build_windows
from stream.forecast.history import ExportRequest, as_typed, default_export_command, read_history
from stream.forecast.settings import QUICK, TrainPlan, TrainSettings
from stream.forecast.train import reproduce_command, split_by_time

pytestmark = pytest.mark.unit

START = datetime(2026, 1, 5, tzinfo=UTC)


def line(device: str, hour: int, kwh: float, kind: str = "fridge", tz: str = "UTC") -> str:
    return HourlyEnergy(
        device_id=device,
        kind=kind,
        tz=tz,
        hour_start=START + timedelta(hours=hour),
        energy_kwh=kwh,
        readings=4,
    ).model_dump_json()


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_history_becomes_gap_aware_series_per_device(tmp_path: Path) -> None:
    lines = [line("b", h, float(h), tz="Asia/Kolkata") for h in (3, 0, 1)]  # unordered, 2 missing
    lines += [line("a", h, 10.0 + h, kind="hvac") for h in range(5)]
    series = read_history(write(tmp_path / "h.jsonl", lines))
    assert [s.device_id for s in series] == ["a", "b"]
    a, b = series
    assert (a.kind, a.tz, a.first_hour) == ("hvac", "UTC", START)
    np.testing.assert_array_equal(a.values, [10, 11, 12, 13, 14])
    np.testing.assert_array_equal(b.values, [0, 1, np.nan, 3])
    assert b.first_hour == START and b.first_hour.tzinfo is not None


@pytest.mark.parametrize(
    ("lines", "match"),
    [
        ([line("a", 0, 1.0), "{not json"], r"h\.jsonl:2: not an HourlyEnergy"),
        ([line("a", 0, 1.0), line("a", 0, 2.0)], "same hour twice"),
        ([line("a", 0, 1.0), line("a", 1, 1.0, kind="hvac")], "changes kind"),
        ([line("a", 0, 1.0).replace("T00:00:00Z", "T00:15:00Z")], "not on a UTC hour"),
        ([], "no history"),
    ],
)
def test_bad_history_is_refused_with_its_line(tmp_path: Path, lines: list[str], match: str) -> None:
    with pytest.raises(HistoryError, match=match):
        read_history(write(tmp_path / "h.jsonl", lines))


def test_split_puts_the_held_out_period_last(tmp_path: Path) -> None:
    lines = [line("a", h, 1.0 + (h % 24)) for h in range(10 * 24)]
    spec = FeatureSpec(24, ("fridge",))
    windows = build_windows(spec, read_history(write(tmp_path / "h.jsonl", lines)))
    split = split_by_time(windows, validation_days=2, test_days=3)
    assert len(split.test) == 72 and len(split.validation) == 48
    assert len(split.train) == len(windows) - 120
    assert split.train.target_hour.max() < split.validation.target_hour.min()
    assert split.validation.target_hour.max() < split.test.target_hour.min()
    with pytest.raises(HistoryError, match="no train windows"):
        split_by_time(windows, validation_days=3, test_days=6)


def test_quick_replaces_defaults_but_not_explicit_choices() -> None:
    plan = TrainPlan.of(TrainSettings(quick=True, epochs=2))
    assert plan.epochs == 2
    assert plan.devices == QUICK["devices"] and plan.days == QUICK["days"]
    assert TrainPlan.of(TrainSettings()).devices == 140


def test_reproduce_command_round_trips_through_the_cli() -> None:
    plan = TrainPlan.of(TrainSettings(quick=True, seed=11))
    argv = reproduce_command(plan).split()[2:]
    assert TrainPlan.of(parse_args(argv)[0]) == plan


def test_recorded_command_hides_the_database_url() -> None:
    url = "postgresql://u:secret@h/db"
    settings, command = parse_args(["--quick", "--register", url])
    assert settings.register_url is not None and settings.register_url.get_secret_value() == url
    assert "secret" not in command and "--register DATABASE_URL" in command
    assert "secret" not in parse_args([f"--register={url}"])[1]


def test_export_arguments_are_the_simulator_flags() -> None:
    request = ExportRequest(devices=3, days=1.5, seed=9, start=START, interval_s=60)
    assert request.arguments(Path("out.jsonl")) == [
        "--devices", "3", "--days", "1.5", "--seed", "9", "--start", "2026-01-05T00:00:00+00:00",
        "--interval-s", "60", "--out", "out.jsonl",
    ]  # fmt: skip


def test_the_card_records_the_export_as_a_user_would_type_it() -> None:
    argv = [*default_export_command(), "--devices", "3", "--out", "HISTORY.jsonl"]
    assert as_typed(argv) == "python -m simulator history --devices 3 --out HISTORY.jsonl"
    assert as_typed(["/opt/sim", "--out", "a b"]) == "/opt/sim --out 'a b'"  # a custom command
