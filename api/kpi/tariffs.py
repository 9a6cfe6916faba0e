"""Tariffs and grid carbon intensities in local wall-clock time, and who uses which: pure.

A *tariff book* names tariffs (a base rate per kWh plus bands by weekday, wall-clock hours and
months; the first band that matches wins), carbon *regions* (a constant kg CO2e/kWh or 24 hourly
values by local hour) and the assignment of both to devices and locations (a device's own entry
wins over its location's, which wins over the defaults). It is read from TOML or JSON and
validated by pydantic; :class:`BookError` carries every problem found, one per line.

Bands are in the device's local wall-clock time, at 15-minute boundaries. Every UTC offset is a
multiple of 15 minutes, so each 15-minute UTC rollup bucket lies inside exactly one band: a day
of 23 hours simply has one hour less of the band the DST gap falls in, and a day of 25 hours one
more of the band the repeated hour falls in.
"""

from __future__ import annotations

import json
import tomllib
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_SETS: dict[str, tuple[Weekday, ...]] = {
    "all": WEEKDAYS,
    "weekdays": WEEKDAYS[:5],
    "weekends": WEEKDAYS[5:],
}
MINUTES_PER_DAY = 24 * 60
Rate = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class BookError(ValueError):
    """A tariff book that cannot be used; the message lists every problem, one per line."""


def _minutes(value: str, *, field: str) -> int:
    """``"17:00"`` -> 1020; ``"24:00"`` (end of day) -> 1440; only quarter hours."""
    try:
        hours, minutes = (int(part) for part in value.split(":"))
    except ValueError as exc:
        raise ValueError(f"{field}: {value!r} is not HH:MM") from exc
    total = hours * 60 + minutes
    if not (0 <= minutes < 60 and 0 <= total <= MINUTES_PER_DAY):
        raise ValueError(f"{field}: {value!r} is not a time of day between 00:00 and 24:00")
    if total % 15:
        raise ValueError(
            f"{field}: {value!r} is not on a quarter hour (bands must start and end at :00, "
            ":15, :30 or :45 so that every 15-minute bucket lies in one band)"
        )
    return total


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Band(_Frozen):
    """A rate in force on ``days`` from ``start`` to ``end`` (local wall clock) in ``months``."""

    name: str = ""
    rate: Rate
    """Price per kWh, in the tariff's currency."""
    days: tuple[Weekday, ...] | Literal["all", "weekdays", "weekends"] = "all"
    start: str = "00:00"
    end: str = "24:00"
    """Exclusive; ``24:00`` is the end of the day. ``end < start`` wraps past midnight (the
    part after midnight belongs to the next day's weekday)."""
    months: tuple[Annotated[int, Field(ge=1, le=12)], ...] = tuple(range(1, 13))
    """The season, as months of the year (e.g. ``[6, 7, 8]``)."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        start = _minutes(self.start, field="start")
        end = _minutes(self.end, field="end")
        if start == end:
            raise ValueError(f"band {self.name!r}: start and end are both {self.start}")
        if not self.months:
            raise ValueError(f"band {self.name!r}: months is empty")
        return self

    @cached_property
    def weekdays(self) -> frozenset[int]:
        days = _DAY_SETS[self.days] if isinstance(self.days, str) else self.days
        return frozenset(WEEKDAYS.index(day) for day in days)

    @cached_property
    def span(self) -> tuple[int, int]:
        """Start and end in minutes of the day."""
        return _minutes(self.start, field="start"), _minutes(self.end, field="end")

    def applies(self, local: datetime) -> bool:
        """Whether the band is in force at the wall-clock time ``local``."""
        if local.month not in self.months:
            return False
        minute = local.hour * 60 + local.minute
        start, end = self.span
        weekday = local.weekday()
        if start < end:
            return weekday in self.weekdays and start <= minute < end
        # Wraps midnight: the evening part belongs to today, the morning part to yesterday.
        if minute >= start:
            return weekday in self.weekdays
        return minute < end and (weekday - 1) % 7 in self.weekdays


class Tariff(_Frozen):
    currency: str = "EUR"
    base_rate: Rate
    """Price per kWh when no band is in force."""
    bands: tuple[Band, ...] = ()

    def rate_at(self, local: datetime) -> float:
        """The price per kWh at the wall-clock time ``local`` (an aware local datetime)."""
        for band in self.bands:
            if band.applies(local):
                return band.rate
        return self.base_rate


class Region(_Frozen):
    """Grid carbon intensity in kg CO2e/kWh: a constant, or 24 values by local hour."""

    kg_per_kwh: Rate | None = None
    hourly_kg_per_kwh: tuple[Rate, ...] | None = None
    tz: str | None = None
    """Zone of the hourly profile's hours; default: each device's own zone."""

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.kg_per_kwh is None) == (self.hourly_kg_per_kwh is None):
            raise ValueError("give exactly one of kg_per_kwh and hourly_kg_per_kwh")
        if self.hourly_kg_per_kwh is not None and len(self.hourly_kg_per_kwh) != 24:
            raise ValueError(
                f"hourly_kg_per_kwh needs 24 values (local hours 0-23), "
                f"not {len(self.hourly_kg_per_kwh)}"
            )
        return self

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (KeyError, ValueError) as exc:
                raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    def intensity_at(self, local: datetime) -> float:
        """kg CO2e per kWh at ``local`` (aware; converted to the profile's zone if it has one)."""
        if self.hourly_kg_per_kwh is None:
            assert self.kg_per_kwh is not None  # exactly one is set
            return self.kg_per_kwh
        if self.tz is not None:
            local = local.astimezone(ZoneInfo(self.tz))
        return self.hourly_kg_per_kwh[local.hour]


class Assignment(_Frozen):
    tariff: str | None = None
    region: str | None = None


REFERENCE_TARIFF = Tariff(
    currency="EUR",
    base_rate=0.10,
    bands=(Band(name="peak", rate=0.20, days="weekdays", start="17:00", end="21:00"),),
)
"""The reference two-rate tariff: 0.20/kWh on work days 17:00-21:00 local, 0.10 otherwise."""
REFERENCE_REGION = Region(kg_per_kwh=0.45)


class TariffBook(_Frozen):
    """Every tariff and region, the defaults, and the per-device and per-location choices."""

    tariffs: dict[str, Tariff] = Field(default_factory=lambda: {"two-rate": REFERENCE_TARIFF})
    regions: dict[str, Region] = Field(default_factory=lambda: {"grid": REFERENCE_REGION})
    default_tariff: str = "two-rate"
    default_region: str = "grid"
    devices: dict[str, Assignment] = Field(default_factory=dict)
    locations: dict[str, Assignment] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _references_exist(self) -> Self:
        problems = []
        if self.default_tariff not in self.tariffs:
            problems.append(f"default_tariff {self.default_tariff!r} is not in tariffs")
        if self.default_region not in self.regions:
            problems.append(f"default_region {self.default_region!r} is not in regions")
        for table, entries in (("devices", self.devices), ("locations", self.locations)):
            for key, choice in entries.items():
                if choice.tariff is not None and choice.tariff not in self.tariffs:
                    problems.append(f"{table}.{key}.tariff: no tariff {choice.tariff!r}")
                if choice.region is not None and choice.region not in self.regions:
                    problems.append(f"{table}.{key}.region: no region {choice.region!r}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def tariff(self, name: str | None) -> Tariff:
        return self.tariffs[name if name is not None else self.default_tariff]

    def region(self, name: str | None) -> Region:
        return self.regions[name if name is not None else self.default_region]

    def choice(self, device_id: str, location: str | None) -> tuple[str, str]:
        """(tariff, region) names of a device: its own entry, else its location's, else the
        defaults (each of the two resolved on its own)."""
        own = self.devices.get(device_id, Assignment())
        site = self.locations.get(location, Assignment()) if location else Assignment()
        return (
            own.tariff or site.tariff or self.default_tariff,
            own.region or site.region or self.default_region,
        )


def _explain(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        lines.append(f"{where}: {error['msg']}")
    return "\n".join(lines)


def parse_book(data: Any) -> TariffBook:
    """A validated book from decoded TOML/JSON, or :class:`BookError` naming every problem."""
    try:
        return TariffBook.model_validate(data)
    except ValidationError as exc:
        raise BookError(_explain(exc)) from exc


def load_book(path: Path) -> TariffBook:
    """Read a ``.toml`` or ``.json`` tariff book; :class:`BookError` says what is wrong."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BookError(f"{path}: cannot read the tariff book ({exc.strerror})") from exc
    try:
        data = json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BookError(f"{path}: not valid {path.suffix.lstrip('.') or 'TOML'}: {exc}") from exc
    try:
        return parse_book(data)
    except BookError as exc:
        raise BookError(f"{path}: " + str(exc).replace("\n", f"\n{path}: ")) from exc
