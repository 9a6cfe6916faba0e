"""Next-hour energy forecaster: one global GRU over every device kind and zone.

The stream worker's API (stable)::

    forecaster = load_latest(Path("artifacts"))        # or Forecaster.load(artifacts/<id>)
    kwh = forecaster.forecast([ForecastInput(device_id, kind, tz, next_hour_start, history_kwh)])

``forecast`` is one batched ``tf.function`` call, thread-safe, meant to run off the event loop
(``asyncio.to_thread``). Inputs need ``len(history_kwh) >= forecaster.spec.history_hours`` and a
kind in ``forecaster.spec.device_kinds``. Importing this package does not import TensorFlow;
loading a model does. ``wattstream train`` makes the artifacts (see :mod:`stream.forecast.train`).
"""

from stream.forecast.artifacts import Forecaster, load_latest
from stream.forecast.errors import (
    ChecksumMismatch,
    ForecasterLoadError,
    ForecastError,
    HistoryError,
    UnsupportedInput,
)
from stream.forecast.features import FeatureSpec, ForecastInput

__all__ = [
    "ChecksumMismatch",
    "FeatureSpec",
    "ForecastError",
    "ForecastInput",
    "Forecaster",
    "ForecasterLoadError",
    "HistoryError",
    "UnsupportedInput",
    "load_latest",
]
