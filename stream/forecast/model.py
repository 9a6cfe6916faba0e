"""The Keras 3 GRU, its training loop and the one batched serving entry point.

This module (with :mod:`stream.forecast.artifacts`, which imports it only when loading) is the
only place that imports TensorFlow: feature building and baselines stay pure numpy.

Architecture: a GRU reads the scaled 24-hour history; its last state, concatenated with the
target hour's calendar features and the device kind one-hot, goes through one hidden dense
layer to the next hour's scaled energy (``next_hour``, mean-squared error). A multi-horizon
model (``horizon_hours`` > 0) has two more heads on the same hidden layer: ``hourly``
[n, horizon_hours, 3] and ``daily`` [n, horizon_days, 3], P10/P50/P90 of each target, trained
with the pinball loss. Their raw outputs are (low, median, high) with the quantiles made as
``P50 = median``, ``P10 = P50 - softplus(low)``, ``P90 = P50 + softplus(high)`` (:func:`quantiles`),
so P10 <= P50 <= P90 by construction, in training and in serving alike. Daily targets are
scaled as the day's mean hourly energy.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

# Keras 3 must run on TensorFlow here; and TensorFlow's C++ start-up chatter is not our log.
# Set before the imports below read them (setdefault: an operator's own choice wins).
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import numpy.typing as npt
import tensorflow as tf

from stream.forecast.calibration import IntervalCalibration
from stream.forecast.features import Encoded, FeatureSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Architecture:
    """Everything needed to rebuild the network before loading its weights."""

    gru_units: int = 32
    dense_units: int = 32
    horizon_hours: int = 0
    """Hourly trajectory length (0: a next-hour-only model, as before horizons existed)."""
    horizon_days: int = 0
    """Daily totals after the trajectory's issue time."""
    residual: bool = False
    """The hourly and daily heads' P50 is a correction of a baseline (:func:`horizon_bases`:
    the last hour for the first step, the same hour yesterday for the others, the last 24
    hours' total for days), added in the graph from the history input: the heads start from
    the baselines' skill instead of learning each kind's daily shape. The first hourly step's
    P50 is then the next-hour head's forecast (:func:`first_hour_from_next_hour`)."""

    def to_dict(self) -> dict[str, Any]:
        return {"type": "gru", **asdict(self)}

    @property
    def multi_horizon(self) -> bool:
        return self.horizon_hours > 0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Architecture:
        if data.get("type") != "gru":
            raise ValueError(f"unknown architecture type {data.get('type')!r}")
        return cls(
            gru_units=int(data["gru_units"]),
            dense_units=int(data["dense_units"]),
            horizon_hours=int(data.get("horizon_hours", 0)),
            horizon_days=int(data.get("horizon_days", 0)),
            residual=bool(data.get("residual", False)),
        )


QUANTILE_LEVELS = (0.1, 0.5, 0.9)


MEDIAN_LOSSES = ("pinball", "squared")
"""How the P50 channel is trained: the pinball loss (a median) or the squared error (a mean,
what the scorecard's RMSE rewards; the P10/P90 keep the pinball loss either way)."""


def quantiles(
    raw: tf.Tensor, base: tf.Tensor | None = None, factors: tf.Tensor | None = None
) -> tf.Tensor:
    """Raw head outputs [..., 3] -> ordered P10/P50/P90 [..., 3] (see the module doc).

    ``base`` [...] is added to the P50 (a residual model's seasonal-naive); ``factors`` [..., 2]
    multiply the lower and upper half-widths (the interval calibration, never negative).
    """
    median = raw[..., 1] if base is None else raw[..., 1] + base
    below, above = tf.nn.softplus(raw[..., 0]), tf.nn.softplus(raw[..., 2])
    if factors is not None:
        below, above = below * factors[..., 0], above * factors[..., 1]
    return tf.stack([median - below, median, median + above], axis=-1)


def _errors(y_true: tf.Tensor, raw: tf.Tensor) -> tf.Tensor:
    predicted = quantiles(raw)
    truth = tf.reshape(tf.cast(y_true, predicted.dtype), tf.shape(predicted)[:-1])
    return truth[..., None] - predicted


def pinball_loss(y_true: tf.Tensor, raw: tf.Tensor) -> tf.Tensor:
    """Mean pinball (quantile) loss of the P10/P50/P90 made from ``raw`` against ``y_true``."""
    error = _errors(y_true, raw)
    levels = tf.constant(QUANTILE_LEVELS, dtype=error.dtype)
    return tf.reduce_mean(tf.maximum(levels * error, (levels - 1) * error), axis=[-2, -1])


def pinball_squared_loss(y_true: tf.Tensor, raw: tf.Tensor) -> tf.Tensor:
    """The pinball loss of the P10 and P90 plus half the squared error of the P50."""
    error = _errors(y_true, raw)
    levels = tf.constant(QUANTILE_LEVELS, dtype=error.dtype)
    pinball = tf.maximum(levels * error, (levels - 1) * error)
    terms = tf.stack([pinball[..., 0], 0.5 * tf.square(error[..., 1]), pinball[..., 2]], -1)
    return tf.reduce_mean(terms, axis=[-2, -1])


def horizon_bases(sequence: tf.Tensor, hours: int) -> tuple[tf.Tensor, tf.Tensor]:
    """A residual model's starting points in scaled units, from the history input [n, H, 1]:
    for the hourly steps [n, hours] the better baseline of each (persistence, the last hour,
    for the first; seasonal-naive, the same hour yesterday, for the others) and for every
    daily step [n, 1] the last 24 hours' mean (a day's scaled mean hourly energy)."""
    recent = sequence[:, -hours:, 0]
    hourly = tf.concat([sequence[:, -1:, 0], recent[:, 1:]], axis=1)
    return hourly, tf.reduce_mean(recent, axis=1, keepdims=True)


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 3e-3
    patience: int = 4
    """Stop after this many epochs without a better validation loss (best weights are kept)."""
    median_loss: str = "pinball"
    """One of :data:`MEDIAN_LOSSES`."""


def blend_median(
    hourly: tf.Tensor, base: tf.Tensor, persistence: tf.Tensor, weights: tf.Tensor
) -> tf.Tensor:
    """The calibration's blend (:mod:`stream.forecast.calibration`): quantiles [n, hours, 3]
    moved so the P50 is ``base + alpha (P50 - base) + beta (persistence - base)``; ``base``
    [n, hours], ``persistence`` [n, 1], ``weights`` [n, hours, 2]."""
    median = hourly[..., 1]
    new = base + weights[..., 0] * (median - base) + weights[..., 1] * (persistence - base)
    return hourly + (new - median)[..., None]


def first_hour_from_next_hour(hourly: tf.Tensor, next_hour: tf.Tensor) -> tf.Tensor:
    """A residual model's hourly quantiles [n, hours, 3] with the first step moved so its P50
    is the next-hour head's forecast [n] (the same target, trained on the squared error alone,
    it beats persistence for every kind, where the quantile head's first step falls short for
    some); its widths stay, so P10 <= P50 <= P90 holds."""
    first = hourly[:, :1] + (next_hour[:, None, None] - hourly[:, :1, 1:2])
    return tf.concat([first, hourly[:, 1:]], axis=1)


def hourly_quantiles(
    model: keras.Model, batch: Encoded, architecture: Architecture
) -> npt.NDArray[np.float64]:
    """The hourly head's scaled P10/P50/P90 [n, steps, 3] of a multi-horizon model in training
    (uncalibrated)."""
    next_hour, raw, _ = model([batch.sequence, batch.static], training=False)
    if not architecture.residual:
        return np.asarray(quantiles(raw).numpy(), dtype=np.float64)
    base, _ = horizon_bases(tf.constant(batch.sequence), architecture.horizon_hours)
    hourly = first_hour_from_next_hour(quantiles(raw, base), tf.reshape(next_hour, [-1]))
    return np.asarray(hourly.numpy(), dtype=np.float64)


def seed_everything(seed: int) -> None:
    """Python, numpy and TensorFlow seeds, and deterministic TensorFlow kernels."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def build_model(spec: FeatureSpec, architecture: Architecture) -> keras.Model:
    sequence = keras.Input((spec.history_hours, spec.sequence_features), name="history")
    static = keras.Input((len(spec.static_feature_names),), name="calendar_kind")
    state = keras.layers.GRU(architecture.gru_units, name="gru")(sequence)
    joined = keras.layers.Concatenate(name="join")([state, static])
    hidden = keras.layers.Dense(architecture.dense_units, activation="relu", name="hidden")(joined)
    output = keras.layers.Dense(1, name="next_hour")(hidden)
    if not architecture.multi_horizon:
        return keras.Model([sequence, static], output, name="wattstream_gru")
    heads = [output]
    steps_of = {"hourly": architecture.horizon_hours, "daily": architecture.horizon_days}
    for name, steps in steps_of.items():
        flat = keras.layers.Dense(steps * len(QUANTILE_LEVELS), name=f"{name}_raw")(hidden)
        heads.append(keras.layers.Reshape((steps, len(QUANTILE_LEVELS)), name=name)(flat))
    return keras.Model([sequence, static], heads, name="wattstream_gru")


Targets = Sequence[npt.NDArray[np.float64]]
"""Scaled targets, one array per model output (next hour; then hourly and daily)."""


EpochHook = Callable[[int, Mapping[str, float]], None]
"""Called after each epoch (1-based) with its logs (``loss``, ``val_loss``, per head)."""


def fit(
    model: keras.Model,
    train: tuple[Encoded, Targets],
    validation: tuple[Encoded, Targets],
    config: TrainingConfig,
    on_epoch: EpochHook | None = None,
) -> dict[str, Any]:
    """Train on scaled targets with early stopping on the validation loss; return the history."""
    multi = len(model.outputs) > 1
    if config.median_loss not in MEDIAN_LOSSES:
        raise ValueError(f"median_loss {config.median_loss!r} is not one of {MEDIAN_LOSSES}")
    horizon = pinball_loss if config.median_loss == "pinball" else pinball_squared_loss
    losses: Any = ["mse", horizon, horizon] if multi else "mse"
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=losses)
    (x, ys), (vx, vys) = train, validation
    y: Any = [v.astype(np.float32) for v in ys] if multi else ys[0].astype(np.float32)
    vy: Any = [v.astype(np.float32) for v in vys] if multi else vys[0].astype(np.float32)
    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=config.patience, restore_best_weights=True
    )
    history = model.fit(
        [x.sequence, x.static],
        y,
        validation_data=([vx.sequence, vx.static], vy),
        epochs=config.epochs,
        batch_size=config.batch_size,
        shuffle=True,
        callbacks=[stop, _EpochLog(on_epoch)],
        verbose=0,
    )
    losses = history.history
    best = int(np.argmin(losses["val_loss"]))
    return {
        "epochs_run": len(losses["loss"]),
        "best_epoch": best + 1,
        "loss": [round(float(v), 6) for v in losses["loss"]],
        "val_loss": [round(float(v), 6) for v in losses["val_loss"]],
    }


class _EpochLog(keras.callbacks.Callback):  # type: ignore[misc]
    def __init__(self, hook: EpochHook | None = None) -> None:
        super().__init__()
        self._hook = hook

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
        logs = logs or {}
        if self._hook is not None:
            self._hook(epoch + 1, {name: float(value) for name, value in logs.items()})
        log.info(
            "epoch %d: loss %.5f, val_loss %.5f",
            epoch + 1,
            logs.get("loss", float("nan")),
            logs.get("val_loss", float("nan")),
        )


class ServingFunction:
    """The one batched entry point: a ``tf.function`` traced once for any batch size.

    The input signature fixes everything but the batch dimension, so batches of 1 and of 10,000
    run the same concrete graph (no retracing). Calls are thread-safe: the graph only reads the
    model's variables.

    A multi-horizon model's function returns its three heads at once (quantiles ordered; a
    residual model's P50 on seasonal-naive; the interval ``calibration``'s factors of each
    window's kind, taken from the kind one-hot of the static input, applied to the widths):
    :meth:`__call__` keeps the next hour, :meth:`horizons` the trajectory and daily totals.
    """

    def __init__(
        self,
        model: keras.Model,
        spec: FeatureSpec,
        *,
        residual: bool = False,
        calibration: IntervalCalibration | None = None,
    ) -> None:
        self._model = model
        self.multi_horizon = len(model.outputs) > 1
        signature = [
            tf.TensorSpec([None, spec.history_hours, spec.sequence_features], tf.float32),
            tf.TensorSpec([None, len(spec.static_feature_names)], tf.float32),
        ]
        multi = self.multi_horizon
        kinds_from = len(spec.static_feature_names) - len(spec.device_kinds)
        factors = (
            None
            if calibration is None
            else (
                tf.constant(calibration.hourly, tf.float32),
                tf.constant(calibration.daily, tf.float32),
            )
        )
        blend = None
        if residual and calibration is not None and calibration.hourly_blend is not None:
            blend = tf.constant(calibration.hourly_blend, tf.float32)

        @tf.function(input_signature=signature)  # type: ignore[untyped-decorator]
        def serve(sequence: tf.Tensor, static: tf.Tensor) -> tuple[tf.Tensor, ...]:
            outputs = model([sequence, static], training=False)
            if not multi:
                return (tf.reshape(outputs, [-1]),)
            next_hour, hourly, daily = outputs
            hourly_base = daily_base = hourly_factors = daily_factors = None
            if residual:
                hourly_base, daily_base = horizon_bases(sequence, hourly.shape[1])
            if factors is not None:
                one_hot = static[:, kinds_from:]
                hourly_factors = tf.einsum("nk,ksc->nsc", one_hot, factors[0])
                daily_factors = tf.einsum("nk,ksc->nsc", one_hot, factors[1])
            next_hour = tf.reshape(next_hour, [-1])
            hourly = quantiles(hourly, hourly_base, hourly_factors)
            if blend is not None:
                weights = tf.einsum("nk,ksc->nsc", static[:, kinds_from:], blend)
                hourly = blend_median(hourly, hourly_base, sequence[:, -1:, 0], weights)
            if residual:
                hourly = first_hour_from_next_hour(hourly, next_hour)
            return next_hour, hourly, quantiles(daily, daily_base, daily_factors)

        self._function = serve
        self._concrete: Callable[..., tuple[tf.Tensor, ...]] = serve.get_concrete_function()

    def outputs(self, batch: Encoded) -> tuple[npt.NDArray[np.float64], ...]:
        """Every head's scaled output for the batch, from one call of the concrete graph."""
        result = self._concrete(tf.constant(batch.sequence), tf.constant(batch.static))
        return tuple(np.asarray(part.numpy(), dtype=np.float64) for part in result)

    def __call__(self, batch: Encoded) -> npt.NDArray[np.float64]:
        """Scaled next-hour outputs, one per window."""
        if len(batch) == 0:
            return np.empty(0, dtype=np.float64)
        return self.outputs(batch)[0]

    def horizons(self, batch: Encoded) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Scaled P10/P50/P90: hourly [n, horizon_hours, 3] and daily [n, horizon_days, 3]."""
        if not self.multi_horizon:
            raise ValueError("this model forecasts the next hour only")
        _, hourly, daily = self.outputs(batch)
        return hourly, daily

    def tracing_count(self) -> int:
        count: int = self._function.experimental_get_tracing_count()
        return count


def weight_digest(model: keras.Model) -> str:
    """sha256 over the model's weight values: the same training gives the same digest."""

    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()


def library_versions() -> dict[str, str]:

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
    }
