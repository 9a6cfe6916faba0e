"""Which devices a fleet has: ids, kinds, zones and sizes, derived from the seed."""

from __future__ import annotations

import random

from simulator.devices import DeviceKind, DeviceModel, DeviceSpec

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


def device_id(index: int) -> str:
    return f"dev-{index:05d}"


def build_fleet(size: int, seed: int) -> list[DeviceModel]:
    rng = random.Random(seed)
    return [
        DeviceModel(
            DeviceSpec(
                device_id=device_id(i),
                kind=DeviceKind.HOUSEHOLD_METER,
                tz=FLEET_ZONES[i % len(FLEET_ZONES)],
                nominal_kw=round(rng.uniform(0.8, 3.5), 2),
            ),
            seed=seed,
        )
        for i in range(size)
    ]
