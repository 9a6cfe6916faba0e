"""Versioned model artifacts on disk, and the :class:`Forecaster` that serves one.

Layout::

    artifacts/
      latest                    text file: the served model's id (portable, not a symlink)
      <model_id>/
        model.keras             the full Keras model
        model.weights.h5        the same weights alone (fallback when model.keras won't load)
        scaler.json             per-kind scaling          (JSON, never pickle)
        feature_spec.json       what the inputs mean
        calibration.json        a calibrated multi-horizon model's interval width factors
        model_card.json         data spec and exact command, metrics, baselines, library
                                versions, sha256 of every other file, a probe

Loading verifies checksums first, then tries the full model, then rebuilds the architecture
from the card and loads the weights; each candidate must reproduce the card's probe forecasts.
If none works it raises :class:`ForecasterLoadError` naming every reason: a worker fails at
start-up rather than serving a model it cannot trust. TensorFlow is imported on load only.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stream.forecast.calibration import IntervalCalibration
from stream.forecast.errors import ChecksumMismatch, ForecasterLoadError, UnsupportedInput
from stream.forecast.features import (
    Encoded,
    FeatureSpec,
    FloatArray,
    ForecastInput,
    Scaler,
    encode_inputs,
    inverse_scale,
)
from stream.forecast.history import sha256_of
from stream.forecast.trajectories import DAY_HOURS, unscale_quantiles

if TYPE_CHECKING:
    import keras

    from stream.forecast.model import Architecture

log = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
WEIGHTS_FILE = "model.weights.h5"
SCALER_FILE = "scaler.json"
SPEC_FILE = "feature_spec.json"
CARD_FILE = "model_card.json"
CALIBRATION_FILE = "calibration.json"
LATEST_FILE = "latest"
CHECKSUMMED = (MODEL_FILE, WEIGHTS_FILE, SCALER_FILE, SPEC_FILE)
MODEL_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
PROBE_TOLERANCE = 1e-4
"""Largest difference (kWh, plus the same relative) a reloaded model may show on the probe."""


class Forecaster:
    """A loaded model with its scaler and feature spec; :meth:`forecast` is thread-safe."""

    def __init__(
        self,
        *,
        model_id: str,
        spec: FeatureSpec,
        scaler: Scaler,
        serve: Callable[[Encoded], FloatArray],
        card: dict[str, Any],
        loaded_from: str,
        serve_all: Callable[[Encoded], tuple[FloatArray, ...]] | None = None,
        calibration: IntervalCalibration | None = None,
    ) -> None:
        self.model_id = model_id
        self.spec = spec
        self.scaler = scaler
        self.card = card
        self.loaded_from = loaded_from
        """``model.keras``, ``model.weights.h5`` or ``memory``."""
        self.serve = serve
        """The batched model call on encoded windows (a ``ServingFunction`` for a real model)."""
        self.serve_all = serve_all
        """A multi-horizon model's call: scaled next hour, hourly and daily quantiles at once."""
        self.calibration = calibration
        """The interval width factors the serving call applies (None: uncalibrated)."""

    @classmethod
    def load(cls, directory: Path) -> Forecaster:
        """Load ``artifacts/<model_id>``; raise :class:`ForecasterLoadError` if it can't serve."""
        return _load(directory)

    @classmethod
    def from_model(
        cls,
        model: keras.Model,
        *,
        model_id: str,
        spec: FeatureSpec,
        scaler: Scaler,
        card: dict[str, Any],
        loaded_from: str = "memory",
        calibration: IntervalCalibration | None = None,
    ) -> Forecaster:
        """Serve a Keras model: the trainer's in memory, or one just loaded from a file.

        The card's ``architecture`` says whether the horizons are residual on seasonal-naive;
        ``calibration`` scales the intervals in the serving function."""
        from stream.forecast.model import ServingFunction  # noqa: PLC0415 - TensorFlow on demand

        residual = bool(card.get("architecture", {}).get("residual", False))
        function = ServingFunction(model, spec, residual=residual, calibration=calibration)
        return cls(
            model_id=model_id,
            spec=spec,
            scaler=scaler,
            serve=function,
            card=card,
            loaded_from=loaded_from,
            serve_all=function.outputs if function.multi_horizon else None,
            calibration=calibration,
        )

    def supports(self, kind: str) -> bool:
        return kind in self.spec.device_kinds

    @property
    def multi_horizon(self) -> bool:
        """Whether the model forecasts the hourly trajectory and daily totals too."""
        return self.serve_all is not None

    def forecast_horizons(self, windows: Sequence[ForecastInput]) -> MultiHorizon:
        """Next hour, hourly trajectory and daily totals of each input: one batched call.

        Raises ``ValueError`` for a next-hour-only model and
        :class:`~stream.forecast.errors.UnsupportedInput` as :meth:`forecast` does.
        """
        encoded = encode_inputs(self.spec, self.scaler, windows)
        return self.horizons_encoded(encoded, _kind_indices(self.spec, windows))

    def horizons_encoded(self, encoded: Encoded, kind_index: np.ndarray) -> MultiHorizon:
        if self.serve_all is None:
            raise ValueError(f"model {self.model_id} forecasts the next hour only")
        if len(encoded) == 0:
            hours, days = self.horizon_steps
            empty = np.empty((0, 0, 3))
            return MultiHorizon(np.empty(0), empty.reshape(0, hours, 3), empty.reshape(0, days, 3))
        next_hour, hourly, daily = self.scaled_horizons(encoded)
        spec, scaler = self.spec, self.scaler
        return MultiHorizon(
            next_hour_kwh=inverse_scale(spec, scaler, next_hour, kind_index),
            hourly_kwh=unscale_quantiles(spec, scaler, hourly, kind_index),
            daily_kwh=unscale_quantiles(spec, scaler, daily, kind_index, hours=DAY_HOURS),
        )

    def scaled_horizons(self, encoded: Encoded) -> tuple[FloatArray, FloatArray, FloatArray]:
        """The serving call's scaled next hour [n], hourly [n, hours, 3], daily [n, days, 3]."""
        if self.serve_all is None:
            raise ValueError(f"model {self.model_id} forecasts the next hour only")
        next_hour, hourly, daily = self.serve_all(encoded)
        return next_hour, hourly, daily

    @property
    def horizon_steps(self) -> tuple[int, int]:
        """(hourly trajectory length, daily totals) of a multi-horizon model; (0, 0) if not."""
        architecture = self.card.get("architecture", {})
        return int(architecture.get("horizon_hours", 0)), int(architecture.get("horizon_days", 0))

    def forecast(self, windows: Sequence[ForecastInput]) -> FloatArray:
        """kWh of each input's next hour, in input order: one batched model call.

        Raises :class:`~stream.forecast.errors.UnsupportedInput` (before any model call) if an
        input has an unknown kind, fewer than ``spec.history_hours`` values, a non-finite value
        or a naive time.
        """
        encoded = encode_inputs(self.spec, self.scaler, windows)
        return self.forecast_encoded(encoded, _kind_indices(self.spec, windows))

    def forecast_encoded(self, encoded: Encoded, kind_index: np.ndarray) -> FloatArray:
        """Like :meth:`forecast` for already-encoded windows (training, evaluation, benchmarks)."""
        return inverse_scale(self.spec, self.scaler, self.serve(encoded), kind_index)


@dataclass(frozen=True)
class MultiHorizon:
    """kWh forecasts of a batch: P10/P50/P90 on the last axis of the horizons."""

    next_hour_kwh: FloatArray
    """[n]: the next-hour head (the same value :meth:`Forecaster.forecast` gives)."""
    hourly_kwh: FloatArray
    """[n, hours, 3]: each hour of the trajectory."""
    daily_kwh: FloatArray
    """[n, days, 3]: totals of consecutive 24-hour blocks from the issue time."""


def _kind_indices(spec: FeatureSpec, windows: Sequence[ForecastInput]) -> np.ndarray:
    return np.array([spec.kind_index(w.kind) for w in windows], dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# Writing


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_artifact(
    root: Path,
    *,
    model: keras.Model,
    model_id: str,
    spec: FeatureSpec,
    scaler: Scaler,
    card: dict[str, Any],
    probe: Sequence[ForecastInput],
    calibration: IntervalCalibration | None = None,
) -> Path:
    """Write ``root/<model_id>/`` completely, then move it into place (never half a model)."""
    if not MODEL_ID_PATTERN.match(model_id):
        raise ValueError(f"bad model id {model_id!r}")
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".{model_id}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    model.save(staging / MODEL_FILE)
    model.save_weights(staging / WEIGHTS_FILE)
    write_json(staging / SCALER_FILE, scaler.to_dict())
    write_json(staging / SPEC_FILE, spec.to_dict())
    files = list(CHECKSUMMED)
    if calibration is not None:
        write_json(staging / CALIBRATION_FILE, calibration.to_dict(spec.device_kinds))
        files.append(CALIBRATION_FILE)
    forecaster = Forecaster.from_model(
        model, model_id=model_id, spec=spec, scaler=scaler, card=card, calibration=calibration
    )
    expected = forecaster.forecast(probe)
    full_card = {
        **card,
        "model_id": model_id,
        "feature_spec": spec.to_dict(),
        "files": {name: sha256_of(staging / name) for name in files},
        "probe": [
            {**_input_to_json(item), "expected_kwh": float(value)}
            for item, value in zip(probe, expected, strict=True)
        ],
    }
    write_json(staging / CARD_FILE, full_card)
    target = root / model_id
    if target.exists():  # the same id means the same weights: replace the older copy
        shutil.rmtree(target)
    staging.rename(target)
    log.info("wrote %s (%d bytes)", target, sum(p.stat().st_size for p in target.iterdir()))
    return target


def write_latest(root: Path, model_id: str) -> None:
    """Point ``root/latest`` at ``model_id`` (written aside, then renamed over: atomic)."""
    if not (root / model_id / CARD_FILE).exists():
        raise ForecasterLoadError(f"no model {model_id} under {root}")
    partial = root / f".{LATEST_FILE}.partial"
    partial.write_text(model_id + "\n")
    partial.replace(root / LATEST_FILE)


def latest_model_id(root: Path) -> str:
    try:
        model_id = (root / LATEST_FILE).read_text().strip()
    except OSError as exc:
        raise ForecasterLoadError(f"cannot read {root / LATEST_FILE}: {exc}") from exc
    if not MODEL_ID_PATTERN.match(model_id):
        raise ForecasterLoadError(f"{root / LATEST_FILE} names no valid model id: {model_id!r}")
    return model_id


def load_latest(artifacts_dir: Path = Path("artifacts")) -> Forecaster:
    """The forecaster ``artifacts_dir/latest`` names."""
    return Forecaster.load(artifacts_dir / latest_model_id(artifacts_dir))


def read_card(directory: Path) -> dict[str, Any]:
    try:
        card = json.loads((directory / CARD_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise ForecasterLoadError(
            f"cannot read the model card {directory / CARD_FILE}: {exc}"
        ) from exc
    if not isinstance(card, dict) or not isinstance(card.get("files"), dict):
        raise ForecasterLoadError(f"{directory / CARD_FILE} is not a model card")
    return card


# ---------------------------------------------------------------------------------------------
# Loading


def verify_checksum(directory: Path, name: str, card: dict[str, Any]) -> None:
    expected = card["files"].get(name)
    if not expected:
        raise ChecksumMismatch(f"the model card lists no checksum for {name}")
    path = directory / name
    try:
        actual = sha256_of(path)
    except OSError as exc:
        raise ChecksumMismatch(f"cannot read {path}: {exc}") from exc
    if actual != expected:
        raise ChecksumMismatch(f"{path}: sha256 {actual} is not the card's {expected}")


def _load(directory: Path) -> Forecaster:
    card = read_card(directory)
    for name in (SCALER_FILE, SPEC_FILE):
        verify_checksum(directory, name, card)
    try:
        spec = FeatureSpec.from_dict(json.loads((directory / SPEC_FILE).read_text()))
        scaler = Scaler.from_dict(json.loads((directory / SCALER_FILE).read_text()))
        scaler.aligned(spec)
        model_id = str(card["model_id"])
        probe = [(_input_from_json(p), float(p["expected_kwh"])) for p in card["probe"]]
        calibration = None
        if CALIBRATION_FILE in card["files"]:
            verify_checksum(directory, CALIBRATION_FILE, card)
            calibration = IntervalCalibration.from_dict(
                json.loads((directory / CALIBRATION_FILE).read_text()), spec.device_kinds
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise ForecasterLoadError(f"{directory}: unusable spec, scaler or card: {exc}") from exc

    from stream.forecast import model as network  # noqa: PLC0415 - TensorFlow on demand

    def full() -> keras.Model:
        import keras  # noqa: PLC0415

        return keras.saving.load_model(directory / MODEL_FILE, compile=False)

    def rebuilt() -> keras.Model:
        architecture: Architecture = network.Architecture.from_dict(card["architecture"])
        model = network.build_model(spec, architecture)
        model.load_weights(directory / WEIGHTS_FILE)
        return model

    serve = partial(
        Forecaster.from_model, model_id=model_id, spec=spec, scaler=scaler, card=card,
        calibration=calibration,
    )  # fmt: skip
    failures: list[ForecasterLoadError] = []
    for name, loader in ((MODEL_FILE, full), (WEIGHTS_FILE, rebuilt)):
        try:
            verify_checksum(directory, name, card)
            try:
                model = loader()
            except Exception as exc:  # any deserialization error: log it, try the next
                raise ForecasterLoadError(f"{directory / name} does not load: {exc!r}") from exc
            forecaster = serve(model, loaded_from=name)
            _check_probe(forecaster, probe, directory / name)
        except ForecasterLoadError as exc:
            log.error("model %s: %s", model_id, exc)  # noqa: TRY400 - the reason is the message
            failures.append(exc)
            continue
        if failures:
            log.warning("model %s served from %s after: %s", model_id, name, failures[0])
        log.info("loaded model %s from %s", model_id, directory / name)
        return forecaster
    kind = (
        ChecksumMismatch
        if all(isinstance(f, ChecksumMismatch) for f in failures)
        else ForecasterLoadError
    )
    raise kind(f"model {model_id} cannot be served: " + "; ".join(str(f) for f in failures))


def _check_probe(
    forecaster: Forecaster, probe: Sequence[tuple[ForecastInput, float]], source: Path
) -> None:
    if not probe:
        raise ForecasterLoadError("the model card has no probe to verify the model with")
    try:
        got = forecaster.forecast([item for item, _ in probe])
    except UnsupportedInput as exc:
        raise ForecasterLoadError(f"the card's probe does not fit the model: {exc}") from exc
    want = np.array([value for _, value in probe])
    worst = float(np.max(np.abs(got - want) / (1 + np.abs(want))))
    if not worst <= PROBE_TOLERANCE:
        raise ForecasterLoadError(
            f"{source} loads but forecasts the probe differently (worst relative error {worst:.2e})"
        )


def _input_to_json(item: ForecastInput) -> dict[str, Any]:
    return {
        "device_id": item.device_id,
        "kind": item.kind,
        "tz": item.tz,
        "next_hour_start": item.next_hour_start.isoformat(),
        "history_kwh": [float(v) for v in item.history_kwh],
    }


def _input_from_json(data: dict[str, Any]) -> ForecastInput:
    start = datetime.fromisoformat(data["next_hour_start"])
    if start.tzinfo is None:
        raise ValueError("probe times must be aware")
    return ForecastInput(
        device_id=str(data["device_id"]),
        kind=str(data["kind"]),
        tz=str(data["tz"]),
        next_hour_start=start,
        history_kwh=tuple(float(v) for v in data["history_kwh"]),
    )
