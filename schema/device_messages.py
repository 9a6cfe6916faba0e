"""Wire format of what devices say about themselves and what they are told.

* ``.../status`` (retained): :class:`DeviceStatus`, ``online`` on connect, ``offline`` as the
  last will (and on a clean disconnect).
* ``.../birth`` (retained): :class:`DeviceBirth`, the device's metadata, sent on connect.
* ``.../commands`` (devices subscribe): :class:`DeviceCommand`.
* ``{root}/gateways/{id}/status`` (retained): :class:`GatewayStatus` of a connection that
  carries many devices (the simulator's pooled mode); its last will covers them all, and
  each such device's birth names its ``gateway_id``.
* ``{root}/labels`` and the simulator's ``--labels`` file: :class:`AnomalyLabel`, the ground
  truth of every injected anomaly, for scoring detectors.

All JSON, validated on both ends like readings (:mod:`schema.wire`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, model_validator

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
    gateway_id: DeviceId | None = None
    """The shared connection this device speaks through, if any: when that gateway's status
    turns ``offline`` (its last will), so has this device, whatever its own status says."""


class GatewayStatus(WireModel):
    """Presence of one MQTT connection that carries several devices."""

    schema_version: Literal[1] = SCHEMA_VERSION
    gateway_id: DeviceId
    status: Presence
    devices: Annotated[int, Field(ge=0)]
    """How many devices it carries (their births name it)."""
    ts: AwareDatetime | None = None
    """``None`` in the last will."""


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

    @model_validator(mode="after")
    def _complete(self) -> DeviceCommand:
        if self.action is CommandAction.ANOMALY and self.anomaly is None:
            raise ValueError("action 'anomaly' needs 'anomaly' (spike, drift, stuck, dropout)")
        if self.action is CommandAction.SET_INTERVAL and self.interval_s is None:
            raise ValueError("action 'set_interval' needs 'interval_s'")
        if self.action is not CommandAction.ANOMALY and self.anomaly is not None:
            raise ValueError(f"'anomaly' only goes with action 'anomaly', not {self.action!r}")
        return self


class LabelSource(StrEnum):
    COMMAND = "command"
    """Sent on a device's ``.../commands`` topic while the fleet ran."""
    SCHEDULE = "schedule"
    """Planned before the start (a ``--anomaly`` flag or the fleet file)."""


class AnomalyLabel(WireModel):
    """Ground truth of one injected anomaly: which device, what, and when (event time)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    label_id: Annotated[str, Field(min_length=1, max_length=128)]
    device_id: DeviceId
    anomaly: AnomalyKind
    start: AwareDatetime
    """``ts`` of the first affected reading (the device's local offset)."""
    end: AwareDatetime
    """Exclusive end: readings with ``start <= ts < end`` are affected."""
    first_seq: Annotated[int, Field(ge=0)]
    magnitude: FiniteFloat | None = None
    """Spike/drift size as a factor of nominal power; ``None`` for stuck and dropout."""
    nominal_kw: FiniteFloat
    source: LabelSource
    command_id: Annotated[str, Field(min_length=1, max_length=64)]
