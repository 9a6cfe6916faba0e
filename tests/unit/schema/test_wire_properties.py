"""Properties of the payload decoder: whatever the bytes, the only failure is InvalidPayload.

The decoder sits at every edge (bridge, stream worker); anything else it raised would crash a
service on one bad message. Valid readings round-trip byte for byte, every rejection carries
a documented reason, and a decoded timestamp is always aware and in its zone's offset.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from schema.device_messages import DeviceBirth, DeviceCommand, DeviceStatus
from schema.wire import (
    DEVICE_ID_PATTERN,
    MAX_PAYLOAD_BYTES,
    MAX_SEQ,
    REASONS,
    Energy,
    InvalidPayload,
    Power,
    Reading,
    decode_message,
    decode_reading,
)

pytestmark = pytest.mark.unit

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "America/St_Johns",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Pacific/Kiritimati",
    "America/Santiago",
]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)

instants = st.datetimes(
    min_value=datetime(1970, 1, 2),  # noqa: DTZ001 - bounds of st.datetimes are naive by API
    max_value=datetime(2200, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)
SAMPLE = Reading(
    device_id="d",
    seq=0,
    ts=datetime(2026, 1, 1, tzinfo=UTC),
    tz="UTC",
    interval_s=60,
    energy=Energy(value=0.0),
    power=Power(value=0.0),
)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@st.composite
def readings(draw: st.DrawFn) -> Reading:
    tz = draw(st.sampled_from(ZONES))
    return Reading(
        device_id=draw(st.from_regex(DEVICE_ID_PATTERN, fullmatch=True)),
        seq=draw(st.integers(min_value=0, max_value=MAX_SEQ)),
        ts=draw(instants).astimezone(ZoneInfo(tz)),
        tz=tz,
        interval_s=draw(st.integers(min_value=1, max_value=86_400)),
        energy=Energy(value=draw(finite)),
        power=Power(value=draw(finite)),
    )


def assert_rejected_or_valid(decode: Any, payload: bytes) -> object | None:
    """Decode; on failure the error must be InvalidPayload with a documented reason."""
    try:
        return decode(payload)
    except InvalidPayload as exc:
        assert exc.reason in REASONS, exc.reason
        assert exc.detail
        assert str(exc).startswith(f"{exc.reason}: ")
        return None


# ------------------------------------------------------------------------ anything in, no crash
@given(st.binary(max_size=MAX_PAYLOAD_BYTES + 16))
@example(b"\xef\xbb\xbf{}")  # a BOM
@example(b"[" * 5000)
@example(b"{" * 3000)
def test_arbitrary_bytes_only_ever_raise_invalid_payload(payload: bytes) -> None:
    assert assert_rejected_or_valid(decode_reading, payload) is None


@given(json_values)
def test_arbitrary_json_documents_are_refused_with_a_reason(value: object) -> None:
    payload = json.dumps(value).encode()
    assume(len(payload) <= MAX_PAYLOAD_BYTES)
    with pytest.raises(InvalidPayload) as caught:
        decode_reading(payload)
    assert caught.value.reason in REASONS
    if not isinstance(value, dict):
        assert caught.value.reason == "not_an_object"


@given(readings(), st.sampled_from(sorted(Reading.model_fields)), json_values)
@example(
    SAMPLE,
    "ts",
    "0001-01-01T00:00:00+00:00",
)
def test_any_field_replaced_by_any_json_decodes_or_is_refused(
    reading: Reading, field: str, value: object
) -> None:
    document = json.loads(reading.to_json())
    document[field] = value
    decoded = assert_rejected_or_valid(decode_reading, json.dumps(document).encode())
    if decoded is not None:
        assert isinstance(decoded, Reading)
        assert decoded.ts.utcoffset() == ZoneInfo(decoded.tz).utcoffset(decoded.ts)


@given(readings(), st.sampled_from(["UTC", "Asia/Kolkata", "Pacific/Kiritimati", "Etc/GMT+12"]))
@example(
    SAMPLE,
    "Pacific/Kiritimati",
)
def test_extreme_timestamps_are_refused_not_crashed(reading: Reading, tz: str) -> None:
    """The first and last instants datetime can hold, in zones far from UTC."""
    document = json.loads(reading.to_json())
    for ts in (
        "0001-01-01T00:00:00+00:00",
        "0001-01-01T00:00:00-12:00",
        "9999-12-31T23:59:59+00:00",
        "9999-12-31T23:59:59+14:00",
    ):
        document.update(ts=ts, tz=tz)
        assert_rejected_or_valid(decode_reading, json.dumps(document).encode())


@given(st.sampled_from([DeviceBirth, DeviceStatus, DeviceCommand]), st.binary(max_size=600))
def test_other_device_messages_only_ever_raise_invalid_payload(
    model: type[DeviceBirth | DeviceStatus | DeviceCommand], payload: bytes
) -> None:
    assert_rejected_or_valid(lambda p: decode_message(model, p), payload)


@given(
    st.sampled_from([DeviceBirth, DeviceStatus, DeviceCommand]),
    st.dictionaries(
        st.sampled_from(["device_id", "ts", "tz", "status", "kind", "action"]), json_values
    ),
)
def test_other_device_messages_refuse_arbitrary_objects_with_a_reason(
    model: type[DeviceBirth | DeviceStatus | DeviceCommand], document: dict[str, object]
) -> None:
    assert_rejected_or_valid(lambda p: decode_message(model, p), json.dumps(document).encode())


# ----------------------------------------------------------------------------- valid readings
@given(readings())
def test_valid_readings_round_trip_exactly(reading: Reading) -> None:
    payload = reading.to_json()
    decoded = decode_reading(payload, topic_device_id=reading.device_id)
    assert decoded == reading
    assert decoded.to_json() == payload
    assert decoded.ts_utc == reading.ts_utc
    assert decoded.ts_utc.utcoffset() == timedelta(0)


@given(readings())
def test_decoded_timestamps_are_aware_and_in_their_zones_offset(reading: Reading) -> None:
    decoded = decode_reading(reading.to_json())
    assert decoded.ts.tzinfo is not None
    assert decoded.ts.utcoffset() == decoded.ts.astimezone(ZoneInfo(decoded.tz)).utcoffset()


@given(readings(), st.integers(min_value=-14 * 4, max_value=14 * 4))
def test_an_offset_is_accepted_exactly_when_the_zone_has_it_at_that_instant(
    reading: Reading, quarters: int
) -> None:
    """Same wall-clock time, another offset: another instant, valid only if the zone agrees
    (Berlin's 02:30 in October is valid at +02:00 and at +01:00)."""
    offset = timedelta(minutes=15 * quarters)
    assume(offset != reading.ts.utcoffset())
    wall = reading.ts.replace(tzinfo=None)
    moved = wall - offset  # the instant, in UTC, that wall clock names at this offset
    assume(datetime(1970, 1, 2) <= moved <= datetime(2200, 1, 1))  # noqa: DTZ001
    sign, minutes = ("-" if quarters < 0 else "+"), abs(quarters) * 15
    ts = f"{wall.isoformat()}{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    document = {**json.loads(reading.to_json()), "ts": ts}
    at = moved.replace(tzinfo=UTC)
    zone_offset = ZoneInfo(reading.tz).utcoffset(at.astimezone(ZoneInfo(reading.tz)))
    try:
        decoded = decode_reading(json.dumps(document).encode())
    except InvalidPayload as exc:
        assert exc.reason == "offset_mismatch"
        assert zone_offset != offset
    else:
        assert zone_offset == offset
        assert decoded.ts_utc == at


@given(readings())
def test_a_timestamp_without_offset_is_naive(reading: Reading) -> None:
    document = {**json.loads(reading.to_json()), "ts": reading.ts.replace(tzinfo=None).isoformat()}
    with pytest.raises(InvalidPayload) as caught:
        decode_reading(json.dumps(document).encode())
    assert caught.value.reason == "naive_timestamp"


@given(readings(), st.from_regex(DEVICE_ID_PATTERN, fullmatch=True))
def test_another_devices_topic_is_a_mismatch(reading: Reading, topic_device: str) -> None:
    assume(topic_device != reading.device_id)
    with pytest.raises(InvalidPayload) as caught:
        decode_reading(reading.to_json(), topic_device_id=topic_device)
    assert caught.value.reason == "device_id_mismatch"


@given(readings(), st.integers(min_value=MAX_SEQ + 1, max_value=2**80) | st.integers(max_value=-1))
def test_seq_outside_a_signed_64_bit_counter_is_out_of_range(reading: Reading, seq: int) -> None:
    document = {**json.loads(reading.to_json()), "seq": seq}
    with pytest.raises(InvalidPayload) as caught:
        decode_reading(json.dumps(document).encode())
    assert caught.value.reason == "out_of_range"


@given(
    readings(),
    st.sampled_from(["energy", "power"]),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e999"]),
)
def test_non_finite_numbers_are_refused(reading: Reading, field: str, literal: str) -> None:
    text = reading.to_json().decode()
    value = getattr(reading, field).value
    marker = f'"{field}":{{"value":'
    start = text.index(marker) + len(marker)
    end = text.index(",", start)
    assert math.isfinite(value)
    payload = (text[:start] + literal + text[end:]).encode()
    with pytest.raises(InvalidPayload) as caught:
        decode_reading(payload)
    assert caught.value.reason == "non_finite_value"


@given(readings(), st.integers(min_value=1, max_value=1000))
def test_payloads_over_the_limit_are_oversized(reading: Reading, extra: int) -> None:
    payload = reading.to_json()
    padded = payload + b" " * (MAX_PAYLOAD_BYTES - len(payload) + extra)
    with pytest.raises(InvalidPayload) as caught:
        decode_reading(padded)
    assert caught.value.reason == "oversized"
    assert decode_reading(payload + b" " * (MAX_PAYLOAD_BYTES - len(payload))) == reading


@pytest.mark.parametrize(
    ("ts", "tz", "accepted"),
    [
        # Monrovia went from -00:44:30 to UTC at 00:44:30 UTC: within one minute, both offsets.
        ("1972-01-07T00:44:31+00:00", "Africa/Monrovia", True),
        ("1972-01-07T00:44:29+00:00", "Africa/Monrovia", False),
        ("1972-01-07T00:43:59+00:00", "Africa/Monrovia", False),
        # Lord Howe's 30-minute change (2026-10-04 02:00 +10:30 -> 02:30 +11:00), a second apart.
        ("2026-10-04T01:59:59+10:30", "Australia/Lord_Howe", True),
        ("2026-10-04T02:30:00+11:00", "Australia/Lord_Howe", True),
        ("2026-10-04T02:00:00+10:30", "Australia/Lord_Howe", False),
    ],
)
def test_the_zone_offset_is_checked_to_the_second_at_transitions(
    ts: str, tz: str, accepted: bool
) -> None:
    """The decoder looks a zone's offset up once per minute, except in a minute where the
    offset changes (the instants on either side of a change, in the same minute)."""
    document = {"device_id": "d1", "seq": 0, "ts": ts, "tz": tz, "interval_s": 60,
                "energy": {"value": 0.1}, "power": {"value": 1.0}}  # fmt: skip
    payload = json.dumps(document).encode()
    if accepted:
        assert decode_reading(payload).ts == datetime.fromisoformat(ts)
    else:
        with pytest.raises(InvalidPayload) as caught:
            decode_reading(payload)
        assert caught.value.reason == "offset_mismatch"
