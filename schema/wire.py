"""Wire format of device readings: JSON, validated on both ends of every hop.

A reading as a device publishes it (and as it travels on the ``readings`` Kafka topic)::

    {"schema_version": 1, "device_id": "meter-0001", "seq": 42,
     "ts": "2026-03-29T03:15:00+02:00", "tz": "Europe/Berlin", "interval_s": 60,
     "energy": {"value": 0.0123, "unit": "kWh"}, "power": {"value": 0.74, "unit": "kW"}}

``ts`` is ISO-8601 with the UTC offset the device's zone has at that instant, so a reading is
readable by a person in local time and still names one instant. Decode with
:func:`decode_reading`, which turns every way a payload can be wrong into one
:class:`InvalidPayload` with a short machine-readable ``reason``.

Exceptions::

    ValueError
     └── InvalidPayload        poison: the bytes can never become a Reading (dead-letter them)
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

SCHEMA_VERSION: Literal[1] = 1
MAX_PAYLOAD_BYTES = 4096
"""Readings are a few hundred bytes; anything this large is refused before parsing."""

DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


def _zone_name(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {name!r}") from exc
    return name


DeviceId = Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]
ZoneName = Annotated[str, AfterValidator(_zone_name)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False, strict=True)]


class WireModel(BaseModel):
    """Base of every wire model: immutable, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Energy(WireModel):
    """Energy consumed during the reading's interval (negative: net export, e.g. solar)."""

    value: FiniteFloat
    unit: Literal["kWh"] = "kWh"


class Power(WireModel):
    """Instantaneous power at ``ts`` (negative: net export)."""

    value: FiniteFloat
    unit: Literal["kW"] = "kW"


class Reading(WireModel):
    """One measurement of one device, the unit everything downstream is built from."""

    schema_version: Literal[1] = SCHEMA_VERSION
    device_id: DeviceId
    seq: Annotated[int, Field(ge=0, strict=True)]
    """Per-device sequence number, +1 per reading: the key of delivery audits."""
    ts: AwareDatetime
    tz: ZoneName
    """The device's IANA zone; ``ts`` carries that zone's offset at that instant."""
    interval_s: Annotated[int, Field(gt=0, le=86_400, strict=True)]
    energy: Energy
    power: Power

    @model_validator(mode="after")
    def _offset_matches_zone(self) -> Reading:
        expected = self.ts.astimezone(ZoneInfo(self.tz)).utcoffset()
        if self.ts.utcoffset() != expected:
            raise ValueError(
                f"ts offset {self.ts.utcoffset()} does not match {self.tz} at that instant "
                f"(expected {expected})"
            )
        return self

    @property
    def ts_utc(self) -> datetime:
        return self.ts.astimezone(ZoneInfo("UTC"))

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()


class InvalidPayload(ValueError):
    """A payload that can never become a :class:`Reading`; ``reason`` is a short stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


_REASON_BY_TYPE = {
    "json_invalid": "malformed_json",
    "extra_forbidden": "unknown_field",
    "missing": "missing_field",
    "finite_number": "non_finite_value",
    "timezone_aware": "naive_timestamp",
}
_REASON_BY_FIELD = {
    "schema_version": "unknown_schema_version",
    "ts": "bad_timestamp",
    "tz": "unknown_timezone",
}


def _reason_of(error: ValidationError) -> str:
    """Map pydantic's first error to one stable reason code (used as a metric label)."""
    first = error.errors()[0]
    kind, loc = first["type"], first["loc"]
    field = str(loc[0]) if loc else ""
    if kind in _REASON_BY_TYPE and not (kind == "missing" and field == "schema_version"):
        return _REASON_BY_TYPE[kind]
    if field in _REASON_BY_FIELD:
        return _REASON_BY_FIELD[field]
    if kind == "value_error" and not loc:
        return "offset_mismatch"  # the only model-level check
    return "invalid_value"


def decode_reading(payload: bytes, *, topic_device_id: str | None = None) -> Reading:
    """Decode and validate one reading; raise :class:`InvalidPayload` with the reason if bad.

    ``topic_device_id`` is the device id in the MQTT topic the payload came on; a payload that
    claims another device is refused (a device may only speak for itself).
    """
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise InvalidPayload("oversized", f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    try:
        reading = Reading.model_validate_json(payload)
    except ValidationError as exc:
        raise InvalidPayload(_reason_of(exc), str(exc.errors()[0]["msg"])) from exc
    if topic_device_id is not None and reading.device_id != topic_device_id:
        raise InvalidPayload(
            "device_id_mismatch",
            f"topic says {topic_device_id!r}, payload says {reading.device_id!r}",
        )
    return reading
