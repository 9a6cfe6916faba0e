"""Regional weather: a smooth, seeded outdoor temperature and cloud cover shared by a zone.

Every device in a region sees the same weather, so a cold week raises heating load across the
region at once, as real weather does. Both signals are sums of slow sinusoids (a season, a day,
and a few "weather systems" of 2-9 days with seeded phases): realistic enough to drive loads,
and smooth, so the recent past predicts the near future (what a forecaster can learn).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.randomness import stable_key, uniform

DAY_S = 86_400
YEAR_DAYS = 365.2425
_TAU = 2 * math.pi


@dataclass(frozen=True, slots=True)
class Region:
    """Where a zone's devices are: a representative place and its climate."""

    name: str
    latitude: float
    longitude: float
    mean_c: float
    """Annual mean temperature."""
    seasonal_c: float
    """Half the difference between the warmest and the coldest month."""
    diurnal_c: float
    """Half the typical day-night swing."""

    @property
    def warmest_day(self) -> float:
        """Day of the year (0 = 1 January) of the seasonal maximum: late July or late January."""
        return 200.0 if self.latitude >= 0 else 20.0


REGIONS: dict[str, Region] = {
    "Europe/Berlin": Region("Berlin", 52.52, 13.40, 10.0, 9.5, 4.5),
    "America/New_York": Region("New York", 40.71, -74.01, 13.0, 12.0, 4.5),
    "Asia/Kolkata": Region("Kolkata", 22.57, 88.36, 26.5, 5.0, 4.0),
    "Asia/Kathmandu": Region("Kathmandu", 27.72, 85.32, 18.5, 6.5, 6.0),
    "Australia/Lord_Howe": Region("Lord Howe Island", -31.55, 159.08, 19.5, 3.5, 2.5),
    "America/St_Johns": Region("St. John's", 47.56, -52.71, 5.0, 9.0, 3.5),
    "UTC": Region("Reykjavik", 64.15, -21.94, 5.0, 6.0, 2.5),
    "Europe/London": Region("London", 51.51, -0.13, 11.5, 7.0, 4.0),
    "Asia/Tokyo": Region("Tokyo", 35.68, 139.69, 16.0, 10.5, 4.0),
    "America/Los_Angeles": Region("Los Angeles", 34.05, -118.24, 18.5, 4.5, 6.0),
    "Australia/Sydney": Region("Sydney", -33.87, 151.21, 18.0, 5.0, 4.0),
}
"""Zones with a known place; any other zone gets a temperate place on its UTC offset."""


def region_of(zone_name: str, utc_offset_h: float = 0.0) -> Region:
    found = REGIONS.get(zone_name)
    if found is not None:
        return found
    return Region(zone_name, 45.0, max(-180.0, min(180.0, 15.0 * utc_offset_h)), 12.0, 8.0, 4.0)


_SYSTEMS = ((2.3, 1.6), (3.7, 2.2), (6.1, 1.8), (8.9, 1.2))
"""Weather systems: (period in days, temperature amplitude in degrees C); unrolled in
:meth:`Weather.temperature_c`."""
_CLOUD_SYSTEMS = (1.3, 2.1, 3.4, 5.5)
"""Periods in days of the cloud-cover components."""


@dataclass(frozen=True, slots=True)
class Weather:
    """The weather of one region under one seed: pure functions of the Unix instant."""

    region: Region
    phases: tuple[float, ...]
    cloud_phases: tuple[float, ...]
    cloudiness: float
    """Mean cloud cover in [0, 1]: sunnier regions get less."""

    @classmethod
    def of(cls, region: Region, seed: int) -> Weather:
        key = stable_key("weather", seed, region.name)
        phases = tuple(_TAU * uniform(key, i) for i in range(len(_SYSTEMS)))
        cloud_phases = tuple(_TAU * uniform(key, 100 + i) for i in range(len(_CLOUD_SYSTEMS)))
        cloudiness = 0.35 + 0.3 * uniform(key, 200)
        return cls(region, phases, cloud_phases, cloudiness)

    def temperature_c(self, t: float) -> float:
        """Outdoor temperature at Unix time ``t``."""
        region = self.region
        days = t / DAY_S
        season = math.cos(_TAU * ((days % YEAR_DAYS) - region.warmest_day) / YEAR_DAYS)
        solar_hour = (t / 3600 + region.longitude / 15) % 24
        diurnal = math.cos(_TAU * (solar_hour - 15.0) / 24)
        # The weather systems of _SYSTEMS, unrolled: this runs for every reading.
        p0, p1, p2, p3 = self.phases
        systems = (
            1.6 * math.sin(_TAU * days / 2.3 + p0)
            + 2.2 * math.sin(_TAU * days / 3.7 + p1)
            + 1.8 * math.sin(_TAU * days / 6.1 + p2)
            + 1.2 * math.sin(_TAU * days / 8.9 + p3)
        )
        return region.mean_c + region.seasonal_c * season + region.diurnal_c * diurnal + systems

    def cloud_cover(self, t: float) -> float:
        """Fraction of the sky covered, in [0, 1]."""
        days = t / DAY_S
        wave = sum(
            math.sin(_TAU * days / period + phase)
            for period, phase in zip(_CLOUD_SYSTEMS, self.cloud_phases, strict=True)
        )
        # wave is in [-4, 4]; a logistic keeps the cover in (0, 1) around the regional mean.
        bias = math.log(self.cloudiness / (1 - self.cloudiness))
        return 1 / (1 + math.exp(-(bias + 0.9 * wave)))

    def sun_elevation_sin(self, t: float) -> float:
        """Sine of the sun's elevation at the region's place (negative: below the horizon)."""
        region = self.region
        days = t / DAY_S
        declination = math.radians(-23.44) * math.cos(_TAU * ((days % YEAR_DAYS) + 10) / 365.0)
        solar_hour = (t / 3600 + region.longitude / 15) % 24
        hour_angle = _TAU * (solar_hour - 12) / 24
        lat = math.radians(region.latitude)
        return math.sin(lat) * math.sin(declination) + math.cos(lat) * math.cos(
            declination
        ) * math.cos(hour_angle)
