"""The simulator's ground truth on its way to the database, through the real services: a label
published on ``{root}/labels`` by the broker's operator user (the only one allowed to) goes
through the bridge to the ``anomaly-labels`` topic and the stream worker stores it once in
``anomaly_labels``, however often it is delivered; an invalid one is dead-lettered."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import asyncpg
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from schema.device_messages import AnomalyKind, AnomalyLabel, LabelSource
from schema.topics import KafkaTopics, MqttTopics
from tests.conftest import Services, Spawn, free_port
from tests.fixtures import worker_fleet as fleet
from tests.fixtures.bridge import consume, spawn_bridge, wait_healthy
from tests.fixtures.waiting import wait_until_async

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

START = datetime(2026, 6, 1, 10, tzinfo=UTC)


def publish_as_operator(services: Services, topic: str, payloads: list[bytes]) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2)
    auth = services.mqtt_auth("operator")
    if auth:
        client.username_pw_set(auth["username"], auth["password"])
    client.connect(services.mqtt_host, services.mqtt_port)
    client.loop_start()
    try:
        for payload in payloads:
            info = client.publish(topic, payload, qos=1)
            info.wait_for_publish(30)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


async def test_a_label_reaches_the_database_once(
    services: Services, database: str, kafka_topics: KafkaTopics, namespace: str, spawn: Spawn
) -> None:
    port = free_port()
    bridge = spawn_bridge(spawn, services, namespace, metrics_port=port)
    await asyncio.to_thread(wait_healthy, port, bridge)
    worker = fleet.start_worker(spawn, services, database, namespace)
    label = AnomalyLabel(
        label_id="cmd-7:dev-00003",
        device_id="dev-00003",
        anomaly=AnomalyKind.DRIFT,
        start=START,
        end=START + timedelta(hours=2),
        first_seq=120,
        magnitude=1.5,
        nominal_kw=3.0,
        source=LabelSource.COMMAND,
        command_id="cmd-7",
    )
    good = label.model_dump_json().encode()
    bad = good.replace(b'"drift"', b'"meteor"')
    topic = MqttTopics(namespace).labels
    await asyncio.to_thread(publish_as_operator, services, topic, [good, bad, good])

    conn = await asyncpg.connect(database)
    try:

        async def stored() -> int:
            count: int = await conn.fetchval("SELECT count(*) FROM anomaly_labels")
            return count

        await wait_until_async(
            "the label in the database",
            stored,
            180,
            interval_s=0.5,
            watched=[bridge, worker],
            detail=worker.log_tail,
        )
        # Both copies on Kafka, keyed by the device they are about; the worker stored one row.
        records = await consume(
            services.kafka_bootstrap, [kafka_topics.anomaly_labels], lambda r: len(r) >= 2, 30
        )
        assert [(r.key, r.value) for r in records] == [(b"dev-00003", good)] * 2
        await fleet.wait_for_every_event_processed(services, kafka_topics, namespace, worker)
        rows = await conn.fetch("SELECT * FROM anomaly_labels")
        assert len(rows) == 1
        row = dict(rows[0])
        assert row.pop("received_at") is not None
        assert row == {
            **label.model_dump(exclude={"schema_version"}),
            "anomaly": "drift",
            "source": "command",
        }
    finally:
        await conn.close()
    letters = await consume(
        services.kafka_bootstrap, [kafka_topics.readings_dlq], lambda r: len(r) >= 1, 30
    )
    assert [(json.loads(r.value)["kind"], json.loads(r.value)["reason"]) for r in letters] == [
        ("label", "invalid_value")
    ]
