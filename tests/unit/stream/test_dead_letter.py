from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from stream.dead_letter import dead_letter_record

pytestmark = pytest.mark.unit


def test_record_keeps_the_original_bytes_and_reason() -> None:
    raw = b"\xff\x00not json"
    at = datetime(2026, 1, 1, tzinfo=UTC)
    record = json.loads(
        dead_letter_record(topic="a/b", payload=raw, reason="malformed_json", detail="x", at=at)
    )
    assert base64.b64decode(record["payload_b64"]) == raw
    assert record["reason"] == "malformed_json"
    assert record["mqtt_topic"] == "a/b"
    assert datetime.fromisoformat(record["dead_lettered_at"]) == at


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        dead_letter_record(topic="t", payload=b"", reason="r", detail="d", at=datetime(2026, 1, 1))  # noqa: DTZ001
