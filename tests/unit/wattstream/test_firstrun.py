"""The first run's plan: history then live, planned anomalies where alerts can fire, progress."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schema.commandline import variables
from schema.device_messages import AnomalyKind
from simulator.app import make_plan
from simulator.scenarios import Scenario
from simulator.settings import SimulatorSettings
from wattstream.cli import _audit_defaults
from wattstream.firstrun import (
    FORECAST_HOURS,
    SCORED_HOURS,
    FirstRun,
    Progress,
    ProgressWatch,
    split_scenarios,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 30, 0, 7, 31, tzinfo=UTC)


def test_the_default_history_gives_every_device_forecasts_and_coloured_health() -> None:
    plan = FirstRun()
    assert plan.history == timedelta(days=3)
    assert plan.history_readings == 20 * 3 * 24 * 12  # every 5 minutes
    assert plan.history_hours >= FORECAST_HOURS + SCORED_HOURS + 1
    assert plan.completes_in_history
    assert not FirstRun(history=timedelta(hours=30)).completes_in_history


def test_the_simulator_starts_history_ago_on_the_interval_grid() -> None:
    plan = FirstRun(devices=4, history=timedelta(days=2), interval_s=600)
    start = plan.start(NOW)
    assert start == datetime(2026, 11, 28, 0, 0, tzinfo=UTC)
    assert timedelta(0) <= NOW - plan.history - start < timedelta(seconds=600)


def test_anomalies_come_late_in_the_history_after_enough_scored_hours() -> None:
    plan = FirstRun(devices=5, anomalies=(AnomalyKind.SPIKE, AnomalyKind.DRIFT))
    start = plan.start(NOW)
    specs = plan.anomaly_specs(start)
    assert specs == [
        "device=dev-00001,kind=spike,at=2026-11-29T12:00:00+00:00,duration=3600s,magnitude=3",
        "device=dev-00002,kind=drift,at=2026-11-29T12:00:00+00:00,duration=10800s,magnitude=2",
    ]
    at = datetime.fromisoformat(specs[0].split("at=")[1].split(",")[0])
    # A forecast, a baseline and six scored residuals before it; live time after it.
    assert at - start >= timedelta(hours=FORECAST_HOURS + SCORED_HOURS + 1)
    assert at + timedelta(hours=1) <= NOW
    # A short history puts them as early as alerts allow, on an hour boundary.
    short = FirstRun(history=timedelta(hours=20))
    assert short.anomaly_after() == timedelta(hours=FORECAST_HOURS + SCORED_HOURS + 2)


def test_the_simulator_reads_the_plan_back_as_its_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    plan = FirstRun(
        devices=3,
        history=timedelta(days=2),
        interval_s=900,
        anomalies=(AnomalyKind.SPIKE,),
        scenarios=(Scenario.DUPLICATES,),
        journal=tmp_path / "journal.jsonl",
    )
    for key, value in variables(SimulatorSettings, plan.simulator_values(NOW)).items():
        monkeypatch.setenv(key, value)
    settings = SimulatorSettings()
    assert settings.journal_file == tmp_path / "journal.jsonl"
    assert settings.labels_topic  # the ground truth also goes to the pipeline (alert quality)
    sim = make_plan(settings, now=NOW)
    assert (len(sim.fleet), sim.interval_s, sim.start) == (3, 900, plan.start(NOW))
    assert sim.scenarios == (Scenario.DUPLICATES,)
    assert [bool(r._pending) for r in sim.runtimes] == [False, True, False]


def test_the_plan_refuses_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="anomalies need more"):
        FirstRun(devices=1, anomalies=(AnomalyKind.SPIKE,))
    with pytest.raises(ValueError, match="multiple of the interval"):
        FirstRun(history=timedelta(minutes=7), interval_s=300)


def test_scenario_names_split_into_anomalies_and_delivery_scenarios() -> None:
    assert split_scenarios(["spike", "duplicates", "stuck"]) == (
        (AnomalyKind.SPIKE, AnomalyKind.STUCK),
        (Scenario.DUPLICATES,),
    )
    with pytest.raises(ValueError, match="choose from spike"):
        split_scenarios(["meteor"])


def progress(forecasted: int, coloured: int, hours: int = 20) -> Progress:
    return Progress(
        devices=2,
        readings=50,
        expected_readings=100,
        hours=hours,
        expected_hours=20,
        forecasted=forecasted,
        coloured=coloured,
        alerts=1,
    )


def test_the_dashboard_is_complete_when_every_device_has_a_forecast_and_a_colour() -> None:
    assert not progress(2, 1).complete
    assert not progress(1, 2).complete
    assert not progress(2, 2, hours=19).complete  # history hours still to process
    assert progress(2, 2).complete
    line = progress(1, 0, hours=10).line(12.0)
    assert "readings 50/100" in line
    assert "forecasts 1/2" in line
    assert "health 0/2" in line
    assert line.startswith("[########............]")  # (0.5 + 0.5 + 2 * 0.25) / 4


def test_the_watch_polls_when_due_and_announces_completion_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers = iter([progress(1, 0), progress(2, 2)])
    monkeypatch.setattr("wattstream.firstrun.read_progress", lambda *_: next(answers))
    now = [100.0]
    said: list[str] = []
    watch = ProgressWatch(
        "dsn", FirstRun(devices=2), NOW, "http://h/", said.append, clock=lambda: now[0], began=90
    )
    assert watch() is False
    assert watch() is False  # not due again yet: no poll
    assert len(said) == 1
    now[0] = 105.0
    assert watch() is True
    assert said[-1].startswith("dashboard complete: http://h/ (15 s after the services were up")
    assert watch.completed_after_s == 15.0


def test_audit_defaults_to_the_runs_journal_and_database(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("WATTSTREAM_CLUSTER_HOME", str(tmp_path))
    argv = _audit_defaults([], {})
    journal = tmp_path.resolve() / "run" / "journal.jsonl"
    assert argv[0] == f"--journal={journal}"
    assert argv[1].startswith("--database-url=postgresql://")
    # What is given (flag or variable) is left alone.
    assert _audit_defaults(["--journal", "j"], {"WATTSTREAM_AUDIT_DATABASE_URL": "x"}) == [
        "--journal",
        "j",
    ]
    assert _audit_defaults(["--help"], {}) == ["--help"]
