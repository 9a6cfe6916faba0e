"""``wattstream train``: history -> windows -> one global GRU -> held-out scorecard -> artifact.

1. History: the simulator's own device models, exported by ``python -m simulator history``
   (seeded) into a temporary file, or an existing export given with ``--history``.
2. Windows of 24 consecutive hours + the next hour, per device; split by time into training,
   validation (early stopping) and the held-out test period at the end.
3. Scaler fitted on the training period only; seeded sample of training windows; seeded,
   deterministic TensorFlow; one model for every device kind and zone.
4. Scorecard on the held-out period: the model against seasonal-naive and persistence, overall
   and per device kind.
5. ``artifacts/<model_id>/`` with the model card; ``artifacts/latest``; optionally the
   ``models`` table. The model id is a digest of the trained weights, so the same seed and
   history give the same id.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

from stream.core.horizons import DAILY_TARGETS, TRAJECTORY_HOURS
from stream.forecast import horizon_training, registry
from stream.forecast.artifacts import (
    CALIBRATION_FILE,
    Forecaster,
    latest_model_id,
    read_card,
    write_artifact,
    write_latest,
)
from stream.forecast.baselines import persistence, scorecard, seasonal_naive
from stream.forecast.calibration import MISS_PER_SIDE, IntervalCalibration
from stream.forecast.errors import HistoryError
from stream.forecast.features import (
    HOUR,
    DeviceSeries,
    FeatureSpec,
    ForecastInput,
    Scaler,
    Windows,
    build_windows,
    encode,
)
from stream.forecast.history import (
    ExportRequest,
    as_typed,
    export_command,
    read_history,
    run_export,
    sha256_of,
)
from stream.forecast.progress import Report, silent
from stream.forecast.settings import TrainPlan, TrainSettings

log = logging.getLogger(__name__)

HISTORY_HOURS = 24
PROBES_PER_KIND = 2


@dataclass(frozen=True)
class TrainResult:
    model_id: str
    directory: Path
    card: dict[str, Any]
    forecaster: Forecaster
    """The in-memory model that was written (``loaded_from == "memory"``)."""
    test_windows: Windows


@dataclass(frozen=True)
class Split:
    train: Windows
    validation: Windows
    test: Windows
    validation_from: int
    test_from: int
    end: int


def split_by_time(windows: Windows, validation_days: float, test_days: float) -> Split:
    """Training before validation before the held-out test period (target hours)."""
    end = int(windows.target_hour.max()) + 1
    test_from = end - round(test_days * 24)
    validation_from = test_from - round(validation_days * 24)
    split = Split(
        train=windows.take(windows.target_hour < validation_from),
        validation=windows.take(
            (windows.target_hour >= validation_from) & (windows.target_hour < test_from)
        ),
        test=windows.take(windows.target_hour >= test_from),
        validation_from=validation_from,
        test_from=test_from,
        end=end,
    )
    for name in ("train", "validation", "test"):
        if len(getattr(split, name)) == 0:
            raise HistoryError(f"the history is too short: no {name} windows")
    return split


def evaluate(forecaster: Forecaster, windows: Windows) -> dict[str, Any]:
    """Scorecard of ``forecaster`` on ``windows`` against both baselines, in kWh."""
    spec, scaler = forecaster.spec, forecaster.scaler
    encoded = encode(spec, scaler, windows.history_kwh, windows.kind_index, windows.calendar)
    forecasts = {
        "model": forecaster.forecast_encoded(encoded, windows.kind_index),
        "seasonal_naive": seasonal_naive(windows.history_kwh),
        "persistence": persistence(windows.history_kwh),
    }
    return scorecard(windows.target_kwh, forecasts, windows.kind_index, spec.device_kinds)


def reproduce_command(plan: TrainPlan) -> str:
    """The one command that rebuilds this model from scratch (simulator export included)."""
    flags = [
        "wattstream",
        "train",
        *(["--quick"] if plan.quick else []),
        "--seed", str(plan.seed),
        "--devices", str(plan.devices),
        "--days", f"{plan.days:g}",
        "--start", plan.start.isoformat(),
        "--interval-s", str(plan.interval_s),
        "--validation-days", f"{plan.validation_days:g}",
        "--test-days", f"{plan.test_days:g}",
        "--epochs", str(plan.epochs),
        "--patience", str(plan.patience),
        "--batch-size", str(plan.batch_size),
        "--learning-rate", f"{plan.learning_rate:g}",
        "--max-train-windows", str(plan.max_train_windows),
        "--gru-units", str(plan.gru_units),
        "--dense-units", str(plan.dense_units),
        *([] if plan.residual else ["--no-residual"]),
        "--median-loss", plan.median_loss,
    ]  # fmt: skip
    return shlex.join(flags)


def probe_inputs(
    series: Sequence[DeviceSeries], windows: Windows, spec: FeatureSpec
) -> list[ForecastInput]:
    """A few held-out windows per kind, stored in the card to verify every later load."""
    chosen: list[ForecastInput] = []
    for index, kind in enumerate(spec.device_kinds):
        for row in np.flatnonzero(windows.kind_index == index)[:PROBES_PER_KIND]:
            device = series[int(windows.device[row])]
            chosen.append(
                ForecastInput(
                    device_id=device.device_id,
                    kind=kind,
                    tz=device.tz,
                    next_hour_start=datetime.fromtimestamp(
                        int(windows.target_hour[row]) * 3600, UTC
                    ),
                    history_kwh=tuple(round(float(v), 6) for v in windows.history_kwh[row]),
                )
            )
    return chosen


def _hour_iso(epoch_hour: int) -> str:
    return datetime.fromtimestamp(epoch_hour * 3600, UTC).isoformat()


def data_spec(
    plan: TrainPlan,
    series: Sequence[DeviceSeries],
    history: Path,
    source: dict[str, Any],
    split: Split,
) -> dict[str, Any]:
    kinds: dict[str, int] = {}
    for item in series:
        kinds[item.kind] = kinds.get(item.kind, 0) + 1
    first = min(s.first_hour for s in series)
    last = max(s.first_hour + (s.values.size - 1) * HOUR for s in series)
    return {
        **source,
        "seed": plan.seed,
        "history_sha256": sha256_of(history),
        "hourly_rows": int(sum(int(np.isfinite(s.values).sum()) for s in series)),
        "devices": len(series),
        "devices_per_kind": dict(sorted(kinds.items())),
        "timezones": sorted({s.tz for s in series}),
        "first_hour": first.isoformat(),
        "last_hour": last.isoformat(),
        "hours": "UTC hours per device, as exported; the stream feeds device-local hours",
        "split": {
            "train_until": _hour_iso(split.validation_from),
            "validation_until": _hour_iso(split.test_from),
            "test_until": _hour_iso(split.end),
        },
        "windows": {
            "train": len(split.train),
            "validation": len(split.validation),
            "test": len(split.test),
        },
    }


def train(settings: TrainSettings, command: str, report: Report = silent) -> TrainResult:
    """Run the whole training; ``command`` is the command line, recorded in the card;
    ``report`` gets the progress events (:mod:`stream.forecast.progress`)."""
    plan = TrainPlan.of(settings)
    report({"event": "started", "plan": asdict(plan)})
    report({"event": "stage", "stage": "history"})
    with tempfile.TemporaryDirectory(prefix="wattstream-train-") as scratch:
        if settings.history is not None:
            history = settings.history
            source: dict[str, Any] = {"source": "file", "history_file": str(history)}
        else:
            history = Path(scratch) / "history.jsonl"
            request = ExportRequest(plan.devices, plan.days, plan.seed, plan.start, plan.interval_s)
            argv = export_command(settings.export_command)
            run_export(argv, request, history)
            source = {
                "source": "simulator export",
                "export_command": as_typed([*argv, *request.arguments(Path("HISTORY.jsonl"))]),
                "days": plan.days,
                "start": plan.start.isoformat(),
                "interval_s": plan.interval_s,
            }
        series = read_history(history)
        spec = FeatureSpec(HISTORY_HOURS, tuple(sorted({s.kind for s in series})))
        split = split_by_time(build_windows(spec, series), plan.validation_days, plan.test_days)
        data = data_spec(plan, series, history, source, split)
    return _fit_and_write(
        settings=settings, plan=plan, command=command, spec=spec, series=series, split=split,
        data=data, report=report,
    )  # fmt: skip


def _fit_and_write(
    *,
    settings: TrainSettings,
    plan: TrainPlan,
    command: str,
    spec: FeatureSpec,
    series: Sequence[DeviceSeries],
    split: Split,
    data: dict[str, Any],
    report: Report,
) -> TrainResult:
    from stream.forecast import model as network  # noqa: PLC0415 - TensorFlow only here

    train_windows = split.train
    if len(train_windows) > plan.max_train_windows:
        rng = np.random.default_rng(plan.seed)
        keep = np.sort(rng.choice(len(train_windows), plan.max_train_windows, replace=False))
        train_windows = train_windows.take(keep)
    missing = set(range(len(spec.device_kinds))) - set(np.unique(split.test.kind_index).tolist())
    if missing:
        raise HistoryError(
            f"kinds {[spec.device_kinds[i] for i in sorted(missing)]} have no held-out window"
        )
    scaler = Scaler.fit(spec, train_windows.target_kwh, train_windows.kind_index)

    bounds = horizon_training.Bounds(split.validation_from, split.test_from, split.end)
    network.seed_everything(plan.seed)
    architecture = network.Architecture(
        plan.gru_units, plan.dense_units, TRAJECTORY_HOURS, DAILY_TARGETS, plan.residual
    )
    model = network.build_model(spec, architecture)
    config = network.TrainingConfig(
        plan.epochs, plan.batch_size, plan.learning_rate, plan.patience, plan.median_loss
    )
    fit_on, check_on = horizon_training.training_windows(
        spec, series, bounds, plan.max_train_windows, plan.seed
    )
    log.info(
        "training on %d windows (%d validation, %d held out), %d kinds",
        len(fit_on), len(check_on), len(split.test), len(spec.device_kinds),
    )  # fmt: skip
    report({"event": "stage", "stage": "training", "windows": len(fit_on),
            "validation_windows": len(check_on), "epochs": plan.epochs})  # fmt: skip
    skill = horizon_training.ValidationSkill.of(spec, scaler, check_on, plan.seed)

    def on_epoch(epoch: int, logs: Mapping[str, float]) -> None:
        scores = skill.score(network.hourly_quantiles(model, skill.encoded, architecture))
        report({"event": "epoch", "epoch": epoch, "epochs": plan.epochs,
                "loss": round(logs.get("loss", float("nan")), 6),
                "val_loss": round(logs.get("val_loss", float("nan")), 6), **scores})  # fmt: skip

    started = time.monotonic()
    fitted = network.fit(
        model,
        horizon_training.model_inputs(spec, scaler, fit_on, residual=plan.residual),
        horizon_training.model_inputs(spec, scaler, check_on, residual=plan.residual),
        config,
        on_epoch=None if report is silent else on_epoch,
    )
    report({"event": "stage", "stage": "scoring"})
    seconds = time.monotonic() - started
    model_id = f"gru-{network.weight_digest(model)[:12]}"

    card: dict[str, Any] = {
        "model_id": model_id,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "task": "next-hour energy (kWh) per device from its last 24 closed hours; the next "
        f"{TRAJECTORY_HOURS} hours and {DAILY_TARGETS} days as P10/P50/P90",
        "architecture": architecture.to_dict(),
        "parameters": int(model.count_params()),
        "data": {
            **data,
            "windows": {
                **data["windows"],
                "train_sampled": len(train_windows),
                "horizon_train": len(fit_on),
                "horizon_validation": len(check_on),
            },
        },
        "training": {
            "command": command,
            "reproduce": reproduce_command(plan),
            "seed": plan.seed,
            "quick": plan.quick,
            "deterministic": "keras.utils.set_random_seed + enable_op_determinism",
            "epochs": plan.epochs,
            "patience": plan.patience,
            "batch_size": plan.batch_size,
            "learning_rate": plan.learning_rate,
            "loss": "mse on the scaled next hour + pinball (P10/P90) and "
            + ("pinball" if plan.median_loss == "pinball" else "half the squared error")
            + " (P50) on the scaled hourly and daily heads"
            + (", residual on seasonal-naive" if plan.residual else ""),
            "median_loss": plan.median_loss,
            "seconds": round(seconds, 1),
            **fitted,
        },
        "libraries": network.library_versions(),
    }
    calibrate_on = (horizon_training.calibration_windows(spec, series, bounds), check_on)

    def serve_with(calibration: IntervalCalibration | None) -> Forecaster:
        return Forecaster.from_model(
            model, model_id=model_id, spec=spec, scaler=scaler, card=card, calibration=calibration
        )

    calibration = horizon_training.calibrate(serve_with, *calibrate_on, residual=plan.residual)
    card["calibration"] = {
        "method": (
            "a residual model's hourly P50 blended with its baselines per device kind "
            "and step (least squares), then "
            if plan.residual
            else ""
        )
        + "conformalized quantile regression: the P50's lower and upper half-widths times a "
        "factor per device kind and step, "
        f"{MISS_PER_SIDE:.0%} of the validation actuals below the P10 and as many above the "
        "P90; fitted on the validation windows (the hourly head on every one with 24 hours "
        "of targets, the daily head on those with 7 days); applied in the serving function",
        "file": CALIBRATION_FILE,
        "windows": dict(calibration.windows),
        "validation_uncalibrated": horizon_training.validation_coverage(
            serve_with(None), *calibrate_on
        ),
    }
    forecaster = Forecaster.from_model(
        model, model_id=model_id, spec=spec, scaler=scaler, card=card, calibration=calibration
    )
    card["metrics"] = {
        "held_out": {
            "from": _hour_iso(split.test_from),
            "until": _hour_iso(split.end),
            **evaluate(forecaster, split.test),
        },
        "validation": evaluate(forecaster, split.validation)["overall"],
        "horizons": horizon_training.evaluate_horizons(forecaster, series, bounds),
    }
    card["metrics"]["horizons_summary"] = horizon_training.summary(card["metrics"]["horizons"])
    overall = card["metrics"]["held_out"]["overall"]
    log.info(
        "held-out RMSE %.4f kWh: seasonal-naive %.4f, persistence %.4f (skill %.1f %%)",
        overall["model"]["rmse"],
        overall["seasonal_naive"]["rmse"],
        overall["persistence"]["rmse"],
        100 * overall["skill_vs_seasonal_naive"]["model"],
    )
    report({"event": "stage", "stage": "writing"})
    directory = write_artifact(
        settings.artifacts_dir,
        model=model,
        model_id=model_id,
        spec=spec,
        scaler=scaler,
        card=card,
        probe=probe_inputs(series, split.test, spec),
        calibration=calibration,
    )
    card = read_card(directory)
    if settings.update_latest:
        write_latest(settings.artifacts_dir, model_id)
    if settings.register_url is not None:
        report({"event": "stage", "stage": "registering", "activate": settings.activate})
        url = settings.register_url.get_secret_value()
        asyncio.run(register_and_activate(url, card, activate=settings.activate))
    forecaster.card = card
    return TrainResult(model_id, directory, card, forecaster, split.test)


def register_existing(settings: TrainSettings) -> str:
    """``--skip-training``: verify an existing model loads, then register and activate it."""
    if settings.register_url is None:
        raise ValueError("--skip-training needs --register DATABASE_URL")
    model_id = settings.model_id or latest_model_id(settings.artifacts_dir)
    forecaster = Forecaster.load(settings.artifacts_dir / model_id)
    asyncio.run(register_and_activate(settings.register_url.get_secret_value(), forecaster.card))
    return model_id


async def register_and_activate(
    database_url: str, card: dict[str, Any], *, activate: bool = True
) -> None:
    """Register the model of ``card``; make it the active one unless ``activate`` is false."""
    conn = await asyncpg.connect(database_url)
    try:
        await registry.register(conn, card)
        if activate:
            await registry.activate(conn, card["model_id"])
    finally:
        await conn.close()
    log.info("registered%s model %s", " and activated" if activate else "", card["model_id"])
