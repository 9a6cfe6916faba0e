"""Fleet definitions from a TOML file (``--fleet FILE``) and anomalies planned by flag.

A fleet file (every key optional; flags and ``WATTSTREAM_SIM_*`` variables override the
top-level ones)::

    seed = 7
    interval = "60s"                      # or interval_s = 60
    start = 2026-03-29T00:00:00+01:00     # a TOML datetime with offset
    scenarios = ["duplicates", "late-bursts"]

    [faults]                              # override the scenarios' default rates
    duplicate_p = 0.05

    [[group]]                             # devices, in order: dev-00000, dev-00001, ...
    count = 100
    kinds = ["household_meter", "solar_inverter"]
    zones = ["Europe/Berlin", "Asia/Kolkata"]
    nominal_kw = [1.0, 3.0]               # optional range

    [[anomaly]]                           # also: --anomaly device=dev-00003,kind=spike,...
    device = "dev-00003"
    kind = "spike"                        # spike, drift, stuck, dropout
    after = "2h"                          # from the start (simulated time); or at = <datetime>
    duration = "15m"
    magnitude = 3.0
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from schema.device_messages import AnomalyKind, CommandAction, DeviceCommand
from simulator.durations import duration_seconds
from simulator.errors import FleetDefinitionError
from simulator.fleet import DeviceGroup
from simulator.profiles import DEFAULT_MIX, DeviceKind
from simulator.scenarios import Scenario, delivery_faults


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True, slots=True)
class PlannedAnomaly:
    """An anomaly decided before the start: at ``at`` or ``after`` the start (simulated)."""

    device_id: str
    kind: AnomalyKind
    at: datetime | None = None
    after_s: int | None = None
    duration_s: int | None = None
    magnitude: float | None = None

    def at_t(self, start_t: int) -> int:
        if self.at is not None:
            return int(self.at.timestamp())
        return start_t + (self.after_s or 0)

    def command(self, number: int, issued_at: datetime) -> DeviceCommand:
        return DeviceCommand(
            command_id=f"plan-{number}",
            action=CommandAction.ANOMALY,
            anomaly=self.kind,
            magnitude=self.magnitude,
            duration_s=self.duration_s,
            issued_at=issued_at,
        )


@dataclass(frozen=True, slots=True)
class FleetFile:
    seed: int | None = None
    interval_s: int | None = None
    start: datetime | None = None
    scenarios: tuple[Scenario, ...] = ()
    faults: Mapping[str, Any] = field(default_factory=dict)
    groups: tuple[DeviceGroup, ...] = ()
    anomalies: tuple[PlannedAnomaly, ...] = ()

    @property
    def devices(self) -> int | None:
        return sum(g.count for g in self.groups) if self.groups else None


def _planned(raw: Mapping[str, Any], where: str) -> PlannedAnomaly:
    allowed = {"device", "kind", "at", "after", "duration", "magnitude"}
    unknown = set(raw) - allowed
    if unknown:
        raise FleetDefinitionError(
            f"{where}: unknown keys {sorted(unknown)}; allowed {sorted(allowed)}"
        )
    try:
        device = str(raw["device"])
        kind = AnomalyKind(raw["kind"])
        at = raw.get("at")
        if isinstance(at, str):
            at = datetime.fromisoformat(at)
        _require(
            at is None or (isinstance(at, datetime) and at.tzinfo is not None),
            "'at' must be a date-time with a UTC offset",
        )
        _require(at is None or "after" not in raw, "give 'at' or 'after', not both")
        after = duration_seconds(raw["after"]) if "after" in raw else None
        duration = duration_seconds(raw["duration"]) if "duration" in raw else None
        _require(duration != 0, "'duration' must be positive")
        magnitude = float(raw["magnitude"]) if "magnitude" in raw else None
    except KeyError as exc:
        raise FleetDefinitionError(f"{where}: missing {exc.args[0]!r}") from None
    except ValueError as exc:
        raise FleetDefinitionError(f"{where}: {exc}") from None
    return PlannedAnomaly(device, kind, at, after, duration, magnitude)


def parse_anomaly(text: str) -> PlannedAnomaly:
    """``device=dev-00003,kind=spike,after=2h,duration=15m,magnitude=3`` (as in the file)."""
    raw: dict[str, Any] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise FleetDefinitionError(f"--anomaly {text!r}: expected key=value, got {part!r}")
        raw[key.strip()] = value.strip()
    return _planned(raw, f"--anomaly {text!r}")


def _group(raw: Mapping[str, Any], where: str) -> DeviceGroup:
    allowed = {"count", "kinds", "zones", "nominal_kw"}
    unknown = set(raw) - allowed
    if unknown:
        raise FleetDefinitionError(
            f"{where}: unknown keys {sorted(unknown)}; allowed {sorted(allowed)}"
        )
    try:
        count = int(raw["count"])
        _require(count >= 1, "'count' must be at least 1")
        kinds = tuple(DeviceKind(k) for k in raw.get("kinds", DEFAULT_MIX))
        zones = tuple(str(z) for z in raw["zones"]) if "zones" in raw else None
        for zone in zones or ():
            ZoneInfo(zone)
        nominal = raw.get("nominal_kw")
        if nominal is not None:
            low, high = (float(v) for v in nominal)
            _require(0 < low <= high, "'nominal_kw' must be [low, high] with 0 < low <= high")
            nominal = (low, high)
        _require(bool(kinds) and zones != (), "'kinds' and 'zones' must not be empty")
    except KeyError as exc:
        raise FleetDefinitionError(f"{where}: missing {exc.args[0]!r}") from None
    except (ValueError, TypeError, ZoneInfoNotFoundError) as exc:
        raise FleetDefinitionError(f"{where}: {exc}") from None
    return DeviceGroup(count, kinds, zones, nominal)


def load_fleet_file(path: Path) -> FleetFile:
    """Parse and check a fleet file; every problem names the file and the entry."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FleetDefinitionError(f"cannot read fleet file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise FleetDefinitionError(f"{path}: not valid TOML: {exc}") from exc
    allowed = {"seed", "interval", "interval_s", "start", "scenarios", "faults", "group", "anomaly"}
    unknown = set(raw) - allowed
    if unknown:
        raise FleetDefinitionError(
            f"{path}: unknown keys {sorted(unknown)}; allowed {sorted(allowed)}"
        )
    try:
        interval = raw.get("interval_s", raw.get("interval"))
        start = raw.get("start")
        _require(
            start is None or (isinstance(start, datetime) and start.tzinfo is not None),
            "'start' must be a TOML date-time with a UTC offset",
        )
        scenarios = tuple(Scenario(s) for s in raw.get("scenarios", ()))
        faults = dict(raw.get("faults", {}))
        delivery_faults(scenarios, faults)  # refuse bad rates now, with the file's name
        result = FleetFile(
            seed=int(raw["seed"]) if "seed" in raw else None,
            interval_s=duration_seconds(interval) if interval is not None else None,
            start=start,
            scenarios=scenarios,
            faults=faults,
            groups=tuple(
                _group(g, f"{path}: [[group]] #{n + 1}") for n, g in enumerate(raw.get("group", []))
            ),
            anomalies=tuple(
                _planned(a, f"{path}: [[anomaly]] #{n + 1}")
                for n, a in enumerate(raw.get("anomaly", []))
            ),
        )
    except FleetDefinitionError:
        raise
    except (ValueError, TypeError) as exc:
        raise FleetDefinitionError(f"{path}: {exc}") from exc
    return result
