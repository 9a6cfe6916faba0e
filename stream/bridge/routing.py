"""Which Kafka record each MQTT message becomes: the validated message, or a dead letter.

Pure: no I/O, the time is passed in. A device's readings go to ``readings``, its status to the
compacted ``device-status`` and its birth message to the compacted ``device-birth``, each keyed
by the device id (so per-device order holds and compaction keeps the latest per device). The
simulator's ground-truth labels (``{root}/labels``, which only the operator may publish) go to
``anomaly-labels``, keyed by the device id they are about. What
fails validation goes to ``readings.dlq`` (:mod:`stream.dead_letter`), keyed by the device id
the topic names, with the reason also in the record's headers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from schema.device_messages import AnomalyLabel, DeviceBirth, DeviceStatus
from schema.topics import KafkaTopics, MqttTopics
from schema.wire import InvalidPayload, decode_message, decode_reading
from stream.dead_letter import dead_letter_record

UNKNOWN_TOPIC = "unknown_topic"
"""Reason of a message on a topic that names no device or no known message kind (only a broker
misconfiguration or a wider subscription can bring one)."""


class Record(NamedTuple):
    """A Kafka record to produce for one MQTT message (a named tuple: one is made per message,
    cheaply)."""

    topic: str
    key: bytes
    value: bytes
    kind: str
    """``reading``, ``status``, ``birth``, ``label`` or ``unknown``."""
    reason: str | None = None
    """``None`` when the message is forwarded; else why it is dead-lettered."""
    headers: tuple[tuple[str, bytes], ...] = ()


def _check_reading(payload: bytes, device_id: str) -> None:
    decode_reading(payload, topic_device_id=device_id)


def _check_status(payload: bytes, device_id: str) -> None:
    decode_message(DeviceStatus, payload, topic_device_id=device_id)


def _check_birth(payload: bytes, device_id: str) -> None:
    decode_message(DeviceBirth, payload, topic_device_id=device_id)


@dataclass(frozen=True, slots=True)
class _Route:
    kind: str
    kafka_topic: str
    check: Callable[[bytes, str], None]


class Router:
    """Routes the messages of one namespace's MQTT tree to its Kafka topics."""

    def __init__(self, namespace: str = "", shared_group: str = "") -> None:
        self._mqtt = MqttTopics(namespace)
        self._kafka = KafkaTopics(namespace)
        self._shared_group = shared_group
        self._routes = {
            "readings": _Route("reading", self._kafka.readings, _check_reading),
            "status": _Route("status", self._kafka.device_status, _check_status),
            "birth": _Route("birth", self._kafka.device_birth, _check_birth),
        }
        # Worked out once, not per message.
        self._labels_topic = self._mqtt.labels
        self._depth = self._mqtt.root.count("/") + 3
        """Slashes in a device topic: ``<root>/devices/<id>/<kind>``."""

    @property
    def subscriptions(self) -> list[str]:
        """The MQTT filters to subscribe to (``$share/<group>/...`` with a shared group)."""
        filters = [
            self._mqtt.all_readings,
            self._mqtt.all_status,
            self._mqtt.all_birth,
            self._mqtt.labels,
        ]
        if self._shared_group:
            return [f"$share/{self._shared_group}/{f}" for f in filters]
        return filters

    def route(self, topic: str, payload: bytes, *, at: datetime) -> Record:
        if topic == self._labels_topic:
            return self._label(topic, payload, at=at)
        device_id = self._mqtt.device_id_of(topic)
        route = self._routes.get(topic.rpartition("/")[2]) if device_id else None
        if device_id is None or route is None or topic.count("/") != self._depth:
            return self._dead_letter(
                topic,
                payload,
                "unknown",
                device_id,
                reason=UNKNOWN_TOPIC,
                detail="not a device topic",
                at=at,
            )
        try:
            route.check(payload, device_id)
        except InvalidPayload as exc:
            return self._dead_letter(
                topic, payload, route.kind, device_id, reason=exc.reason, detail=exc.detail, at=at
            )
        return Record(route.kafka_topic, device_id.encode(), payload, route.kind)

    def _label(self, topic: str, payload: bytes, *, at: datetime) -> Record:
        try:
            label = decode_message(AnomalyLabel, payload)
        except InvalidPayload as exc:
            return self._dead_letter(
                topic, payload, "label", None, reason=exc.reason, detail=exc.detail, at=at
            )
        key = label.device_id.encode()
        return Record(self._kafka.anomaly_labels, key, payload, "label")

    def _dead_letter(
        self,
        topic: str,
        payload: bytes,
        kind: str,
        device_id: str | None,
        *,
        reason: str,
        detail: str,
        at: datetime,
    ) -> Record:
        value = dead_letter_record(
            topic=topic,
            payload=payload,
            reason=reason,
            detail=detail,
            at=at,
            kind=kind,
            device_id=device_id,
        )
        return Record(
            self._kafka.readings_dlq,
            (device_id or topic).encode(),
            value,
            kind,
            reason,
            (("reason", reason.encode()), ("kind", kind.encode())),
        )
