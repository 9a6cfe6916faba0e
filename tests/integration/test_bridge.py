"""The bridge as its own process between the real Mosquitto and the real Kafka.

* The bad-input corpus, interleaved with valid readings, status and birth messages: every bad
  case lands in the dead-letter topic with its reason and the original bytes, every valid
  message in its topic, keyed by device, and the metrics count each reason.
* Two bridges in one shared-subscription group split the load without losing or repeating.
* ``/healthz`` says 503, and why, while one side is unreachable.
"""

from __future__ import annotations

import asyncio
import base64
import json
import signal
from collections import Counter

import pytest

from schema.topics import KafkaTopics, MqttTopics
from tests.conftest import Services, Spawn, free_port
from tests.fixtures.bad_inputs import CORPUS, valid_birth, valid_reading, valid_status
from tests.fixtures.bridge import (
    Audit,
    consume,
    http_get,
    publisher,
    scrape,
    spawn_bridge,
    wait_healthy,
)
from tests.fixtures.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

VALID_DEVICES = ("ok-0", "ok-1", "ok-2")


async def test_bad_inputs_are_dead_lettered_and_valid_messages_forwarded(
    services: Services, kafka_topics: KafkaTopics, namespace: str, spawn: Spawn
) -> None:
    port = free_port()
    bridge = spawn_bridge(spawn, services, namespace, metrics_port=port)
    await asyncio.to_thread(wait_healthy, port, bridge)
    mqtt = MqttTopics(namespace)
    topic_of = {"readings": mqtt.readings, "status": mqtt.status, "birth": mqtt.birth}

    messages: list[tuple[str, bytes]] = []
    bad_by_topic = {}
    seq = Counter[str]()
    for index, case in enumerate(CORPUS):
        device = VALID_DEVICES[index % len(VALID_DEVICES)]
        messages.append((mqtt.readings(device), valid_reading(device, seq[device])))
        seq[device] += 1
        bad_device = f"bad-{case.name}"
        topic = topic_of[case.kind](bad_device)
        messages.append((topic, case.make(bad_device)))
        bad_by_topic[topic] = (case, messages[-1][1])
    for device in VALID_DEVICES:
        messages.append((mqtt.status(device), valid_status(device)))
        messages.append((mqtt.birth(device), valid_birth(device)))
    with publisher(services) as pub:
        await asyncio.to_thread(pub.publish, messages)

    valid_count = sum(seq.values())
    readings = await consume(
        services.kafka_bootstrap, [kafka_topics.readings], lambda r: len(r) >= valid_count, 60
    )
    letters = await consume(
        services.kafka_bootstrap, [kafka_topics.readings_dlq], lambda r: len(r) >= len(CORPUS), 60
    )
    status = await consume(
        services.kafka_bootstrap,
        [kafka_topics.device_status, kafka_topics.device_birth],
        lambda r: len(r) >= 2 * len(VALID_DEVICES),
        60,
    )

    # Every valid reading, byte for byte, keyed by its device, exactly once (nothing failed).
    audit = Audit({d: set(range(seq[d])) for d in VALID_DEVICES})
    audit.add(readings)
    assert audit.summary() == {
        "expected": valid_count,
        "records": valid_count,
        "missing": 0,
        "duplicates": 0,
        "first_seen_out_of_order": 0,
        "duplicated": {},
    }
    published = {payload for topic, payload in messages if topic.endswith("/readings")}
    assert {record.value for record in readings} <= published

    # Every bad case, with its reason and its original bytes.
    assert len(letters) == len(CORPUS)
    for record in letters:
        letter = json.loads(record.value)
        case, payload = bad_by_topic[letter["mqtt_topic"]]
        assert (letter["reason"], letter["kind"]) == (
            case.reason,
            "reading" if case.kind == "readings" else case.kind,
        ), case.name
        kept = base64.b64decode(letter["payload_b64"])
        assert kept == payload[: len(kept)]
        assert letter["payload_size"] == len(payload)
        assert record.key == f"bad-{case.name}".encode()
        assert dict(record.headers)["reason"] == case.reason.encode()

    # Status and birth, keyed by device on their compacted topics.
    by_topic = Counter((r.topic, r.key) for r in status)
    assert by_topic == Counter(
        (topic, device.encode())
        for topic in (kafka_topics.device_status, kafka_topics.device_birth)
        for device in VALID_DEVICES
    )

    metrics = await asyncio.to_thread(scrape, port)
    for reason, count in Counter(case.reason for case in CORPUS).items():
        assert metrics[f'bridge_dead_lettered_total{{reason="{reason}"}}'] == count, reason
    assert metrics['bridge_forwarded_total{kind="reading"}'] == valid_count
    assert metrics['bridge_forwarded_total{kind="status"}'] == len(VALID_DEVICES)
    assert metrics["bridge_in_flight"] == 0
    assert metrics["bridge_ready"] == 1
    assert metrics["bridge_kafka_ack_seconds_count"] == len(messages)

    bridge.process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(bridge.process.wait, 20) == 0
    assert "bridge stopped" in bridge.log_tail()


async def test_two_bridges_in_a_shared_group_split_the_load(
    services: Services, kafka_topics: KafkaTopics, namespace: str, spawn: Spawn
) -> None:
    ports = [free_port(), free_port()]
    bridges = [
        spawn_bridge(
            spawn,
            services,
            namespace,
            metrics_port=port,
            name=f"bridge-{i}",
            client_id=f"bridge-{namespace}-{i}",
            shared_group=f"g-{namespace}",
        )
        for i, port in enumerate(ports)
    ]
    for port, bridge in zip(ports, bridges, strict=True):
        await asyncio.to_thread(wait_healthy, port, bridge)
    mqtt = MqttTopics(namespace)
    devices, per_device = [f"dev-{i}" for i in range(10)], 100
    with publisher(services) as pub:
        await asyncio.to_thread(
            pub.publish,
            [(mqtt.readings(d), valid_reading(d, s)) for s in range(per_device) for d in devices],
        )
    total = len(devices) * per_device
    records = await consume(
        services.kafka_bootstrap, [kafka_topics.readings], lambda r: len(r) >= total, 60
    )
    audit = Audit({d: set(range(per_device)) for d in devices})
    audit.add(records)
    assert audit.missing == {}
    assert audit.duplicates == 0

    # A record can be visible in Kafka a moment before its bridge has counted the ack.
    def counted() -> list[float] | None:
        forwarded = [scrape(port)['bridge_forwarded_total{kind="reading"}'] for port in ports]
        return forwarded if sum(forwarded) >= total else None

    forwarded = await asyncio.to_thread(wait_until, "both bridges' acks counted", counted, 15)
    assert sum(forwarded) == total
    assert min(forwarded) > total / 10, forwarded  # both took a real share


@pytest.mark.parametrize("down", ["kafka", "mqtt"])
async def test_healthz_is_503_while_a_side_is_unreachable(
    services: Services, namespace: str, spawn: Spawn, down: str
) -> None:
    port, closed = free_port(), free_port()
    bridge = spawn_bridge(
        spawn,
        services,
        namespace,
        metrics_port=port,
        mqtt_port=closed if down == "mqtt" else None,
        kafka_bootstrap=f"127.0.0.1:{closed}" if down == "kafka" else None,
    )

    def unhealthy() -> dict[str, object] | None:
        # Kafka's side comes up (topics provisioned, producer started) a moment after the
        # health server, so wait for the state the outage settles in, not the first 503.
        status, body = http_get(port, "/healthz")
        detail = json.loads(body) if status == 503 else None
        if detail is None or detail["producing"] is not (down == "mqtt"):
            return None
        return detail

    detail = await asyncio.to_thread(
        wait_until,
        f"a 503 with {down} unreachable",
        unhealthy,
        30,
        watched=[bridge],
        tolerate=(OSError,),
    )
    assert detail["subscribed"] is False

    def reconnecting() -> bool:
        return scrape(port).get(f'bridge_reconnects_total{{side="{down}"}}', 0) >= 2

    await asyncio.to_thread(
        wait_until, "retries", reconnecting, 30, watched=[bridge], tolerate=(OSError,)
    )
    assert scrape(port)["bridge_ready"] == 0
    bridge.process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(bridge.process.wait, 10) == 0
