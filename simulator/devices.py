"""Device models: pure and seeded, so the same seed and instant give byte-identical readings.

A device's power at an instant is one pure function, :meth:`DeviceModel.power_kw`, of the
Unix time: its kind's daily profile in the device's **local** wall-clock time (work days and
weekends differ; see :mod:`simulator.profiles`), its region's weather (temperature and, for
solar, sun and clouds; :mod:`simulator.weather`), and noise that depends only on the device and
the instant (:mod:`simulator.randomness`). Live readings and the history export both call it, so
the forecaster trains on exactly what the fleet later publishes.

An industrial line also reports the units it produced (:meth:`DeviceModel.production_units`),
and its power follows them: a base load plus a per-unit energy (both drawn per line) times
the production rate, which follows the shift pattern (none at night, at weekends or in an
hour the line stands still), plus noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from schema.wire import Energy, Power, Production, Reading
from simulator.localtime import UNIX_EPOCH_WEEKDAY, local_datetime, utc_offset_s
from simulator.profiles import (
    FIRMWARE,
    LINE_BASE_LOAD,
    LINE_KWH_PER_UNIT,
    LINE_STOPPAGE_PER_HOUR,
    NOISE_SD,
    DeviceKind,
    shape_table,
)
from simulator.randomness import normal, stable_key, uniform
from simulator.weather import Weather, region_of

__all__ = ["DeviceKind", "DeviceModel", "DeviceSpec", "tick_time"]

DAY_S = 86_400
_SOLAR_NOISE = 0x5EED_0F_50_1A
_LINE_NOISE = 0x11E_0F_0A_17


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    device_id: str
    kind: DeviceKind
    tz: str
    nominal_kw: float
    """Rated power; for a solar inverter the panels' peak power."""
    latitude: float | None = None
    """Where the device is; ``None``: its zone's representative place."""
    longitude: float | None = None
    shift_min: int = 0
    """This household's habits: its daily profile runs this many minutes later (or earlier)."""
    firmware: str | None = None

    @property
    def place(self) -> tuple[float, float]:
        region = region_of(self.tz)
        return (
            region.latitude if self.latitude is None else self.latitude,
            region.longitude if self.longitude is None else self.longitude,
        )

    @property
    def firmware_version(self) -> str:
        return self.firmware or FIRMWARE[self.kind]


@dataclass(frozen=True, slots=True)
class DeviceModel:
    spec: DeviceSpec
    seed: int
    _key: int = field(init=False, repr=False, compare=False)
    _weather: Weather = field(init=False, repr=False, compare=False)
    _workday: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _weekend: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _noise_sd: float = field(init=False, repr=False, compare=False)
    _kwh_per_unit: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        spec = self.spec
        hours = utc_offset_s(spec.tz, 0) / 3600
        set_ = object.__setattr__
        set_(self, "_key", stable_key("device", self.seed, spec.device_id))
        set_(self, "_weather", Weather.of(region_of(spec.tz, hours), self.seed))
        set_(self, "_workday", shape_table(spec.kind, False))
        set_(self, "_weekend", shape_table(spec.kind, True))
        set_(self, "_noise_sd", NOISE_SD[spec.kind])
        low, high = LINE_KWH_PER_UNIT
        per_unit = low + (high - low) * uniform(
            stable_key("kwh-per-unit", self.seed, spec.device_id), 0
        )
        set_(self, "_kwh_per_unit", round(per_unit, 3))

    # -- the one power function ------------------------------------------------------------

    def _shape(self, t: int) -> tuple[float, int, int]:
        """(profile value, local day number, local minute of day) at Unix time ``t``."""
        spec = self.spec
        local = t + utc_offset_s(spec.tz, t)
        day = local // DAY_S
        weekend = (day + UNIX_EPOCH_WEEKDAY) % 7 >= 5
        minute_of_day = (local // 60) % 1440
        table = self._weekend if weekend else self._workday
        return table[(minute_of_day - spec.shift_min) % 1440], day, minute_of_day

    def power_kw(self, t: int) -> float:
        """Mean power (kW, negative: net export) over the interval starting at Unix time ``t``."""
        spec = self.spec
        shape, day, minute_of_day = self._shape(t)
        noise = 1.0 + self._noise_sd * normal(self._key, t)
        kind = spec.kind
        if kind is DeviceKind.INDUSTRIAL_LINE:
            base = spec.nominal_kw * LINE_BASE_LOAD * noise
            return base + self._kwh_per_unit * self._units_per_hour(t, shape)
        if kind is DeviceKind.EV_CHARGER:
            return spec.nominal_kw * (0.002 + self._charging(day, minute_of_day) * noise)
        temp = self._weather.temperature_c(t)
        if kind is DeviceKind.HOUSEHOLD_METER:
            # Electric heating on cold days, some air conditioning on hot ones.
            load = shape * (1 + 0.03 * max(0.0, 14 - temp) + 0.025 * max(0.0, temp - 24))
        elif kind is DeviceKind.HVAC:
            demand = 0.10 + 0.065 * max(0.0, temp - 21) + 0.05 * max(0.0, 16 - temp)
            load = min(1.05, 0.04 + shape * demand * 2.2)
        elif kind is DeviceKind.FRIDGE:
            # A compressor works noticeably harder in a warm kitchen.
            load = shape * (1 + 0.03 * (temp - 20))
        elif kind is DeviceKind.WATER_HEATER:
            load = shape * (1 + 0.02 * max(0.0, 15 - temp))
        else:  # solar inverter: the house's use minus what the panels make
            return spec.nominal_kw * (shape * noise - self._pv_fraction(t, temp))
        return spec.nominal_kw * load * noise

    @property
    def kwh_per_unit(self) -> float:
        """Energy one unit takes on this line, above the base load (industrial lines only)."""
        return self._kwh_per_unit

    def _units_per_hour(self, t: int, shape: float) -> float:
        """An industrial line's production rate at ``t``: its capacity (what the nominal power
        above the base load makes) times the shift profile, zero in a stopped hour."""
        if uniform(self._key ^ _LINE_NOISE, t // 3600) < LINE_STOPPAGE_PER_HOUR:
            return 0.0
        capacity = self.spec.nominal_kw * (1 - LINE_BASE_LOAD) / self._kwh_per_unit
        pace = 1.0 + 0.05 * normal(self._key ^ _LINE_NOISE, t)
        return capacity * shape * pace

    def production_units(self, t: int, interval_s: int) -> float | None:
        """Units produced in ``[t, t + interval_s)``; ``None`` for kinds that produce nothing."""
        if self.spec.kind is not DeviceKind.INDUSTRIAL_LINE:
            return None
        shape, _, _ = self._shape(t)
        return round(self._units_per_hour(t, shape) * interval_s / 3600, 3)

    def _charging(self, day: int, minute_of_day: int) -> float:
        """EV charging at this local minute: one session a day, evenings on work days."""
        level = 0.0
        for session_day, minute in ((day, minute_of_day), (day - 1, minute_of_day + 1440)):
            weekend = (session_day + UNIX_EPOCH_WEEKDAY) % 7 >= 5
            jitter, length = (
                uniform(self._key, 2 * session_day),
                uniform(self._key, 2 * session_day + 1),
            )
            if weekend:
                start = 11 * 60 + (jitter - 0.5) * 120
                duration = 90 + (length - 0.5) * 40
            else:
                start = 18 * 60 + (jitter - 0.5) * 90
                duration = 150 + (length - 0.5) * 60
            start += self.spec.shift_min
            into = minute - start
            if 0 <= into < duration:
                left = duration - into
                level = max(level, 0.95 if left >= 30 else 0.3 + 0.65 * left / 30)
        return level

    def _pv_fraction(self, t: int, temp: float) -> float:
        """Solar generation as a fraction of peak: sun height, clouds, heat derating."""
        sun = self._weather.sun_elevation_sin(t)
        if sun <= 0:
            return 0.0
        clouds = self._weather.cloud_cover(t)
        derate = 1 - 0.004 * max(0.0, temp - 25)
        flicker = 1 + 0.05 * normal(self._key ^ _SOLAR_NOISE, t)
        return 0.85 * math.pow(sun, 1.2) * (1 - 0.75 * clouds) * derate * flicker

    # -- readings ------------------------------------------------------------------------------

    def energy_kwh(self, t: int, interval_s: int) -> float:
        """Energy of the interval ``[t, t + interval_s)`` as a reading reports it."""
        return round(self.power_kw(t) * interval_s / 3600, 6)

    def reading(self, seq: int, at: datetime, interval_s: int) -> Reading:
        """The reading with sequence number ``seq`` for the interval starting at aware ``at``."""
        if at.tzinfo is None:
            raise ValueError("reading times must be timezone-aware")
        t = int(at.timestamp())
        return self.make_reading(seq, t, interval_s, self.power_kw(t))

    def make_reading(
        self, seq: int, t: int, interval_s: int, power_kw: float, *, skew_s: int = 0
    ) -> Reading:
        """A reading of ``power_kw`` over ``[t, t + interval_s)``, stamped by a clock that is
        ``skew_s`` seconds off (the energy is the interval's; only ``ts`` is skewed). A line's
        production is the interval's too."""
        units = self.production_units(t, interval_s)
        return Reading(
            device_id=self.spec.device_id,
            seq=seq,
            ts=local_datetime(self.spec.tz, t + skew_s),
            tz=self.spec.tz,
            interval_s=interval_s,
            energy=Energy(value=round(power_kw * interval_s / 3600, 6)),
            power=Power(value=round(power_kw, 4)),
            production=None if units is None else Production(value=units),
        )


def tick_time(start: datetime, tick: int, interval_s: int) -> datetime:
    """Simulated instant of tick number ``tick`` (0-based)."""
    return start + timedelta(seconds=tick * interval_s)
