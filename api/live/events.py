"""Events of the live feed: which Kafka topic is which kind, decoding, and the client protocol.

Messages the server sends on ``/api/v1/ws/live`` (JSON text frames)::

    {"type": "hello", "stream": "9f1c2a7b", "heartbeat_s": 15.0, "kinds": [...], "devices": null,
     "resume": {"status": "resumed", "replayed": 3},
     "upstream": {"kafka": "up", "since": "2026-03-29T00:59:12+00:00", "detail": null}}
    {"type": "event", "id": "9f1c2a7b-42", "kind": "readings", "device_id": "dev-00001",
     "data": {...the message as on Kafka...}, "coalesced": 2}
    {"type": "heartbeat", "ts": "2026-03-29T01:00:00Z", "last_event_id": "9f1c2a7b-42"}
    {"type": "upstream", "kafka": "down", "since": "2026-03-29T01:02:07+00:00",
     "detail": "Kafka did not answer within 5s (metadata)"}
    {"type": "error", "detail": "..."}

``upstream`` (in the hello, then a frame on every change, before any further event) says
whether the feed's Kafka answers: while it is ``down`` no event arrives (the data is not
quiet, it is unknown); once it is ``up`` again the feed resumes where it stopped, so the events
produced meanwhile follow (``api.live.hub.Upstream``; ``detail`` says why it is down).

``coalesced`` (present only when > 0) counts the events of the same device and kind this one
replaced while the client was behind. ``id`` is ``<stream>-<seq>``: ``stream`` names this API
process's feed, so a ``last_event_id`` from another process (or before a restart) is refused
with ``resume.status = "gap"`` instead of silently resuming at the wrong place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal, get_args

from pydantic import BaseModel, ValidationError

from schema.device_messages import DeviceStatus
from schema.results import Alert, Forecast, Health, HourlyAggregate
from schema.topics import KafkaTopics
from schema.wire import InvalidPayload, decode_reading

Kind = Literal["readings", "hourly", "forecasts", "health", "alerts", "status"]
KINDS: tuple[Kind, ...] = get_args(Kind)

_MODELS: dict[Kind, type[BaseModel]] = {
    "hourly": HourlyAggregate,
    "forecasts": Forecast,
    "health": Health,
    "alerts": Alert,
    "status": DeviceStatus,
}


class UndecodableEvent(ValueError):
    """A Kafka message that is not what its topic promises (poison: counted and skipped)."""


def topic_kinds(topics: KafkaTopics) -> dict[str, Kind]:
    """Kafka topic name -> event kind, for every topic the feed reads."""
    return {
        topics.readings: "readings",
        topics.hourly: "hourly",
        topics.forecasts: "forecasts",
        topics.health: "health",
        topics.alerts: "alerts",
        topics.device_status: "status",
    }


def decode(kind: Kind, value: bytes) -> tuple[str, str]:
    """``(device_id, data_json)`` of one Kafka message of ``kind``; raise if it is invalid."""
    try:
        model: BaseModel = (
            decode_reading(value)
            if kind == "readings"
            else _MODELS[kind].model_validate_json(value)
        )
    except (InvalidPayload, ValidationError) as exc:
        raise UndecodableEvent(f"{kind}: {exc}") from exc
    device_id: str = model.device_id  # type: ignore[attr-defined]  # every contract has one
    return device_id, model.model_dump_json()


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """One event, serialised once for every client that gets it."""

    seq: int
    kind: Kind
    device_id: str
    received_at: float
    """Monotonic clock when the feed took it from Kafka (the replay buffer ages by it)."""
    text: str

    @property
    def key(self) -> tuple[str, Kind]:
        """What coalescing keeps the latest of."""
        return self.device_id, self.kind

    def with_coalesced(self, count: int) -> str:
        """The frame to send, noting how many earlier events of the same key it replaced."""
        if count <= 0:
            return self.text
        return f'{self.text[:-1]},"coalesced":{count}}}'


def event_text(event_id: str, kind: Kind, device_id: str, data_json: str) -> str:
    return (
        f'{{"type":"event","id":"{event_id}","kind":"{kind}",'
        f'"device_id":{json.dumps(device_id)},"data":{data_json}}}'
    )
