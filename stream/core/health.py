"""Rolling health of a device's forecasts and data, updated as each forecast hour closes.

Forecast quality over the last 24 scored hours: RMSE, MAE, MAPE and bias (forecast - actual,
positive = over-forecast: :func:`stream.core.forecast_error.bias`) of the model, the
RMSE of the seasonal-naive baseline (same local hour yesterday) and their ratio. Data quality
over the last 24 closed hours: completeness, gaps (hours with no reading at all), late and
duplicate readings. Status thresholds (documented in docs/stream-processing.md):

* ``unknown``: fewer than :data:`MIN_SCORED` hours with both a forecast and a baseline;
* ``red``: ratio > 1.1 (worse than the naive guess), completeness < 80 %, or offline;
* ``green``: ratio <= 0.9 and completeness >= 95 %;
* ``amber``: anything between.

When the naive baseline itself is (almost) exact — an idle EV charger draws the same standby
power every hour — the ratio means nothing: such a device is ``green`` while the model's RMSE
stays within :data:`FLAT_RMSE_KWH` too, else ``amber``.

Alerts (residuals and the other kinds) are :mod:`stream.core.alerts`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict

from schema.results import Health
from stream.core.forecast_error import bias

WINDOW_HOURS = 24
MIN_SCORED = 6
MAPE_FLOOR_KWH = 0.01
"""Hours whose actual energy is smaller than this (solar at night) are left out of MAPE."""
SIGMA_FLOOR_KWH = 1e-3
FLAT_RMSE_KWH = 1e-3
"""Below this the naive baseline counts as exact (a flat series) and the ratio is not used."""


class Status(StrEnum):
    GREEN = "green"
    AMBER = "amber"
    RED = "red"
    UNKNOWN = "unknown"


class ScoredHour(BaseModel):
    """One closed hour as the health metrics see it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hour_start: AwareDatetime
    actual_kwh: float
    predicted_kwh: float | None = None
    baseline_kwh: float | None = None
    reading_count: int
    expected_count: int
    late_count: int = 0
    duplicate_count: int = 0
    power_min_kw: float | None = None
    power_max_kw: float | None = None

    @property
    def residual(self) -> float | None:
        return None if self.predicted_kwh is None else self.actual_kwh - self.predicted_kwh


def _rms(values: Sequence[float]) -> float:
    return math.sqrt(sum(v * v for v in values) / len(values))


def device_health(
    device_id: str,
    scored: Sequence[ScoredHour],
    *,
    online: bool | None,
    last_seen: datetime | None,
    computed_at: datetime,
) -> Health:
    """The health record of the last hour of ``scored`` (oldest first, not empty): metrics over
    its last :data:`WINDOW_HOURS` entries."""
    recent = list(scored)[-WINDOW_HOURS:]
    both = [s for s in recent if s.predicted_kwh is not None and s.baseline_kwh is not None]
    predicted = [s.predicted_kwh for s in both if s.predicted_kwh is not None]
    residuals = [s.actual_kwh - p for s, p in zip(both, predicted, strict=True)]
    naive = [s.actual_kwh - s.baseline_kwh for s in both if s.baseline_kwh is not None]
    enough = len(both) >= MIN_SCORED
    rmse = _rms(residuals) if enough else None
    naive_rmse = _rms(naive) if enough else None
    flat = naive_rmse is not None and naive_rmse < FLAT_RMSE_KWH
    ratio = rmse / naive_rmse if rmse is not None and naive_rmse and not flat else None
    mape_terms = [
        abs(r) / abs(s.actual_kwh)
        for s, r in zip(both, residuals, strict=True)
        if abs(s.actual_kwh) >= MAPE_FLOOR_KWH
    ]
    expected = sum(s.expected_count for s in recent)
    completeness = min(1.0, sum(s.reading_count for s in recent) / expected) if expected else 0.0
    return Health(
        device_id=device_id,
        hour_start=recent[-1].hour_start,
        rmse_24h=rmse,
        mae_24h=sum(abs(r) for r in residuals) / len(residuals) if enough else None,
        mape_24h=sum(mape_terms) / len(mape_terms) if enough and mape_terms else None,
        bias_24h=bias([s.actual_kwh for s in both], predicted) if enough else None,
        naive_rmse_24h=naive_rmse,
        rmse_ratio=ratio,
        completeness_24h=completeness,
        gaps_24h=sum(1 for s in recent if s.reading_count == 0),
        late_24h=sum(s.late_count for s in recent),
        duplicates_24h=sum(s.duplicate_count for s in recent),
        status=status_of(
            ratio,
            completeness,
            online=online,
            scored=len(both),
            flat_ok=None if not flat or rmse is None else rmse <= FLAT_RMSE_KWH,
        ).value,
        presence=None if online is None else ("online" if online else "offline"),
        last_seen=last_seen,
        computed_at=computed_at,
    )


def status_of(
    ratio: float | None,
    completeness: float,
    *,
    online: bool | None,
    scored: int,
    flat_ok: bool | None = None,
) -> Status:
    """``flat_ok``: for a flat series (exact naive baseline), whether the model is exact too."""
    if online is False or completeness < 0.8:
        return Status.RED
    if scored >= MIN_SCORED and flat_ok is not None:
        return Status.GREEN if flat_ok and completeness >= 0.95 else Status.AMBER
    if scored < MIN_SCORED or ratio is None:
        return Status.UNKNOWN
    if ratio > 1.1:
        return Status.RED
    if ratio <= 0.9 and completeness >= 0.95:
        return Status.GREEN
    return Status.AMBER
