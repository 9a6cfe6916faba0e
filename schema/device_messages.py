"""Wire format of what devices say about themselves and what they are told.

* ``.../status`` (retained): :class:`DeviceStatus`, ``online`` on connect, ``offline`` as the
  last will (and on a clean disconnect).
* ``.../birth`` (retained): :class:`DeviceBirth`, the device's metadata, sent on connect.
* ``.../commands`` (devices subscribe): :class:`DeviceCommand`.

All JSON, validated on both ends like readings (:mod:`schema.wire`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field

from schema.wire import SCHEMA_VERSION, DeviceId, FiniteFloat, WireModel, ZoneName


class Presence(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class DeviceStatus(WireModel):
    schema_version: Literal[1] = SCHEMA_VERSION
    device_id: DeviceId
    status: Presence
    ts: AwareDatetime | None = None
    """When the device said it; ``None`` in a last will (prepared at connect time)."""


class Location(WireModel):
    latitude: Annotated[float, Field(ge=-90, le=90)]
    longitude: Annotated[float, Field(ge=-180, le=180)]
    name: str | None = None


class DeviceBirth(WireModel):
    schema_version: Literal[1] = SCHEMA_VERSION
    device_id: DeviceId
    kind: str
    """Device type, e.g. ``household_meter``, ``hvac``, ``ev_charger``, ``solar_inverter``."""
    tz: ZoneName
    location: Location
    nominal_kw: FiniteFloat
    firmware: str
    interval_s: Annotated[int, Field(gt=0, le=86_400)]
    ts: AwareDatetime


class CommandAction(StrEnum):
    ANOMALY = "anomaly"
    OFFLINE = "offline"
    ONLINE = "online"
    SET_INTERVAL = "set_interval"


class AnomalyKind(StrEnum):
    SPIKE = "spike"
    DRIFT = "drift"
    STUCK = "stuck"
    DROPOUT = "dropout"


class DeviceCommand(WireModel):
    schema_version: Literal[1] = SCHEMA_VERSION
    command_id: Annotated[str, Field(min_length=1, max_length=64)]
    action: CommandAction
    anomaly: AnomalyKind | None = None
    """With ``action=anomaly``: which one."""
    magnitude: FiniteFloat | None = None
    """Spike/drift size as a factor of nominal power (e.g. 3.0)."""
    duration_s: Annotated[int, Field(gt=0, le=7 * 86_400)] | None = None
    interval_s: Annotated[int, Field(gt=0, le=86_400)] | None = None
    """With ``action=set_interval``: the new reporting interval."""
    issued_at: AwareDatetime
