"""The forecaster with real TensorFlow: quick training, artifacts, loading, serving, and the
committed model's proof that it beats seasonal-naive.

TensorFlow is imported once; one quick training run (module fixture) feeds most tests. Its
history is a small synthetic export (two kinds, three zones) so the pipeline is tested without
the simulator; the committed model is checked on a fresh sample from the simulator's own export.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from schema.history import HourlyEnergy
from stream.forecast import ChecksumMismatch, Forecaster, ForecasterLoadError, ForecastInput
from stream.forecast.__main__ import parse_args
from stream.forecast.artifacts import (
    CALIBRATION_FILE,
    CARD_FILE,
    MODEL_FILE,
    SCALER_FILE,
    WEIGHTS_FILE,
    latest_model_id,
    load_latest,
)
from stream.forecast.features import build_windows, epoch_hour
from stream.forecast.history import (
    ExportRequest,
    export_command,
    read_history,
    run_export,
    sha256_of,
)
from stream.forecast.horizon_training import Bounds, evaluate_horizons
from stream.forecast.train import TrainResult, evaluate, train

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ZONES = ("Europe/Berlin", "Asia/Kolkata", "America/New_York")
SKILL_REQUIRED = 0.25


def synthetic_history(path: Path, devices: int = 12, days: int = 30, seed: int = 3) -> Path:
    """Hourly energies with local daily/weekly shapes: household meters and solar inverters."""
    rng = np.random.default_rng(seed)
    start = datetime(2026, 3, 2, tzinfo=UTC)
    with path.open("w") as out:
        for number in range(devices):
            kind = ("household_meter", "solar_inverter")[number % 2]
            tz = ZoneInfo(ZONES[number % len(ZONES)])
            level = rng.uniform(0.5, 3.0)
            for hour in range(days * 24):
                at = start + timedelta(hours=hour)
                local = at.astimezone(tz)
                h = local.hour + local.minute / 60
                if kind == "household_meter":
                    shape = 0.3 + 0.8 * math.exp(-(((h - 19) / 2) ** 2))
                    shape *= 1.2 if local.weekday() >= 5 else 1.0
                else:
                    shape = -max(0.0, math.sin(math.pi * (h - 6) / 12))
                value = level * shape * rng.lognormal(0, 0.1)
                row = HourlyEnergy(
                    device_id=f"syn-{number:03d}",
                    kind=kind,
                    tz=tz.key,
                    hour_start=at,
                    energy_kwh=round(value, 6),
                    readings=4,
                )
                out.write(row.model_dump_json() + "\n")
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("forecast")


@pytest.fixture(scope="module")
def history(workdir: Path) -> Path:
    return synthetic_history(workdir / "history.jsonl")


@pytest.fixture(scope="module")
def quick(workdir: Path, history: Path) -> TrainResult:
    """One ``wattstream train --quick`` run, in this process (TensorFlow loads once)."""
    argv = ["--quick", "--history", str(history), "--artifacts-dir", str(workdir / "artifacts")]
    return train(*parse_args(argv))


@pytest.fixture
def artifact_copy(quick: TrainResult, tmp_path: Path) -> Path:
    """A copy of the quick model's directory to damage."""
    return Path(shutil.copytree(quick.directory, tmp_path / quick.model_id))


def probe_windows(forecaster: Forecaster) -> list[ForecastInput]:
    """The card's probe inputs plus the same histories at other hours (a batch of mixed rows)."""
    base = [
        ForecastInput(
            device_id=p["device_id"],
            kind=p["kind"],
            tz=p["tz"],
            next_hour_start=datetime.fromisoformat(p["next_hour_start"]),
            history_kwh=p["history_kwh"],
        )
        for p in forecaster.card["probe"]
    ]
    shifted = [
        ForecastInput(
            w.device_id, w.kind, w.tz, w.next_hour_start + timedelta(hours=k), w.history_kwh
        )
        for w in base
        for k in (1, 7, 30)
    ]
    return base + shifted


def test_quick_training_writes_a_complete_artifact(quick: TrainResult) -> None:
    files = sorted(p.name for p in quick.directory.iterdir())
    checksummed = {MODEL_FILE, WEIGHTS_FILE, SCALER_FILE, "feature_spec.json", CALIBRATION_FILE}
    assert files == sorted([*checksummed, CARD_FILE])
    assert latest_model_id(quick.directory.parent) == quick.model_id
    card = json.loads((quick.directory / CARD_FILE).read_text())
    assert card["model_id"] == quick.model_id
    assert card["training"]["quick"] is True and card["training"]["seed"] == 7
    assert card["training"]["reproduce"].startswith("wattstream train --quick --seed 7")
    assert card["data"]["source"] == "file" and len(card["data"]["history_sha256"]) == 64
    assert card["feature_spec"]["device_kinds"] == ["household_meter", "solar_inverter"]
    held_out = card["metrics"]["held_out"]
    assert set(held_out["per_kind"]) == {"household_meter", "solar_inverter"}
    for name in ("model", "seasonal_naive", "persistence"):
        assert held_out["overall"][name]["rmse"] > 0
    assert set(card["libraries"]) >= {"tensorflow", "keras", "numpy", "python"}
    assert set(card["files"]) == checksummed
    assert sum(p.stat().st_size for p in quick.directory.iterdir()) < 1_000_000


def test_load_then_predict_equals_the_in_memory_model(quick: TrainResult) -> None:
    loaded = load_latest(quick.directory.parent)
    assert loaded.loaded_from == MODEL_FILE and loaded.model_id == quick.model_id
    assert quick.forecaster.loaded_from == "memory"
    windows = probe_windows(loaded)
    got, want = loaded.forecast(windows), quick.forecaster.forecast(windows)
    assert got.shape == (len(windows),)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    # Different hours of the same history give different forecasts: the calendar is used.
    assert np.unique(np.round(got, 6)).size > len(windows) // 2


def test_loaded_model_scores_like_the_card(quick: TrainResult) -> None:
    loaded = Forecaster.load(quick.directory)
    card = quick.card["metrics"]["held_out"]
    again = evaluate(loaded, quick.test_windows)
    assert again["overall"]["model"]["rmse"] == pytest.approx(card["overall"]["model"]["rmse"])


def test_weights_fallback_when_the_full_model_does_not_deserialize(artifact_copy: Path) -> None:
    # A model.keras that matches its checksum but does not load (as with version skew) ...
    (artifact_copy / MODEL_FILE).write_bytes(b"PK\x03\x04 not really a keras archive")
    card = json.loads((artifact_copy / CARD_FILE).read_text())
    card["files"][MODEL_FILE] = sha256_of(artifact_copy / MODEL_FILE)
    (artifact_copy / CARD_FILE).write_text(json.dumps(card))
    rebuilt = Forecaster.load(artifact_copy)
    assert rebuilt.loaded_from == WEIGHTS_FILE
    # ... and one that is simply corrupt (checksum fails): both end on the verified weights.
    (artifact_copy / MODEL_FILE).write_bytes(b"garbage")
    assert Forecaster.load(artifact_copy).loaded_from == WEIGHTS_FILE
    windows = probe_windows(rebuilt)
    expected = [p["expected_kwh"] for p in rebuilt.card["probe"]]
    np.testing.assert_allclose(rebuilt.forecast(windows)[: len(expected)], expected, rtol=1e-5)


def test_a_bad_checksum_is_refused(artifact_copy: Path) -> None:
    scaler = artifact_copy / SCALER_FILE
    data = json.loads(scaler.read_text())
    data["by_kind"]["household_meter"]["mean"] += 0.1  # valid JSON, wrong numbers
    scaler.write_text(json.dumps(data))
    with pytest.raises(ChecksumMismatch, match=r"scaler\.json"):
        Forecaster.load(artifact_copy)


def test_nothing_loadable_fails_loudly_naming_both_files(artifact_copy: Path) -> None:
    (artifact_copy / MODEL_FILE).write_bytes(b"garbage")
    with (artifact_copy / WEIGHTS_FILE).open("r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00" * 16)
    with pytest.raises(ForecasterLoadError) as raised:
        Forecaster.load(artifact_copy)
    assert MODEL_FILE in str(raised.value) and WEIGHTS_FILE in str(raised.value)
    with pytest.raises(ForecasterLoadError, match="latest"):
        load_latest(artifact_copy)  # no latest file in a model directory


def test_serving_is_one_graph_for_every_batch_size_and_thread_safe(quick: TrainResult) -> None:
    loaded = Forecaster.load(quick.directory)
    serve = loaded.serve
    traced = serve.tracing_count()  # type: ignore[attr-defined]
    windows = probe_windows(loaded)
    expected = loaded.forecast(windows)
    for size in (1, 3, len(windows)):
        np.testing.assert_allclose(loaded.forecast(windows[:size]), expected[:size], rtol=1e-6)
    assert loaded.forecast([]).shape == (0,)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: loaded.forecast(windows), range(16)))
    for result in results:
        np.testing.assert_allclose(result, expected, rtol=1e-6)
    assert serve.tracing_count() == traced  # type: ignore[attr-defined]


def test_quick_model_forecasts_ordered_horizons_in_the_same_graph(quick: TrainResult) -> None:
    loaded = Forecaster.load(quick.directory)
    assert loaded.multi_horizon and loaded.horizon_steps == (24, 7)
    serve = loaded.serve
    traced = serve.tracing_count()  # type: ignore[attr-defined]
    windows = probe_windows(loaded)
    out = loaded.forecast_horizons(windows)
    assert out.hourly_kwh.shape == (len(windows), 24, 3)
    assert out.daily_kwh.shape == (len(windows), 7, 3)
    assert np.all(np.diff(out.hourly_kwh, axis=-1) >= 0)  # P10 <= P50 <= P90
    assert np.all(np.diff(out.daily_kwh, axis=-1) >= 0)
    assert np.all(out.hourly_kwh[..., 2] - out.hourly_kwh[..., 0] > 0)  # a real interval
    np.testing.assert_allclose(out.next_hour_kwh, loaded.forecast(windows), rtol=1e-6)
    one = loaded.forecast_horizons(windows[:1])
    np.testing.assert_allclose(one.hourly_kwh[0], out.hourly_kwh[0], rtol=1e-5, atol=1e-6)
    assert loaded.forecast_horizons([]).hourly_kwh.shape == (0, 24, 3)
    assert serve.tracing_count() == traced  # type: ignore[attr-defined]


def test_quick_model_card_scores_every_horizon_per_kind(quick: TrainResult) -> None:
    horizons = quick.card["metrics"]["horizons"]
    assert quick.card["architecture"]["horizon_hours"] == 24
    hourly, daily = horizons["hourly"], horizons["daily"]
    assert set(hourly["overall"]["steps"]) == {f"{h}h" for h in range(1, 25)}  # JSON: sorted
    assert set(daily["overall"]["steps"]) == {f"{d}d" for d in range(1, 8)}
    assert set(hourly["per_kind"]) == {"household_meter", "solar_inverter"}
    for step in [*hourly["overall"]["steps"].values(), *daily["overall"]["steps"].values()]:
        assert step["n"] > 0 and step["model_rmse"] > 0
        assert {"seasonal_naive_rmse", "persistence_rmse"} <= set(step)
        assert 0 <= step["coverage_p10_p90"] <= 1
    summary = quick.card["metrics"]["horizons_summary"]
    assert set(summary) == {"hourly", "daily"}


def test_served_intervals_are_the_calibrated_ones_the_card_scores(
    quick: TrainResult, history: Path
) -> None:
    """The calibration is stored with the model and applied in the serving graph: the loaded
    model scores the held-out period exactly as the card says, and the calibration moved the
    forecasts (the same weights uncalibrated serve other ones)."""
    import keras  # noqa: PLC0415 - TensorFlow is loaded by the quick run already

    loaded = Forecaster.load(quick.directory)
    assert loaded.calibration is not None
    stored = json.loads((quick.directory / CALIBRATION_FILE).read_text())
    assert set(stored["hourly"]) == {"household_meter", "solar_inverter"}
    assert len(stored["hourly"]["solar_inverter"]) == 24
    assert len(stored["daily"]["solar_inverter"]) == 7
    split = quick.card["data"]["split"]
    bounds = Bounds(
        *(
            epoch_hour(datetime.fromisoformat(split[k]))
            for k in ("train_until", "validation_until", "test_until")
        )
    )
    again = evaluate_horizons(loaded, read_history(history), bounds)
    card = quick.card["metrics"]["horizons"]
    for name in ("hourly", "daily"):
        for kind, scores in again[name]["per_kind"].items():
            want = card[name]["per_kind"][kind]
            assert scores["coverage_p10_p90"] == pytest.approx(want["coverage_p10_p90"])
            assert scores["worst_skill_vs_better_baseline"] == pytest.approx(
                want["worst_skill_vs_better_baseline"], abs=1e-9
            )
    model = keras.saving.load_model(quick.directory / MODEL_FILE, compile=False)
    bare = Forecaster.from_model(
        model, model_id="bare", spec=loaded.spec, scaler=loaded.scaler, card=loaded.card
    )
    windows = probe_windows(loaded)
    served, raw = loaded.forecast_horizons(windows), bare.forecast_horizons(windows)
    # The first hour is the next-hour head's in both; the blend moved the later P50s, the
    # factors the widths.
    np.testing.assert_allclose(served.hourly_kwh[:, 0, 1], served.next_hour_kwh, rtol=1e-5)
    np.testing.assert_allclose(raw.hourly_kwh[:, 0, 1], served.next_hour_kwh, rtol=1e-5)
    assert not np.allclose(served.hourly_kwh[:, 1:, 1], raw.hourly_kwh[:, 1:, 1], rtol=1e-3)
    width = np.diff(served.hourly_kwh[..., ::2], axis=-1)
    assert not np.allclose(width, np.diff(raw.hourly_kwh[..., ::2], axis=-1), rtol=1e-3)


def test_training_is_reproducible_from_the_seed(
    quick: TrainResult, history: Path, tmp_path: Path
) -> None:
    argv = ["--quick", "--history", str(history), "--artifacts-dir", str(tmp_path), "--no-latest"]
    again = train(*parse_args(argv))
    assert again.model_id == quick.model_id  # the id is a digest of the trained weights
    assert not (tmp_path / "latest").exists()
    windows = probe_windows(again.forecaster)
    np.testing.assert_array_equal(
        again.forecaster.forecast(windows), quick.forecaster.forecast(windows)
    )


# ---------------------------------------------------------------------------------------------
# The committed model


@pytest.fixture(scope="module")
def committed() -> Forecaster:
    return load_latest(REPO / "artifacts")


def test_committed_model_card_beats_seasonal_naive_by_a_quarter(committed: Forecaster) -> None:
    card = committed.card
    assert card["training"]["quick"] is False
    held_out = card["metrics"]["held_out"]
    assert set(held_out["per_kind"]) == set(committed.spec.device_kinds)
    for scope in [held_out["overall"], *held_out["per_kind"].values()]:
        assert scope["model"]["rmse"] <= (1 - SKILL_REQUIRED) * scope["seasonal_naive"]["rmse"]
        assert scope["model"]["rmse"] < scope["persistence"]["rmse"]
    size = sum(p.stat().st_size for p in (REPO / "artifacts" / committed.model_id).iterdir())
    assert size < 1_000_000


def simulator_export() -> list[str]:
    """The export command; a broken one fails the tests that need it (never a skip)."""
    command = export_command(os.environ.get("WATTSTREAM_TRAIN_EXPORT_COMMAND"))
    probe = subprocess.run([*command, "--help"], capture_output=True, text=True, check=False)
    shown = f"`{' '.join(command)} --help` exited {probe.returncode}"
    assert probe.returncode == 0, f"{shown}:\n{probe.stderr[-2000:]}"
    assert "--out" in probe.stdout, f"{shown} without --out:\n{probe.stdout}"
    return command


@pytest.fixture(scope="module")
def fresh_sample(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A held-out sample the model never saw: another seed, a later period."""
    command = simulator_export()
    out = tmp_path_factory.mktemp("fresh") / "history.jsonl"
    request = ExportRequest(
        devices=42, days=9, seed=20_261_124, start=datetime(2026, 6, 1, tzinfo=UTC)
    )
    run_export(command, request, out)
    yield out


def test_committed_model_beats_seasonal_naive_on_a_fresh_seed(
    committed: Forecaster, fresh_sample: Path
) -> None:
    series = read_history(fresh_sample)
    unknown = {s.kind for s in series} - set(committed.spec.device_kinds)
    assert not unknown, (
        f"the simulator has kinds {sorted(unknown)} the committed model does not know: "
        f"re-run `{committed.card['training']['reproduce']}`"
    )
    scores = evaluate(committed, build_windows(committed.spec, series))
    for name, scope in [("overall", scores["overall"]), *scores["per_kind"].items()]:
        skill = scope["skill_vs_seasonal_naive"]["model"]
        assert skill >= SKILL_REQUIRED, f"{name}: RMSE only {skill:.1%} below seasonal-naive"


def test_committed_model_intervals_hold_their_coverage_on_a_fresh_seed(
    committed: Forecaster, fresh_sample: Path
) -> None:
    """The served P10-P90 intervals (calibrated on the training history's validation period)
    hold 80 % +- 5 % of a sample the model never saw: another seed, months later (June; the
    training history ends in April). Over the fleet only: per kind the season shows (June's
    solar inverters, far above anything trained on, fall out of their intervals more often;
    docs/forecasting.md has the figures)."""
    assert committed.multi_horizon, "the committed model forecasts no horizons"
    series = read_history(fresh_sample)
    first = min(epoch_hour(s.first_hour) for s in series)
    end = max(epoch_hour(s.first_hour) + s.values.size for s in series)
    hourly = evaluate_horizons(committed, series, Bounds(first, first, end))["hourly"]
    low, high = hourly["coverage_target"]
    assert low <= hourly["overall"]["coverage_p10_p90"] <= high
