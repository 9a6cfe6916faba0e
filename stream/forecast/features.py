"""Features of the forecaster: pure numpy, shared by training and serving.

One window is the last ``history_hours`` closed hourly energies of a device (oldest first) and
the hour to forecast. The model sees:

* a sequence: the history, scaled with its device kind's mean and standard deviation;
* static features of the target hour: local hour of day and weekday, each as sin/cos, from the
  target's start converted to the device's zone (fractional hours, so a Kolkata hour starting at
  05:30 local is 5.5), and the device kind one-hot.

Training (UTC hours of an export) and serving (device-local hours of the stream) go through the
same :func:`encode` and :func:`calendar_features`, so the model never sees features built two
ways. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from stream.forecast.errors import UnsupportedInput

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

FEATURE_LAYOUT_VERSION = 1
CALENDAR_FEATURES = ("hour_sin", "hour_cos", "weekday_sin", "weekday_cos")
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class FeatureSpec:
    """What a model's inputs mean; stored with the model as ``feature_spec.json``."""

    history_hours: int = 24
    device_kinds: tuple[str, ...] = ()
    """Kinds the model knows, in one-hot order."""
    layout_version: int = FEATURE_LAYOUT_VERSION

    def __post_init__(self) -> None:
        if self.history_hours < 1:
            raise ValueError("history_hours must be positive")
        if not self.device_kinds or len(set(self.device_kinds)) != len(self.device_kinds):
            raise ValueError(f"device_kinds must be distinct and non-empty: {self.device_kinds}")
        if self.layout_version != FEATURE_LAYOUT_VERSION:
            raise ValueError(
                f"feature layout {self.layout_version} is not {FEATURE_LAYOUT_VERSION}, "
                "the one this code builds"
            )

    @property
    def sequence_features(self) -> int:
        return 1

    @property
    def static_feature_names(self) -> tuple[str, ...]:
        return (*CALENDAR_FEATURES, *(f"kind={kind}" for kind in self.device_kinds))

    def kind_index(self, kind: str) -> int:
        try:
            return self.device_kinds.index(kind)
        except ValueError:
            raise UnsupportedInput(
                f"device kind {kind!r} is unknown to this model (it knows "
                f"{', '.join(self.device_kinds)}); retrain with that kind in the history"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "history_hours": self.history_hours,
            "device_kinds": list(self.device_kinds),
            "layout_version": self.layout_version,
            "sequence_features": ["energy_kwh_scaled"],
            "static_features": list(self.static_feature_names),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        return cls(
            history_hours=int(data["history_hours"]),
            device_kinds=tuple(str(kind) for kind in data["device_kinds"]),
            layout_version=int(data["layout_version"]),
        )


@dataclass(frozen=True)
class KindScaling:
    mean: float
    std: float


@dataclass(frozen=True)
class Scaler:
    """Per device kind: ``scaled = (kWh - mean) / std``; stored as ``scaler.json``."""

    by_kind: Mapping[str, KindScaling]
    _means: FloatArray = field(init=False, repr=False, compare=False)
    _stds: FloatArray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        kinds = list(self.by_kind)
        means = np.array([self.by_kind[k].mean for k in kinds], dtype=np.float64)
        stds = np.array([self.by_kind[k].std for k in kinds], dtype=np.float64)
        if not (np.all(np.isfinite(means)) and np.all(np.isfinite(stds)) and np.all(stds > 0)):
            raise ValueError(f"scaler needs finite means and positive stds: {self.by_kind}")
        object.__setattr__(self, "_means", means)
        object.__setattr__(self, "_stds", stds)

    @classmethod
    def fit(cls, spec: FeatureSpec, values: FloatArray, kind_index: IntArray) -> Scaler:
        """Mean and std of ``values`` (kWh) per kind; ``kind_index`` indexes spec.device_kinds."""
        by_kind = {}
        for index, kind in enumerate(spec.device_kinds):
            own = values[(kind_index == index) & np.isfinite(values)]
            if own.size < 2:
                raise ValueError(f"too few values of kind {kind!r} to fit a scaler")
            by_kind[kind] = KindScaling(float(own.mean()), max(float(own.std()), 1e-6))
        return cls(by_kind)

    def aligned(self, spec: FeatureSpec) -> tuple[FloatArray, FloatArray]:
        """Means and stds in the spec's kind order."""
        missing = set(spec.device_kinds) - set(self.by_kind)
        if missing:
            raise ValueError(f"scaler has no entry for kinds {sorted(missing)}")
        order = [list(self.by_kind).index(kind) for kind in spec.device_kinds]
        return self._means[order], self._stds[order]

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "standard per device kind: (kWh - mean) / std",
            "by_kind": {k: {"mean": s.mean, "std": s.std} for k, s in self.by_kind.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scaler:
        return cls(
            {
                str(kind): KindScaling(float(v["mean"]), float(v["std"]))
                for kind, v in data["by_kind"].items()
            }
        )


@dataclass(frozen=True)
class ForecastInput:
    """One device whose hour just closed: forecast its next local hour."""

    device_id: str
    kind: str
    tz: str
    next_hour_start: datetime
    """Aware instant at which the hour to forecast starts (its local hour/weekday are used)."""
    history_kwh: Sequence[float]
    """The last ``history_hours`` closed hourly energies, oldest first (longer: the tail)."""


def calendar_features(at: datetime, tz: str) -> tuple[float, float, float, float]:
    """Local hour of day and weekday of the instant ``at`` in zone ``tz``, as sin/cos pairs."""
    if at.tzinfo is None:
        raise UnsupportedInput(f"naive datetime {at.isoformat()}: times must be aware")
    local = at.astimezone(ZoneInfo(tz))
    hour = local.hour + local.minute / 60
    day = local.weekday()
    return (
        math.sin(2 * math.pi * hour / 24),
        math.cos(2 * math.pi * hour / 24),
        math.sin(2 * math.pi * day / 7),
        math.cos(2 * math.pi * day / 7),
    )


@dataclass(frozen=True)
class Encoded:
    """Model inputs for a batch: ``sequence`` [n, history_hours, 1], ``static`` [n, k]."""

    sequence: npt.NDArray[np.float32]
    static: npt.NDArray[np.float32]

    def __len__(self) -> int:
        return int(self.sequence.shape[0])

    def take(self, index: IntArray | slice) -> Encoded:
        return Encoded(self.sequence[index], self.static[index])


def encode(
    spec: FeatureSpec,
    scaler: Scaler,
    history_kwh: FloatArray,
    kind_index: IntArray,
    calendar: FloatArray,
) -> Encoded:
    """Model inputs from raw windows: history [n, H] kWh, kind indices [n], calendar [n, 4]."""
    n = history_kwh.shape[0]
    if history_kwh.shape != (n, spec.history_hours) or calendar.shape != (n, 4):
        raise ValueError(
            f"shapes {history_kwh.shape}, {calendar.shape} do not fit "
            f"{spec.history_hours} history hours"
        )
    means, stds = scaler.aligned(spec)
    scaled = (history_kwh - means[kind_index][:, None]) / stds[kind_index][:, None]
    one_hot = np.eye(len(spec.device_kinds), dtype=np.float64)[kind_index]
    return Encoded(
        sequence=scaled[:, :, None].astype(np.float32),
        static=np.concatenate([calendar, one_hot], axis=1).astype(np.float32),
    )


def encode_inputs(spec: FeatureSpec, scaler: Scaler, inputs: Sequence[ForecastInput]) -> Encoded:
    """Validate serving inputs and encode them; raises :class:`UnsupportedInput` on any bad one.

    An hour close brings thousands of devices whose next hour starts at a handful of instants
    in a handful of zones: the calendar features are computed once per (instant, zone), and
    the histories become one array in one call."""
    hours = spec.history_hours
    kinds = np.empty(len(inputs), dtype=np.int64)
    calendar: list[tuple[float, float, float, float]] = []
    per_hour: dict[tuple[datetime, str], tuple[float, float, float, float]] = {}
    kind_of = {kind: index for index, kind in enumerate(spec.device_kinds)}
    tails: list[Sequence[float]] = []
    for row, item in enumerate(inputs):
        length = len(item.history_kwh)
        if length < hours:
            raise UnsupportedInput(
                f"{item.device_id}: {length} closed hours, the model needs {hours}"
            )
        tails.append(item.history_kwh[length - hours :])
        kind = kind_of.get(item.kind)
        kinds[row] = spec.kind_index(item.kind) if kind is None else kind
        key = (item.next_hour_start, item.tz)
        features = per_hour.get(key)
        if features is None:
            features = per_hour[key] = calendar_features(*key)
        calendar.append(features)
    history = np.array(tails, dtype=np.float64).reshape(len(inputs), hours)
    finite = np.isfinite(history).all(axis=1)
    if not finite.all():
        bad = inputs[int(np.argmin(finite))]
        raise UnsupportedInput(f"{bad.device_id}: non-finite value in the history")
    table = np.array(calendar, dtype=np.float64).reshape(len(inputs), len(CALENDAR_FEATURES))
    return encode(spec, scaler, history, kinds, table)


def inverse_scale(
    spec: FeatureSpec, scaler: Scaler, scaled: FloatArray, kind_index: IntArray
) -> FloatArray:
    """Model outputs (scaled) back to kWh."""
    means, stds = scaler.aligned(spec)
    return np.asarray(scaled, dtype=np.float64) * stds[kind_index] + means[kind_index]


def scale_targets(
    spec: FeatureSpec, scaler: Scaler, kwh: FloatArray, kind_index: IntArray
) -> FloatArray:
    means, stds = scaler.aligned(spec)
    return (kwh - means[kind_index]) / stds[kind_index]


# ---------------------------------------------------------------------------------------------
# Windows from hourly series (training and evaluation)


@dataclass(frozen=True)
class DeviceSeries:
    """Consecutive hourly energies of one device from ``first_hour`` on (NaN: missing hour)."""

    device_id: str
    kind: str
    tz: str
    first_hour: datetime
    values: FloatArray

    def hour_start(self, index: int) -> datetime:
        return self.first_hour + index * HOUR


@dataclass(frozen=True)
class Windows:
    """Every complete window of a set of series, as parallel arrays."""

    history_kwh: FloatArray
    """[n, H] kWh, oldest first."""
    target_kwh: FloatArray
    kind_index: IntArray
    calendar: FloatArray
    target_hour: IntArray
    """Start of the target hour, whole hours since the Unix epoch (UTC)."""
    device: IntArray
    """Index of the window's series."""

    def __len__(self) -> int:
        return int(self.target_kwh.shape[0])

    def take(self, mask: npt.NDArray[np.bool_] | IntArray) -> Windows:
        return Windows(
            self.history_kwh[mask],
            self.target_kwh[mask],
            self.kind_index[mask],
            self.calendar[mask],
            self.target_hour[mask],
            self.device[mask],
        )


def epoch_hour(at: datetime) -> int:
    return int(at.astimezone(UTC).timestamp() // 3600)


def build_windows(spec: FeatureSpec, series: Sequence[DeviceSeries]) -> Windows:
    """All windows whose history and target hours are all present (no gap inside)."""
    hours = spec.history_hours
    parts: list[tuple[FloatArray, FloatArray, IntArray, FloatArray, IntArray, IntArray]] = []
    for number, item in enumerate(series):
        values = item.values
        if values.size <= hours:
            continue
        frames = np.lib.stride_tricks.sliding_window_view(values, hours + 1)
        complete = np.all(np.isfinite(frames), axis=1)
        targets = np.flatnonzero(complete) + hours  # index of each window's target hour
        if targets.size == 0:
            continue
        calendar = np.array(
            [calendar_features(item.hour_start(int(t)), item.tz) for t in targets],
            dtype=np.float64,
        )
        first = epoch_hour(item.first_hour)
        parts.append(
            (
                frames[complete, :hours],
                frames[complete, hours],
                np.full(targets.size, spec.kind_index(item.kind), dtype=np.int64),
                calendar,
                (first + targets).astype(np.int64),
                np.full(targets.size, number, dtype=np.int64),
            )
        )
    if not parts:
        raise ValueError(f"no complete window of {hours + 1} consecutive hours in the series")
    columns = list(zip(*parts, strict=True))
    return Windows(*(np.concatenate(column) for column in columns))
