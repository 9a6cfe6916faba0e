"""Which Kafka record each MQTT message becomes: every case of the bad-input corpus, and the
valid messages of every kind."""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from schema.device_messages import AnomalyKind, AnomalyLabel, LabelSource, Presence
from schema.topics import KafkaTopics, MqttTopics
from schema.wire import REASONS
from stream.bridge.routing import UNKNOWN_TOPIC, Router
from stream.dead_letter import MAX_KEPT_BYTES
from tests.fixtures.bad_inputs import CORPUS, BadInput, valid_birth, valid_reading, valid_status

pytestmark = pytest.mark.unit

NS = "ns1"
AT = datetime(2026, 3, 29, 1, 2, 3, tzinfo=UTC)
MQTT, KAFKA = MqttTopics(NS), KafkaTopics(NS)


def mqtt_topic(kind: str, device_id: str) -> str:
    return {"readings": MQTT.readings, "status": MQTT.status, "birth": MQTT.birth}[kind](device_id)


def test_the_corpus_is_large_and_covers_every_reason() -> None:
    assert len(CORPUS) >= 30
    assert len({case.name for case in CORPUS}) == len(CORPUS)
    assert {case.reason for case in CORPUS} == set(REASONS)
    assert Counter(case.kind for case in CORPUS).keys() == {"readings", "status", "birth"}


@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.name)
def test_every_bad_input_is_dead_lettered_with_its_reason(case: BadInput) -> None:
    device_id = f"bad-{case.name}"
    topic = mqtt_topic(case.kind, device_id)
    payload = case.make(device_id)
    record = Router(NS).route(topic, payload, at=AT)
    assert record.topic == KAFKA.readings_dlq
    assert record.reason == case.reason
    assert record.key == device_id.encode()
    assert ("reason", case.reason.encode()) in record.headers
    letter = json.loads(record.value)
    assert letter["reason"] == case.reason
    assert letter["detail"]
    assert letter["mqtt_topic"] == topic
    assert letter["device_id"] == device_id
    assert letter["kind"] == {"readings": "reading"}.get(case.kind, case.kind)
    assert datetime.fromisoformat(letter["dead_lettered_at"]) == AT
    assert letter["payload_size"] == len(payload)
    assert letter["payload_sha256"] == hashlib.sha256(payload).hexdigest()
    kept = base64.b64decode(letter["payload_b64"])
    if len(payload) <= MAX_KEPT_BYTES:
        assert kept == payload
        assert letter["payload_truncated"] is False
    else:
        assert kept == payload[:MAX_KEPT_BYTES]
        assert letter["payload_truncated"] is True


def test_a_dead_letter_of_a_huge_payload_fits_in_a_default_kafka_record() -> None:
    record = Router(NS).route(MQTT.readings("d"), b"\x00" * (50 * 1024 * 1024), at=AT)
    assert record.reason == "oversized"
    assert len(record.value) < 1024 * 1024


@pytest.mark.parametrize(
    ("kind", "payload", "kafka_topic", "label"),
    [
        ("readings", valid_reading("dev-7", 3), KAFKA.readings, "reading"),
        ("status", valid_status("dev-7"), KAFKA.device_status, "status"),
        ("status", valid_status("dev-7", Presence.OFFLINE), KAFKA.device_status, "status"),
        ("status", b'{"device_id":"dev-7","status":"offline"}', KAFKA.device_status, "status"),
        ("birth", valid_birth("dev-7"), KAFKA.device_birth, "birth"),
    ],
)
def test_valid_messages_go_unchanged_to_their_topic_keyed_by_device(
    kind: str, payload: bytes, kafka_topic: str, label: str
) -> None:
    record = Router(NS).route(mqtt_topic(kind, "dev-7"), payload, at=AT)
    assert (record.topic, record.key, record.value, record.kind, record.reason) == (
        kafka_topic,
        b"dev-7",
        payload,
        label,
        None,
    )


@pytest.mark.parametrize(
    "topic",
    [
        "elsewhere/devices/dev-1/readings",
        f"{MQTT.root}/devices/dev-1/commands",
        f"{MQTT.root}/devices/dev-1/readings/extra",
        f"{MQTT.root}/devices/dev-1/x/readings",
        f"{MQTT.root}/devices//readings",
    ],
)
def test_a_topic_that_is_no_device_message_is_dead_lettered(topic: str) -> None:
    record = Router(NS).route(topic, valid_reading("dev-1", 0), at=AT)
    assert record.topic == KAFKA.readings_dlq
    assert record.reason == UNKNOWN_TOPIC
    assert json.loads(record.value)["mqtt_topic"] == topic


def test_subscriptions_plain_and_shared() -> None:
    filters = [MQTT.all_readings, MQTT.all_status, MQTT.all_birth, MQTT.labels]
    assert Router(NS).subscriptions == filters
    assert Router(NS, shared_group="bridges").subscriptions == [
        f"$share/bridges/{f}" for f in filters
    ]


def anomaly_label(device_id: str = "dev-3") -> AnomalyLabel:
    return AnomalyLabel(
        label_id=f"c1:{device_id}",
        device_id=device_id,
        anomaly=AnomalyKind.STUCK,
        start=AT,
        end=AT + timedelta(hours=1),
        first_seq=12,
        nominal_kw=2.0,
        source=LabelSource.SCHEDULE,
        command_id="c1",
    )


def test_a_label_goes_to_its_topic_keyed_by_the_device_it_is_about() -> None:
    payload = anomaly_label().model_dump_json().encode()
    record = Router(NS).route(MQTT.labels, payload, at=AT)
    assert (record.topic, record.key, record.value, record.kind, record.reason) == (
        KAFKA.anomaly_labels,
        b"dev-3",
        payload,
        "label",
        None,
    )


def test_an_invalid_label_is_dead_lettered() -> None:
    payload = anomaly_label().model_dump_json().replace('"stuck"', '"meteor"').encode()
    record = Router(NS).route(MQTT.labels, payload, at=AT)
    assert (record.topic, record.kind, record.key) == (
        KAFKA.readings_dlq,
        "label",
        MQTT.labels.encode(),
    )
    assert json.loads(record.value)["mqtt_topic"] == MQTT.labels


def test_the_default_namespace_routes_the_documented_names() -> None:
    record = Router().route(
        "wattstream/v1/devices/dev-1/readings", valid_reading("dev-1", 0), at=AT
    )
    assert record.topic == "readings"
