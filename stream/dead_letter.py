"""Dead-letter records: what the bridge writes to ``readings.dlq`` for a message it refuses.

The record keeps the original bytes (base64), the MQTT topic, the reason code and the time, so
nothing a device sent is lost and every refusal can be replayed or inspected.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime


def dead_letter_record(
    *, topic: str, payload: bytes, reason: str, detail: str, at: datetime
) -> bytes:
    if at.tzinfo is None:
        raise ValueError("dead-letter times must be timezone-aware")
    return json.dumps(
        {
            "reason": reason,
            "detail": detail,
            "mqtt_topic": topic,
            "payload_b64": base64.b64encode(payload).decode(),
            "dead_lettered_at": at.isoformat(),
        },
        separators=(",", ":"),
    ).encode()
