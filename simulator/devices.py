"""Device models: pure and seeded, so the same seed and instant give byte-identical readings.

A device draws power from a daily profile evaluated in its own local time (so an evening peak
is an evening peak in Kolkata and in Berlin alike), plus reproducible noise.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from schema.wire import Energy, Power, Reading


class DeviceKind(StrEnum):
    HOUSEHOLD_METER = "household_meter"


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    device_id: str
    kind: DeviceKind
    tz: str
    nominal_kw: float


def daily_shape(local: datetime) -> float:
    """Fraction of nominal power at a local wall-clock time: base load plus two daily peaks."""
    hour = local.hour + local.minute / 60
    morning = math.exp(-(((hour - 7.5) / 1.5) ** 2))
    evening = 1.4 * math.exp(-(((hour - 19.0) / 2.0) ** 2))
    weekend = 1.15 if local.weekday() >= 5 else 1.0
    return (0.25 + 0.5 * morning + 0.6 * evening) * weekend


@dataclass(frozen=True, slots=True)
class DeviceModel:
    spec: DeviceSpec
    seed: int

    def reading(self, seq: int, at: datetime, interval_s: int) -> Reading:
        """The reading with sequence number ``seq``, taken at the aware instant ``at``."""
        if at.tzinfo is None:
            raise ValueError("reading times must be timezone-aware")
        local = at.astimezone(ZoneInfo(self.spec.tz))
        rng = random.Random(f"{self.seed}:{self.spec.device_id}:{seq}")
        power_kw = self.spec.nominal_kw * daily_shape(local) * rng.lognormvariate(0.0, 0.1)
        energy_kwh = power_kw * interval_s / 3600
        return Reading(
            device_id=self.spec.device_id,
            seq=seq,
            ts=local,
            tz=self.spec.tz,
            interval_s=interval_s,
            energy=Energy(value=round(energy_kwh, 6)),
            power=Power(value=round(power_kw, 4)),
        )


def tick_time(start: datetime, tick: int, interval_s: int) -> datetime:
    """Simulated instant of tick number ``tick`` (0-based)."""
    return start + timedelta(seconds=tick * interval_s)
