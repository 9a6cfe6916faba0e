"""The sign of a forecast's error: one definition for the health metrics and the training
scorecard.

    error = forecast - actual            (kWh; positive: the forecast was too high)
    bias  = mean(error)                  (positive: the model over-forecasts on average)

The *residual* of the anomaly alerts is the opposite, actual - forecast: positive when a device
used more energy than forecast (an alert says "above forecast"). Pure; no numpy needed (numpy
arrays work too).
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def bias(actual: Iterable[float], forecast: Iterable[float]) -> float:
    """Mean of ``forecast - actual`` over paired values; positive means over-forecasting."""
    errors = [float(f) - float(a) for a, f in zip(actual, forecast, strict=True)]
    if not errors:
        raise ValueError("bias of no values")
    return math.fsum(errors) / len(errors)
