"""Scenarios on top of the normal fleet: awkward time zones and imperfect delivery.

Chosen by ``--scenario NAME`` (repeatable) or a fleet file's ``scenarios = [...]``:

========================  =======================================================================
``dst``                   only zones with daylight saving time, starting 3 h before the first
                          device's zone next changes (accelerated mode)
``odd-offsets``           only zones with odd offsets: +05:30, +05:45, +10:30/+11, -03:30/-02:30
``clock-skew``            each device's clock is off by up to ``clock_skew_max_s`` (its ``ts``
                          is shifted; the energy is that of the true interval)
``duplicates``            a reading is re-sent (same ``seq``, same bytes) with the next one
``out-of-order``          a reading is held back and sent after the next one
``late-bursts``           a device drops off (status ``offline``) for a few intervals, buffers
                          its readings and sends them in one burst when it is back
``counter-reset``         the device restarts its sequence counter at 0 (a reboot)
========================  =======================================================================

The draws are pure functions of the seed, the device and its tick number, like everything
else in a device, so a scenario run is reproducible.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from simulator.fleet import DST_ZONES, FLEET_ZONES, ODD_OFFSET_ZONES
from simulator.localtime import next_transition


class Scenario(StrEnum):
    DST = "dst"
    ODD_OFFSETS = "odd-offsets"
    CLOCK_SKEW = "clock-skew"
    DUPLICATES = "duplicates"
    OUT_OF_ORDER = "out-of-order"
    LATE_BURSTS = "late-bursts"
    COUNTER_RESET = "counter-reset"


DEFAULT_LATE_BURST_TICKS = (2, 12)


@dataclass(frozen=True, slots=True)
class DeliveryFaults:
    """How often each delivery fault happens; all zero: a perfect device."""

    clock_skew_max_s: int = 0
    duplicate_p: float = 0.0
    """Chance per reading that it is sent again with the next one."""
    out_of_order_p: float = 0.0
    """Chance per reading that it is held back and sent after the next one."""
    late_burst_p: float = 0.0
    """Chance per reading that the device then goes away for a few intervals."""
    late_burst_ticks: tuple[int, int] = DEFAULT_LATE_BURST_TICKS
    """How many intervals it stays away (uniform, inclusive)."""
    counter_reset_p: float = 0.0
    """Chance per reading that the device restarts its ``seq`` at 0 first."""

    @property
    def any(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self) if f.name != "late_burst_ticks")


SCENARIO_DEFAULTS: dict[Scenario, dict[str, float]] = {
    Scenario.CLOCK_SKEW: {"clock_skew_max_s": 300},
    Scenario.DUPLICATES: {"duplicate_p": 0.02},
    Scenario.OUT_OF_ORDER: {"out_of_order_p": 0.02},
    Scenario.LATE_BURSTS: {"late_burst_p": 0.005},
    Scenario.COUNTER_RESET: {"counter_reset_p": 0.001},
}


def delivery_faults(
    scenarios: Iterable[Scenario], overrides: Mapping[str, Any] | None = None
) -> DeliveryFaults:
    """The fault rates of the chosen scenarios, with ``overrides`` (e.g. from a fleet file)."""
    values: dict[str, Any] = {}
    for scenario in scenarios:
        values.update(SCENARIO_DEFAULTS.get(scenario, {}))
    values.update(overrides or {})
    known = {f.name for f in fields(DeliveryFaults)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(
            f"unknown delivery fault settings {sorted(unknown)}; known: {sorted(known)}"
        )
    for name in ("duplicate_p", "out_of_order_p", "late_burst_p", "counter_reset_p"):
        if not 0 <= float(values.get(name, 0.0)) <= 1:
            raise ValueError(f"{name} is a probability, got {values[name]}")
    low, high = values.get("late_burst_ticks", DEFAULT_LATE_BURST_TICKS)
    if not 1 <= int(low) <= int(high):
        raise ValueError("late_burst_ticks must be [low, high] with 1 <= low <= high")
    return DeliveryFaults(
        clock_skew_max_s=int(values.get("clock_skew_max_s", 0)),
        duplicate_p=float(values.get("duplicate_p", 0.0)),
        out_of_order_p=float(values.get("out_of_order_p", 0.0)),
        late_burst_p=float(values.get("late_burst_p", 0.0)),
        late_burst_ticks=(int(low), int(high)),
        counter_reset_p=float(values.get("counter_reset_p", 0.0)),
    )


def fleet_zones(scenarios: Iterable[Scenario]) -> tuple[str, ...]:
    chosen = set(scenarios)
    if Scenario.DST in chosen and Scenario.ODD_OFFSETS in chosen:
        return tuple(z for z in ODD_OFFSET_ZONES if z in DST_ZONES)  # Lord Howe, St John's
    if Scenario.DST in chosen:
        return DST_ZONES
    if Scenario.ODD_OFFSETS in chosen:
        return ODD_OFFSET_ZONES
    return FLEET_ZONES


DST_LEAD_S = 3 * 3600


def dst_start(now_t: int, zone: str) -> int:
    """Where the ``dst`` scenario starts: 3 h before ``zone``'s next offset change after now
    (the zone of the fleet's first device: Berlin, or Lord Howe with ``odd-offsets``)."""
    return next_transition(zone, now_t) - DST_LEAD_S
