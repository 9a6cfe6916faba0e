"""Dead-letter records: what the pipeline writes to ``readings.dlq`` for a message it refuses.

A record is one JSON object (UTF-8)::

    {"dlq_version": 1,
     "reason": "offset_mismatch",                 # a code of schema.wire.REASONS
     "detail": "ts offset 3:00:00 does not match Europe/Berlin ...",
     "kind": "reading",                           # reading | status | birth | unknown
     "mqtt_topic": "wattstream/v1/devices/dev-1/readings",  # "kafka:<topic>" from the worker
     "device_id": "dev-1",                        # from the topic; null if it names none
     "payload_b64": "eyJzY2hlbWFfdmVyc2lvbiI6...", # the original bytes, base64
     "payload_size": 201,                         # bytes the device sent
     "payload_sha256": "9f2c...",                 # of all of them
     "payload_truncated": false,
     "dead_lettered_at": "2026-03-29T01:30:02.123456+00:00"}

It keeps the original bytes, the topic, the reason code and the time, so nothing a device sent
is lost and every refusal can be inspected or replayed. Only a payload larger than
:data:`MAX_KEPT_BYTES` (far beyond any valid message; the broker accepts up to 256 MiB) keeps
just its first bytes, with its size and SHA-256 to identify it: Kafka refuses records over
1 MiB by default, and a record Kafka refuses would stop the pipeline.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime

DLQ_VERSION = 1
MAX_KEPT_BYTES = 256 * 1024
"""Payload bytes a record keeps at most (base64 makes it a third larger)."""


def dead_letter_record(
    *,
    topic: str,
    payload: bytes,
    reason: str,
    detail: str,
    at: datetime,
    kind: str = "reading",
    device_id: str | None = None,
) -> bytes:
    if at.tzinfo is None:
        raise ValueError("dead-letter times must be timezone-aware")
    kept = payload[:MAX_KEPT_BYTES]
    return json.dumps(
        {
            "dlq_version": DLQ_VERSION,
            "reason": reason,
            "detail": detail,
            "kind": kind,
            "mqtt_topic": topic,
            "device_id": device_id,
            "payload_b64": base64.b64encode(kept).decode(),
            "payload_size": len(payload),
            "payload_sha256": hashlib.sha256(payload).hexdigest(),
            "payload_truncated": len(kept) < len(payload),
            "dead_lettered_at": at.isoformat(),
        },
        separators=(",", ":"),
    ).encode()
