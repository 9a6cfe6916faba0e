from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from schema.wire import Energy, InvalidPayload, Power, Production, Reading, decode_reading

pytestmark = pytest.mark.unit


def reading(ts: datetime, tz: str = "Europe/Berlin", **overrides: object) -> Reading:
    fields: dict[str, object] = {
        "device_id": "dev-1",
        "seq": 7,
        "ts": ts.astimezone(ZoneInfo(tz)),
        "tz": tz,
        "interval_s": 60,
        "energy": Energy(value=0.0125),
        "power": Power(value=0.75),
    }
    fields.update(overrides)
    return Reading.model_validate(fields)


def test_round_trip_is_exact() -> None:
    original = reading(datetime(2026, 3, 29, 0, 59, tzinfo=UTC))
    decoded = decode_reading(original.to_json(), topic_device_id="dev-1")
    assert decoded == original
    assert decoded.to_json() == original.to_json()


def test_production_is_optional_and_absent_when_not_reported() -> None:
    at = datetime(2026, 3, 29, 0, 59, tzinfo=UTC)
    plain = reading(at)
    assert plain.production is None
    assert b"production" not in plain.to_json()  # the bytes older consumers already read
    made = reading(at, production=Production(value=12.5))
    decoded = decode_reading(made.to_json())
    assert decoded == made
    assert decoded.production == Production(value=12.5, unit="units")
    assert b'"production":{"value":12.5,"unit":"units"}' in made.to_json()
    # A payload from before the field existed, or one with an explicit null, still decodes.
    assert decode_reading(plain.to_json().replace(b"}}", b'},"production":null}')) == plain


@pytest.mark.parametrize(
    ("tz", "utc", "offset"),
    [
        # Berlin springs forward at 01:00 UTC on 2026-03-29: +01:00 before, +02:00 after.
        ("Europe/Berlin", datetime(2026, 3, 29, 0, 59, tzinfo=UTC), "+01:00"),
        ("Europe/Berlin", datetime(2026, 3, 29, 1, 0, tzinfo=UTC), "+02:00"),
        ("Asia/Kolkata", datetime(2026, 6, 1, 12, 0, tzinfo=UTC), "+05:30"),
        ("Asia/Kathmandu", datetime(2026, 6, 1, 12, 0, tzinfo=UTC), "+05:45"),
        # Lord Howe moves by 30 minutes: +10:30 in winter, +11:00 in (southern) summer.
        ("Australia/Lord_Howe", datetime(2026, 6, 1, 12, 0, tzinfo=UTC), "+10:30"),
        ("Australia/Lord_Howe", datetime(2026, 12, 1, 12, 0, tzinfo=UTC), "+11:00"),
    ],
)
def test_ts_carries_the_zone_offset_at_that_instant(tz: str, utc: datetime, offset: str) -> None:
    payload = reading(utc, tz).to_json().decode()
    assert f'{offset}"' in payload
    assert decode_reading(payload.encode()).ts_utc == utc


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda p: p[:-1], "malformed_json"),
        (
            lambda p: p.replace(b'"schema_version":1', b'"schema_version":9'),
            "unknown_schema_version",
        ),
        (lambda p: p.replace(b"+01:00", b""), "naive_timestamp"),
        (lambda p: p.replace(b"+01:00", b"+03:00"), "offset_mismatch"),
        (lambda p: p.replace(b"Europe/Berlin", b"Mars/Olympus"), "unknown_timezone"),
        (lambda p: p.replace(b"0.0125", b"NaN"), "non_finite_value"),
        (lambda p: p.replace(b"0.75", b"Infinity"), "non_finite_value"),
        (lambda p: p.replace(b'"seq":7', b'"seq":"7"'), "invalid_value"),
        (lambda p: p.replace(b'"seq":7', b'"seq":7,"extra":1'), "unknown_field"),
        (lambda p: p.replace(b'"seq":7,', b""), "missing_field"),
        (lambda p: p.replace(b"2026-03-29T01:30", b"2026-13-29T01:30"), "bad_timestamp"),
        (lambda p: p + b" " * 5000, "oversized"),
    ],
)
def test_bad_payloads_are_refused_with_a_reason(mutate: object, reason: str) -> None:
    good = reading(datetime(2026, 3, 29, 0, 30, tzinfo=UTC)).to_json()
    assert callable(mutate)
    with pytest.raises(InvalidPayload) as caught:
        decode_reading(mutate(good))
    assert caught.value.reason == reason


def test_a_device_may_only_speak_for_itself() -> None:
    payload = reading(datetime(2026, 3, 29, tzinfo=UTC)).to_json()
    with pytest.raises(InvalidPayload) as caught:
        decode_reading(payload, topic_device_id="dev-2")
    assert caught.value.reason == "device_id_mismatch"


def test_naive_datetimes_are_refused_in_code_too() -> None:
    aware = reading(datetime(2026, 3, 29, tzinfo=UTC))
    naive = aware.ts.replace(tzinfo=None)
    with pytest.raises(ValueError, match="timezone"):
        Reading.model_validate({**aware.model_dump(), "ts": naive})


@pytest.mark.parametrize(
    ("ts", "tz"),
    [
        # Found by the property tests: converting these to a far zone overflowed datetime
        # (OverflowError out of the decoder), and year 1 cannot be placed in a local hour.
        ("0001-01-01T00:00:00+00:00", "Pacific/Kiritimati"),
        ("0001-01-01T00:00:00+00:00", "UTC"),
        ("9999-12-31T23:59:59+00:00", "Pacific/Kiritimati"),
        ("1969-12-31T23:59:59+00:00", "UTC"),
        ("9000-01-01T00:00:00+00:00", "UTC"),
    ],
)
def test_timestamps_outside_the_supported_range_are_out_of_range(ts: str, tz: str) -> None:
    document = json.loads(reading(datetime(2026, 3, 29, tzinfo=UTC)).to_json())
    document.update(ts=ts, tz=tz)
    with pytest.raises(InvalidPayload) as caught:
        decode_reading(json.dumps(document).encode())
    assert caught.value.reason == "out_of_range"
    assert "outside" in caught.value.detail


def test_the_ends_of_the_supported_range() -> None:
    first = reading(datetime(1970, 1, 1, tzinfo=UTC), "Pacific/Kiritimati")
    last = reading(datetime(8999, 12, 31, 23, 59, tzinfo=UTC), "Etc/GMT+12")
    assert decode_reading(first.to_json()) == first
    assert decode_reading(last.to_json()) == last
