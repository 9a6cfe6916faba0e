"""Wire format of device readings: JSON, validated on both ends of every hop.

A reading as a device publishes it (and as it travels on the ``readings`` Kafka topic)::

    {"schema_version": 1, "device_id": "meter-0001", "seq": 42,
     "ts": "2026-03-29T03:15:00+02:00", "tz": "Europe/Berlin", "interval_s": 60,
     "energy": {"value": 0.0123, "unit": "kWh"}, "power": {"value": 0.74, "unit": "kW"}}

A device that makes things (an industrial line) adds what it produced in the interval,
``"production": {"value": 12.0, "unit": "units"}``; the field is optional, so every reading
written before it existed still decodes, and a reading without it is encoded without it.

``ts`` is ISO-8601 with the UTC offset the device's zone has at that instant, so a reading is
readable by a person in local time and still names one instant. Decode with
:func:`decode_reading` (or :func:`decode_message` for the other device messages), which turns
every way a payload can be wrong into one :class:`InvalidPayload` with a short machine-readable
``reason`` (:data:`REASONS`).

Exceptions::

    ValueError
     └── InvalidPayload        poison: the bytes can never become a Reading (dead-letter them)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cached_property, lru_cache
from typing import Annotated, Literal, Protocol, TypeVar, cast
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
from pydantic_core import PydanticCustomError

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


EARLIEST_TS = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TS = datetime(9000, 1, 1, tzinfo=UTC)
"""A reading's ``ts`` must lie in [EARLIEST_TS, LATEST_TS) (else ``out_of_range``): an instant
near the ends of what ``datetime`` holds (a device clock at year 1 or 9999) cannot be shown in
a zone far from UTC, nor placed in a local hour."""


_EARLIEST_S = EARLIEST_TS.timestamp()
_LATEST_S = LATEST_TS.timestamp()


def _ts_in_range(ts: datetime) -> float:
    """``ts`` as seconds since the epoch, if it lies in [EARLIEST_TS, LATEST_TS)."""
    seconds = ts.timestamp()  # exact for any aware datetime (no zone conversion)
    if not _EARLIEST_S <= seconds < _LATEST_S:
        raise PydanticCustomError(
            "ts_out_of_range",
            "ts {ts} is outside [{earliest}, {latest})",
            {
                "ts": ts.isoformat(),
                "earliest": EARLIEST_TS.isoformat(),
                "latest": LATEST_TS.isoformat(),
            },
        )
    return seconds


@lru_cache(maxsize=16_384)
def _minute_offset(tz: str, minute: int) -> timedelta | None:
    """The UTC offset of zone ``tz`` throughout the UTC minute ``minute`` (minutes since the
    epoch), or None if it changes within that minute (since 1970 only Africa/Monrovia did, at
    00:44:30 UTC on 1972-01-07). Once per zone and minute: a fleet's readings of one minute
    share a handful of zones."""
    zone = ZoneInfo(tz)
    first = datetime.fromtimestamp(minute * 60, UTC).astimezone(zone).utcoffset()
    last = datetime.fromtimestamp(minute * 60 + 59.999999, UTC).astimezone(zone).utcoffset()
    return first if first == last else None


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


class Production(WireModel):
    """Units produced during the reading's interval (e.g. parts off a line): never negative."""

    value: Annotated[float, Field(ge=0, allow_inf_nan=False, strict=True)]
    unit: Literal["units"] = "units"


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
    production: Production | None = None
    """Only from devices that report production; absent (not ``null``) on the wire otherwise."""

    @model_validator(mode="after")
    def _offset_matches_zone(self) -> Reading:
        # First: converting an instant out of range would overflow.
        seconds = _ts_in_range(self.ts)
        expected = _minute_offset(self.tz, int(seconds // 60))
        if expected is None:
            expected = self.ts.astimezone(ZoneInfo(self.tz)).utcoffset()
        if self.ts.utcoffset() != expected:
            raise ValueError(
                f"ts offset {self.ts.utcoffset()} does not match {self.tz} at that instant "
                f"(expected {expected})"
            )
        return self

    @cached_property
    def ts_utc(self) -> datetime:
        """``ts`` in UTC (computed once: windows, watermarks and the sink all read it)."""
        return self.ts.astimezone(UTC)

    def to_json(self) -> bytes:
        # exclude_none: a reading without production is byte-for-byte what it always was.
        return self.model_dump_json(exclude_none=True).encode()


class InvalidPayload(ValueError):
    """A payload that can never become a wire model; ``reason`` is a short stable code.

    The codes (:data:`REASONS`) are part of the contract: they label the bridge's dead-letter
    records and metrics, so a code is never renamed, only added.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


MAX_SEQ = 2**63 - 1
"""``seq`` is stored as a signed 64-bit integer; JSON (and pydantic) would take any size."""

REASONS: dict[str, str] = {
    "oversized": f"more than {MAX_PAYLOAD_BYTES} bytes",
    "empty_payload": "no bytes, or only white space",
    "not_utf8": "the bytes are not UTF-8 text",
    "malformed_json": "not one JSON document",
    "too_deeply_nested": "JSON nested deeper than the parser allows",
    "not_an_object": "JSON, but not an object",
    "unknown_schema_version": "schema_version is not one this code knows",
    "unknown_field": "a field the contract does not have",
    "missing_field": "a required field is absent",
    "naive_timestamp": "a timestamp without a UTC offset",
    "bad_timestamp": "a timestamp that cannot be parsed",
    "offset_mismatch": "ts's UTC offset is not the device zone's at that instant",
    "unknown_timezone": "tz is not an IANA time zone",
    "non_finite_value": "NaN or an infinity",
    "out_of_range": "a number (or ts) outside its allowed range",
    "invalid_value": "a wrong type or a value the contract does not allow",
    "device_id_mismatch": "the payload's device_id is not the topic's",
}
"""Every reason code :func:`decode_reading` and :func:`decode_message` give, with its meaning."""

_REASON_BY_TYPE = {
    "json_invalid": "malformed_json",
    "extra_forbidden": "unknown_field",
    "missing": "missing_field",
    "finite_number": "non_finite_value",
    "timezone_aware": "naive_timestamp",
    "greater_than": "out_of_range",
    "greater_than_equal": "out_of_range",
    "less_than": "out_of_range",
    "less_than_equal": "out_of_range",
    "ts_out_of_range": "out_of_range",
}
_REASON_BY_FIELD = {
    "schema_version": "unknown_schema_version",
    "ts": "bad_timestamp",
    "tz": "unknown_timezone",
}


def _why_not_json(message: str, payload: bytes) -> str:
    """Why the JSON parser gave up (only on this rare path is it worth finding out)."""
    if "recursion limit" in message:
        return "too_deeply_nested"
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return "not_utf8"
    return "malformed_json"


def _reason_of(error: ValidationError, payload: bytes, model_error: str) -> str:
    """Map pydantic's first error to one stable reason code (used as a metric label).

    ``model_error`` is the code of a model-level check (a validator on the whole model).
    """
    first = error.errors()[0]
    kind, loc = first["type"], first["loc"]
    field = str(loc[0]) if loc else ""
    if kind == "json_invalid":
        return _why_not_json(first["msg"], payload)
    if kind == "model_type" and not loc:
        return "not_an_object"
    if kind in _REASON_BY_TYPE and not (kind == "missing" and field == "schema_version"):
        return _REASON_BY_TYPE[kind]
    if field in _REASON_BY_FIELD:
        return _REASON_BY_FIELD[field]
    if kind == "value_error" and not loc:
        return model_error
    return "invalid_value"


class _DeviceMessage(Protocol):
    @property
    def device_id(self) -> str: ...


M = TypeVar("M", bound=BaseModel)


def decode_message(
    model: type[M],
    payload: bytes,
    *,
    topic_device_id: str | None = None,
    model_error: str = "invalid_value",
) -> M:
    """Decode and validate one message of a wire ``model`` that has a ``device_id``.

    Raises :class:`InvalidPayload` with a reason code of :data:`REASONS` if the bytes can never
    become one. ``topic_device_id`` is the device id in the MQTT topic the payload came on; a
    payload that claims another device is refused (a device may only speak for itself).
    ``model_error`` is the reason given when a check on the whole model fails.
    """
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise InvalidPayload("oversized", f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    if not payload.strip():
        raise InvalidPayload("empty_payload", f"{len(payload)} bytes of white space")
    try:
        message = model.model_validate_json(payload)
    except ValidationError as exc:
        raise InvalidPayload(
            _reason_of(exc, payload, model_error), str(exc.errors()[0]["msg"])
        ) from exc
    device_id = cast(_DeviceMessage, message).device_id
    if topic_device_id is not None and device_id != topic_device_id:
        raise InvalidPayload(
            "device_id_mismatch",
            f"topic says {topic_device_id!r}, payload says {device_id!r}",
        )
    return message


def decode_reading(payload: bytes, *, topic_device_id: str | None = None) -> Reading:
    """Decode and validate one reading; raise :class:`InvalidPayload` with the reason if bad.

    ``topic_device_id`` is the device id in the MQTT topic the payload came on; a payload that
    claims another device is refused (a device may only speak for itself).
    """
    reading = decode_message(
        Reading, payload, topic_device_id=topic_device_id, model_error="offset_mismatch"
    )
    if reading.seq > MAX_SEQ:
        raise InvalidPayload("out_of_range", f"seq {reading.seq} > {MAX_SEQ}")
    return reading
