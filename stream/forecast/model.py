"""The Keras 3 GRU, its training loop and the one batched serving entry point.

This module (with :mod:`stream.forecast.artifacts`, which imports it only when loading) is the
only place that imports TensorFlow: feature building and baselines stay pure numpy.

Architecture: a GRU reads the scaled 24-hour history; its last state, concatenated with the
target hour's calendar features and the device kind one-hot, goes through one hidden dense
layer to a single output, the next hour's scaled energy.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
from collections.abc import Callable, Mapping
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

from stream.forecast.features import Encoded, FeatureSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Architecture:
    """Everything needed to rebuild the network before loading its weights."""

    gru_units: int = 32
    dense_units: int = 32

    def to_dict(self) -> dict[str, Any]:
        return {"type": "gru", **asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Architecture:
        if data.get("type") != "gru":
            raise ValueError(f"unknown architecture type {data.get('type')!r}")
        return cls(gru_units=int(data["gru_units"]), dense_units=int(data["dense_units"]))


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 3e-3
    patience: int = 4
    """Stop after this many epochs without a better validation loss (best weights are kept)."""


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
    return keras.Model([sequence, static], output, name="wattstream_gru")


def fit(
    model: keras.Model,
    train: tuple[Encoded, npt.NDArray[np.float64]],
    validation: tuple[Encoded, npt.NDArray[np.float64]],
    config: TrainingConfig,
) -> dict[str, Any]:
    """Train on scaled targets with early stopping on the validation loss; return the history."""
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="mse")
    (x, y), (vx, vy) = train, validation
    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=config.patience, restore_best_weights=True
    )
    history = model.fit(
        [x.sequence, x.static],
        y.astype(np.float32),
        validation_data=([vx.sequence, vx.static], vy.astype(np.float32)),
        epochs=config.epochs,
        batch_size=config.batch_size,
        shuffle=True,
        callbacks=[stop, _EpochLog()],
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
    def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
        logs = logs or {}
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
    """

    def __init__(self, model: keras.Model, spec: FeatureSpec) -> None:
        self._model = model
        signature = [
            tf.TensorSpec([None, spec.history_hours, spec.sequence_features], tf.float32),
            tf.TensorSpec([None, len(spec.static_feature_names)], tf.float32),
        ]

        @tf.function(input_signature=signature)  # type: ignore[untyped-decorator]
        def serve(sequence: tf.Tensor, static: tf.Tensor) -> tf.Tensor:
            return tf.reshape(model([sequence, static], training=False), [-1])

        self._function = serve
        self._concrete: Callable[..., tf.Tensor] = serve.get_concrete_function()

    def __call__(self, batch: Encoded) -> npt.NDArray[np.float64]:
        """Scaled next-hour outputs, one per window."""
        if len(batch) == 0:
            return np.empty(0, dtype=np.float64)
        result = self._concrete(tf.constant(batch.sequence), tf.constant(batch.static))
        return np.asarray(result.numpy(), dtype=np.float64)

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
