"""KPIs of a device or a group of devices over a window, from 15-minute rollup rows: pure.

Inputs are rows of ``readings_15m`` already summed per (bucket, zone, tariff, region) over the
devices of a group (one device is a group of one), so a fleet-day is a few thousand rows, not
one per device and quarter.

* **energy**: the sum of the buckets' energy (kWh).
* **demand** of a bucket: the group's mean power in that 15-minute UTC bucket (kW, the sum of
  its devices' mean power), the interval utilities bill demand on.
* **peak demand**: the highest demand, with the bucket's start (earliest of equal peaks).
* **mean power**: the mean demand over the buckets with readings, so a gap does not pull it
  down (the completeness beside it says there was one).
* **load factor**: mean power / peak demand, in (0, 1]; ``None`` unless the mean power is
  positive (a net-exporting group, e.g. solar inverters, has no meaningful load factor).
* **cost**: each bucket's energy times the rate its tariff has at the bucket's local wall-clock
  time (in the zone of the devices that produced it); per currency.
* **carbon**: each bucket's energy times its region's intensity at that local time (kg CO2e).
* **completeness**: device-quarters with readings / device-quarters the window holds for the
  devices that reported in it; a KPI over a gap says so.
* **SEC** (specific energy consumption, kWh per unit): the energy of the quarters that
  reported production (industrial lines) over the units they produced; ``None`` where no
  quarter reported any (or none was produced). Other devices of a group do not dilute it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from api.kpi.tariffs import TariffBook

QUARTER = timedelta(minutes=15)


class Quarter(NamedTuple):
    """Rollup figures of one 15-minute UTC bucket, summed over the devices of a group that
    share a zone, a tariff and a region. (A named tuple: a device-month is ~3,000 of them, and
    a frozen dataclass takes several times as long to build.)"""

    bucket: datetime
    tz: str
    tariff: str
    region: str
    energy_kwh: float
    power_kw: float | None
    """Sum of the devices' mean power in the bucket; ``None`` when none reported power."""
    devices: int = 1
    """Devices with readings in the bucket."""
    production_units: float | None = None
    """Units the devices produced; ``None`` when none of them reported production."""
    production_energy_kwh: float | None = None
    """Energy of the devices that reported production (SEC's numerator)."""


@dataclass(frozen=True, slots=True)
class Span:
    """``devices`` of zone ``tz`` reported in the window: each was expected every quarter."""

    tz: str
    devices: int


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """First instant (UTC) of the local ``day`` (a skipped midnight starts at the gap's end)."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Window:
    """The time a KPI covers: UTC instants ``[first, last)``, or, with ``local_days``, the
    local dates ``[start, end)`` in each device's own zone (``first``/``last`` then bound the
    instants any zone's days can span)."""

    first: datetime
    last: datetime
    local_days: tuple[date, date] | None = None

    @classmethod
    def of_days(cls, start: date, end: date, zone: ZoneInfo | None) -> Window:
        """Local days ``[start, end)`` of ``zone``; ``None``: of each device's own zone."""
        if zone is not None:
            return cls(day_start(start, zone), day_start(end, zone))
        widest = timedelta(hours=15)  # beyond every UTC offset in use (-12:00 .. +14:00)
        first = datetime.combine(start, time(0), tzinfo=UTC) - widest
        last = datetime.combine(end, time(0), tzinfo=UTC) + widest
        return cls(first, last, (start, end))

    def expected_quarters(self, tz: str) -> int:
        """15-minute buckets the window holds for a device of zone ``tz`` (92 on a Berlin
        spring-forward day, 100 on a fall-back day, 94 on a Lord Howe spring-forward day)."""
        if self.local_days is None:
            return round((self.last - self.first) / QUARTER)
        zone = ZoneInfo(tz)
        start, end = self.local_days
        return round((day_start(end, zone) - day_start(start, zone)) / QUARTER)

    def holds(self, bucket: datetime, tz: str) -> bool:
        """Whether the bucket starting at ``bucket`` belongs to the window."""
        if self.local_days is None:
            return self.first <= bucket < self.last
        local = bucket.astimezone(ZoneInfo(tz)).date()
        return self.local_days[0] <= local < self.local_days[1]


@dataclass(frozen=True, slots=True)
class Kpis:
    energy_kwh: float
    cost: dict[str, float]
    """Cost per currency (one entry unless the group's tariffs use several currencies)."""
    carbon_kg: float
    peak_kw: float | None
    peak_at: datetime | None
    """Start (UTC) of the peak bucket."""
    mean_power_kw: float | None
    load_factor: float | None
    quarters: int
    """Device-quarters with readings."""
    expected_quarters: int
    completeness: float
    production_units: float | None = None
    sec_kwh_per_unit: float | None = None


@dataclass(slots=True)
class _Prices:
    """Rates looked up once per tariff and local quarter of the week in a month (a month of
    quarters needs ~700 lookups, not ~3,000), intensities once per region and local hour
    (per row for a region with its own zone: then they depend on the instant)."""

    book: TariffBook
    zones: dict[str, ZoneInfo] = field(default_factory=dict)
    rates: dict[tuple[str, int, int, int, int], float] = field(default_factory=dict)
    intensities: dict[tuple[str, int], float] = field(default_factory=dict)

    def at(self, bucket: datetime, tz: str, tariff: str, region: str) -> tuple[float, float]:
        zone = self.zones.get(tz)
        if zone is None:
            zone = self.zones[tz] = ZoneInfo(tz)
        local = bucket.astimezone(zone)
        key = (tariff, local.month, local.weekday(), local.hour, local.minute)
        rate = self.rates.get(key)
        if rate is None:
            rate = self.rates[key] = self.book.tariffs[tariff].rate_at(local)
        intensity = self.intensities.get((region, local.hour))
        if intensity is None:
            source = self.book.regions[region]
            intensity = source.intensity_at(local)
            if source.tz is None:  # else it depends on the instant, not the local hour
                self.intensities[region, local.hour] = intensity
        return rate, intensity


class Slot(NamedTuple):
    """Quarters priced alike, as :class:`_Sums` takes them: one quarter of a group (with its
    devices), or several sharing a zone, tariff, region and local quarter of the week."""

    at: datetime
    """Start (UTC) of one of the quarters: its local time prices them all."""
    tz: str
    tariff: str
    region: str
    energy_kwh: float
    quarters: int
    """Device-quarters with readings."""
    production_units: float | None = None
    """Units produced; ``None`` when none of the quarters reported production."""
    production_energy_kwh: float | None = None
    """Energy of the quarters that reported production (SEC's numerator)."""


@dataclass(frozen=True, slots=True)
class Totals:
    """A device's quarters priced by the database (:func:`api.kpi.queries.device_figures`):
    sums over every quarter of the device's zone in the window."""

    energy_kwh: float
    cost: float
    """In the device's tariff's currency."""
    carbon_kg: float
    quarters: int
    production_units: float | None
    production_energy_kwh: float | None


@dataclass(frozen=True, slots=True)
class Demand:
    """Peak demand (the highest 15-minute demand, with its bucket's start, the earliest of
    equal peaks) and mean demand over the buckets with power; ``None`` without power."""

    peak_kw: float | None = None
    peak_at: datetime | None = None
    mean_kw: float | None = None

    @classmethod
    def of(cls, demand: dict[datetime, float]) -> Demand:
        """From the demand of each bucket."""
        peak_kw: float | None = None
        peak_at: datetime | None = None
        for bucket in sorted(demand):
            if peak_kw is None or demand[bucket] > peak_kw:
                peak_kw, peak_at = demand[bucket], bucket
        mean = math.fsum(demand.values()) / len(demand) if demand else None
        return cls(peak_kw, peak_at, mean)


@dataclass(slots=True)
class _Sums:
    """Energy, cost, carbon and production of priced quarters (or slots)."""

    book: TariffBook
    prices: _Prices
    energy: float = 0.0
    carbon: float = 0.0
    cost: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    quarters: int = 0
    production: float | None = None
    production_energy: float = 0.0

    def add(self, slot: Slot) -> None:
        at, tz, tariff, region, energy_kwh, quarters, production, production_energy = slot
        rate, intensity = self.prices.at(at, tz, tariff, region)
        self.energy += energy_kwh
        self.cost[self.book.tariffs[tariff].currency] += energy_kwh * rate
        self.carbon += energy_kwh * intensity
        self.quarters += quarters
        if production is not None:
            self.production = (self.production or 0.0) + production
            self.production_energy += production_energy or 0.0

    def kpis(self, demand: Demand, spans: Iterable[Span], window: Window) -> Kpis:
        expected = sum(span.devices * window.expected_quarters(span.tz) for span in spans)
        peak_kw, mean = demand.peak_kw, demand.mean_kw
        if peak_kw is not None and mean is not None:
            # The mean of values never exceeds their maximum, bar a rounding ulp.
            mean = min(peak_kw, mean)
        produced = self.production
        return Kpis(
            energy_kwh=self.energy,
            cost=dict(self.cost),
            carbon_kg=self.carbon,
            peak_kw=peak_kw,
            peak_at=demand.peak_at,
            mean_power_kw=mean,
            load_factor=mean / peak_kw if mean is not None and peak_kw and mean > 0 else None,
            quarters=self.quarters,
            expected_quarters=expected,
            completeness=min(1.0, self.quarters / expected) if expected else 0.0,
            production_units=produced,
            sec_kwh_per_unit=self.production_energy / produced if produced else None,
        )


def _slot(row: Quarter) -> Slot:
    return Slot(
        row.bucket,
        row.tz,
        row.tariff,
        row.region,
        row.energy_kwh,
        row.devices,
        row.production_units,
        row.production_energy_kwh,
    )


def compute(
    rows: Iterable[Quarter], spans: Iterable[Span], window: Window, book: TariffBook
) -> Kpis:
    """The KPIs of one group over ``window``; rows outside the window are ignored."""
    sums = _Sums(book, _Prices(book))
    demand: dict[datetime, float] = defaultdict(float)
    fixed = window.local_days is None
    first, last = window.first, window.last
    for row in rows:
        bucket, tz = row.bucket, row.tz
        if fixed:
            if not first <= bucket < last:
                continue
        elif not window.holds(bucket, tz):
            continue
        sums.add(_slot(row))
        if row.power_kw is not None:
            demand[bucket] += row.power_kw
    return sums.kpis(Demand.of(demand), spans, window)


@dataclass(frozen=True, slots=True)
class Priced:
    """One device's window as :func:`api.kpi.queries.device_figures` reads it."""

    totals: Totals
    """Its quarters of its own zone, priced by the database with ``tariff``."""
    tariff: str
    others: list[Quarter]
    """Quarters reported from another zone (a device that moved), left to price here."""
    demand: Demand


def compute_totals(priced: Priced, spans: Iterable[Span], window: Window, book: TariffBook) -> Kpis:
    """One device's KPIs from what the database priced: the figures :func:`compute` gives from
    all its quarters."""
    totals = priced.totals
    sums = _Sums(
        book,
        _Prices(book),
        energy=totals.energy_kwh,
        carbon=totals.carbon_kg,
        quarters=totals.quarters,
        production=totals.production_units,
        production_energy=totals.production_energy_kwh or 0.0,
    )
    if totals.quarters:
        sums.cost[book.tariffs[priced.tariff].currency] += totals.cost
    for row in priced.others:
        sums.add(_slot(row))
    return sums.kpis(priced.demand, spans, window)
