"""Load profiles per device kind: the daily and weekly shape of demand in local wall-clock time.

A profile is a table of 1440 per-minute fractions of a device's nominal power, one table for
work days and one for weekends, built once per kind from a few smooth bumps (a morning peak, an
evening peak, office hours...). Device models shift it by a few minutes per device, scale it by
the device's nominal power and modulate it with the regional weather (:mod:`simulator.weather`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from enum import StrEnum


class DeviceKind(StrEnum):
    HOUSEHOLD_METER = "household_meter"
    HVAC = "hvac"
    EV_CHARGER = "ev_charger"
    FRIDGE = "fridge"
    WATER_HEATER = "water_heater"
    SOLAR_INVERTER = "solar_inverter"
    INDUSTRIAL_LINE = "industrial_line"
    """A production line that reports units produced per interval besides energy."""


MINUTES_PER_DAY = 1440


def _bump(hour: float, centre: float, width: float) -> float:
    """A smooth peak at ``centre`` (local hours) of about ``width`` hours, wrapping at midnight."""
    distance = min(abs(hour - centre), 24 - abs(hour - centre))
    return math.exp(-((distance / width) ** 2))


def _ramp(hour: float, on: float, off: float, edge: float = 1.0) -> float:
    """About 1 between ``on`` and ``off`` (local hours), with soft edges ``edge`` hours wide."""
    rise = 1 / (1 + math.exp(-(hour - on) * 4 / edge))
    fall = 1 / (1 + math.exp((hour - off) * 4 / edge))
    return rise * fall


def _household(hour: float, weekend: bool) -> float:
    if weekend:
        return (
            0.20
            + 0.35 * _bump(hour, 9.5, 1.6)
            + 0.30 * _bump(hour, 13.0, 2.0)
            + 0.80 * _bump(hour, 19.0, 2.2)
        )
    return (
        0.18
        + 0.50 * _bump(hour, 7.0, 1.1)
        + 0.12 * _bump(hour, 12.5, 1.5)
        + 0.85 * _bump(hour, 19.5, 2.0)
    )


def _occupancy(hour: float, weekend: bool) -> float:
    """HVAC of an office: scheduled for office hours on work days, setback otherwise."""
    if weekend:
        return 0.12
    return 0.12 + 0.88 * _ramp(hour, 7.0, 18.5, edge=1.5)


def _fridge(hour: float, weekend: bool) -> float:
    meals = (9.5, 13.0, 19.0) if weekend else (7.0, 12.5, 19.0)
    return 0.38 + sum(0.10 * _bump(hour, meal, 1.0) for meal in meals)


def _water_heater(hour: float, weekend: bool) -> float:
    if weekend:
        return 0.07 + 0.65 * _bump(hour, 8.75, 1.2) + 0.45 * _bump(hour, 20.0, 1.5)
    return 0.07 + 0.90 * _bump(hour, 6.75, 0.7) + 0.50 * _bump(hour, 20.0, 1.3)


def _household_base(hour: float, weekend: bool) -> float:
    """What a house behind a solar inverter uses, as a fraction of its panels' peak power."""
    return 0.08 * _household(hour, weekend) / 0.6


def _shifts(hour: float, weekend: bool) -> float:
    """How hard an industrial line runs: two shifts 06:00-22:00 on work days, with a dip at
    each meal break and the 14:00 changeover; idle (0) at night and at weekends."""
    if weekend:
        return 0.0
    running = _ramp(hour, 6.0, 22.0, edge=0.4)
    pauses = 0.7 * _bump(hour, 10.0, 0.25) + 0.8 * _bump(hour, 14.0, 0.3)
    pauses += 0.7 * _bump(hour, 18.5, 0.25)
    return max(0.0, running * (0.95 - pauses))


def _no_shape(_hour: float, _weekend: bool) -> float:
    return 1.0


_SHAPES: dict[DeviceKind, Callable[[float, bool], float]] = {
    DeviceKind.HOUSEHOLD_METER: _household,
    DeviceKind.HVAC: _occupancy,
    DeviceKind.EV_CHARGER: _no_shape,  # sessions, see devices.DeviceModel
    DeviceKind.FRIDGE: _fridge,
    DeviceKind.WATER_HEATER: _water_heater,
    DeviceKind.SOLAR_INVERTER: _household_base,
    DeviceKind.INDUSTRIAL_LINE: _shifts,  # utilisation; power follows it, see devices.py
}


@functools.cache
def shape_table(kind: DeviceKind, weekend: bool) -> tuple[float, ...]:
    """Fraction of nominal power for each local minute of a work day (or weekend day)."""
    shape = _SHAPES[kind]
    return tuple(shape(minute / 60, weekend) for minute in range(MINUTES_PER_DAY))


NOMINAL_KW: dict[DeviceKind, tuple[float, float]] = {
    DeviceKind.HOUSEHOLD_METER: (0.8, 3.5),
    DeviceKind.HVAC: (4.0, 15.0),
    DeviceKind.EV_CHARGER: (3.7, 11.0),
    DeviceKind.FRIDGE: (0.10, 0.30),
    DeviceKind.WATER_HEATER: (2.0, 4.5),
    DeviceKind.SOLAR_INVERTER: (3.0, 10.0),
    DeviceKind.INDUSTRIAL_LINE: (40.0, 160.0),
}
"""Range of nominal power per kind (for a solar inverter: the panels' peak power)."""

NOISE_SD: dict[DeviceKind, float] = {
    DeviceKind.HOUSEHOLD_METER: 0.08,
    DeviceKind.HVAC: 0.05,
    DeviceKind.EV_CHARGER: 0.03,
    DeviceKind.FRIDGE: 0.04,  # compressor cycles average out within minutes
    DeviceKind.WATER_HEATER: 0.10,
    DeviceKind.SOLAR_INVERTER: 0.05,
    DeviceKind.INDUSTRIAL_LINE: 0.04,
}
"""Relative standard deviation of the multiplicative noise of one reading: moderate, so the
structure (daily and weekly cycles, weather) dominates and a forecaster can learn it."""

FIRMWARE: dict[DeviceKind, str] = {
    DeviceKind.HOUSEHOLD_METER: "meter-fw 4.2.1",
    DeviceKind.HVAC: "hvac-ctl 2.8.0",
    DeviceKind.EV_CHARGER: "evse 1.14.3",
    DeviceKind.FRIDGE: "coolbox 3.0.7",
    DeviceKind.WATER_HEATER: "aqua 5.1.0",
    DeviceKind.SOLAR_INVERTER: "pv-inv 7.3.2",
    DeviceKind.INDUSTRIAL_LINE: "line-plc 6.2.0",
}

DEFAULT_MIX: tuple[DeviceKind, ...] = (
    DeviceKind.HOUSEHOLD_METER,
    DeviceKind.HVAC,
    DeviceKind.HOUSEHOLD_METER,
    DeviceKind.SOLAR_INVERTER,
    DeviceKind.FRIDGE,
    DeviceKind.HOUSEHOLD_METER,
    DeviceKind.WATER_HEATER,
    DeviceKind.EV_CHARGER,
    DeviceKind.HOUSEHOLD_METER,
    DeviceKind.HVAC,
)
"""Kinds of the default fleet by device index (cycled): half household meters, then the rest.
Ten kinds against seven zones: every kind meets every zone. Industrial lines are not in it
(the forecast model is trained on these kinds): a fleet file asks for them by name."""

LINE_BASE_LOAD = 0.2
"""An industrial line's load when it makes nothing (lighting, compressed air, the hall's
heating), as a fraction of its nominal power; the rest scales with the units it produces."""
LINE_KWH_PER_UNIT = (0.5, 1.5)
"""Range of the energy one unit takes on a line (each line draws its own value)."""
LINE_STOPPAGE_PER_HOUR = 0.04
"""Chance that a line stands still for a given hour (a breakdown, a missing part)."""
