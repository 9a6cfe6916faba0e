"""Which devices a fleet has: ids, kinds, zones, places and sizes, derived from the seed.

A fleet is a list of groups (kind mix, zones, size); the default fleet is one group cycling
through :data:`FLEET_ZONES` and :data:`simulator.profiles.DEFAULT_MIX`, so device 0 is a
household meter in Berlin. Each device's own parameters come from a generator seeded by the
fleet seed and the device index alone: growing a fleet never changes its existing devices.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from simulator.devices import DeviceModel, DeviceSpec
from simulator.profiles import DEFAULT_MIX, NOMINAL_KW, DeviceKind
from simulator.randomness import stable_key
from simulator.weather import region_of

FLEET_ZONES = (
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "America/St_Johns",
    "UTC",
)
"""Zones the default fleet cycles through, odd offsets and unusual DST rules included."""

ODD_OFFSET_ZONES = ("Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe", "America/St_Johns")
"""+05:30, +05:45, +10:30/+11:00 (a half-hour DST shift) and -03:30/-02:30."""

DST_ZONES = ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/St_Johns")
"""Zones that change their offset twice a year (two of them on the southern calendar)."""


@dataclass(frozen=True, slots=True)
class DeviceGroup:
    """``count`` devices whose kinds cycle through ``kinds`` and zones through ``zones``."""

    count: int
    kinds: tuple[DeviceKind, ...] = DEFAULT_MIX
    zones: tuple[str, ...] | None = None
    """``None``: :data:`FLEET_ZONES` (or what the scenarios choose)."""
    nominal_kw: tuple[float, float] | None = None
    """Range of nominal power; ``None``: the kind's usual range."""


def device_id(index: int) -> str:
    return f"dev-{index:05d}"


def _spec(
    index: int, seed: int, kind: DeviceKind, tz: str, nominal: tuple[float, float]
) -> DeviceSpec:
    rng = random.Random(stable_key("fleet", seed, index))
    region = region_of(tz)
    return DeviceSpec(
        device_id=device_id(index),
        kind=kind,
        tz=tz,
        nominal_kw=round(rng.uniform(*nominal), 2),
        latitude=round(region.latitude + rng.uniform(-0.25, 0.25), 4),
        longitude=round(region.longitude + rng.uniform(-0.25, 0.25), 4),
        shift_min=rng.randint(-45, 45),
    )


def build_fleet(
    size: int, seed: int, groups: Sequence[DeviceGroup] | None = None
) -> list[DeviceModel]:
    """``size`` device models (``groups``, when given, say which; their counts must add up)."""
    groups = list(groups) if groups else [DeviceGroup(size)]
    if sum(group.count for group in groups) != size:
        raise ValueError(f"the groups have {sum(g.count for g in groups)} devices, not {size}")
    models: list[DeviceModel] = []
    for group in groups:
        for i in range(group.count):
            kind = group.kinds[i % len(group.kinds)]
            zones = group.zones or FLEET_ZONES
            tz = zones[i % len(zones)]
            spec = _spec(len(models), seed, kind, tz, group.nominal_kw or NOMINAL_KW[kind])
            models.append(DeviceModel(spec, seed=seed))
    return models
