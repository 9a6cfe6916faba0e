"""The forwarder's acknowledgement logic, without I/O: a scripted source and a producer whose
deliveries the test completes by hand, in any order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError

from schema.topics import KafkaTopics, MqttTopics
from stream.bridge.app import Forwarder
from stream.bridge.errors import DeliveryFailed, MqttUnavailable
from stream.bridge.metrics import BridgeMetrics
from stream.bridge.mqtt_source import MqttMessage
from stream.bridge.routing import Router
from tests.fixtures.bad_inputs import valid_reading

pytestmark = pytest.mark.unit

MQTT = MqttTopics("ns")
KAFKA = KafkaTopics("ns")


def message(mid: int, payload: bytes | None = None, device: str = "dev-1") -> MqttMessage:
    body = valid_reading(device, mid) if payload is None else payload
    return MqttMessage(MQTT.readings(device), body, mid, 1)


class ScriptedSource:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[MqttMessage | BaseException] = asyncio.Queue()
        self.acked: list[int] = []
        self.taken = 0

    def feed(self, *items: MqttMessage | BaseException) -> None:
        for item in items:
            self.queue.put_nowait(item)

    async def messages(self) -> AsyncIterator[MqttMessage]:
        while True:
            item = await self.queue.get()
            if isinstance(item, BaseException):
                raise item
            self.taken += 1
            yield item

    def ack(self, message: MqttMessage) -> None:
        self.acked.append(message.mid)


class HandProducer:
    """Each send returns a future the test resolves."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, asyncio.Future[Any]]] = []

    async def send(
        self, topic: str, value: bytes, key: bytes, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.sent.append((topic, value, key, future))
        return future

    def ack(self, *indexes: int) -> None:
        for index in indexes:
            self.sent[index][3].set_result(object())

    def fail(self, index: int) -> None:
        self.sent[index][3].set_exception(KafkaTimeoutError())


async def settle() -> None:
    """Let the forwarder's tasks run: no time passes and nothing external is awaited (the
    source and producer are fakes driven by the test), so a number of loop turns suffices."""
    for _ in range(20):
        await asyncio.sleep(0)


def forwarder(
    source: ScriptedSource, producer: HandProducer, window: int = 100
) -> tuple[Forwarder, BridgeMetrics]:
    metrics = BridgeMetrics()
    return Forwarder(source, producer, Router("ns"), metrics, max_in_flight=window), metrics


async def test_acks_follow_arrival_order_whatever_order_kafka_acks_in() -> None:
    source, producer = ScriptedSource(), HandProducer()
    fwd, metrics = forwarder(source, producer)
    stop = asyncio.Event()
    task = asyncio.create_task(fwd.run(stop, grace_s=5))
    source.feed(*(message(mid) for mid in range(1, 6)))
    await settle()
    assert len(producer.sent) == 5
    producer.ack(4, 2, 1)
    await settle()
    assert source.acked == []  # the first is not acknowledged by Kafka yet
    producer.ack(0)
    await settle()
    assert source.acked == [1, 2, 3]
    assert fwd.in_flight == 2
    assert metrics.registry.get_sample_value("bridge_in_flight") == 2
    producer.ack(3)
    await settle()
    assert source.acked == [1, 2, 3, 4, 5]
    stop.set()
    await task
    assert metrics.registry.get_sample_value("bridge_forwarded_total", {"kind": "reading"}) == 5


async def test_records_are_keyed_by_device_and_bad_ones_dead_lettered() -> None:
    source, producer = ScriptedSource(), HandProducer()
    fwd, metrics = forwarder(source, producer)
    stop = asyncio.Event()
    task = asyncio.create_task(fwd.run(stop, grace_s=5))
    source.feed(message(1, device="a"), message(2, b"{nope", device="b"), message(3, device="c"))
    await settle()
    assert [(t, k) for t, _, k, _ in producer.sent] == [
        (KAFKA.readings, b"a"),
        (KAFKA.readings_dlq, b"b"),
        (KAFKA.readings, b"c"),
    ]
    producer.ack(0, 1, 2)
    await settle()
    stop.set()
    await task
    assert source.acked == [1, 2, 3]
    assert (
        metrics.registry.get_sample_value(
            "bridge_dead_lettered_total", {"reason": "malformed_json"}
        )
        == 1
    )
    assert metrics.registry.get_sample_value("bridge_forwarded_total", {"kind": "reading"}) == 2
    assert metrics.registry.get_sample_value("bridge_received_total", {"kind": "reading"}) == 3


async def test_the_window_bounds_what_is_taken_while_kafka_does_not_answer() -> None:
    source, producer = ScriptedSource(), HandProducer()
    fwd, _ = forwarder(source, producer, window=4)
    stop = asyncio.Event()
    task = asyncio.create_task(fwd.run(stop, grace_s=0.1))
    source.feed(*(message(mid) for mid in range(1, 11)))
    await settle()
    assert len(producer.sent) == 4
    assert fwd.in_flight == 4
    assert source.taken == 4
    assert source.queue.qsize() == 6  # left with the broker
    producer.ack(1)
    await settle()
    assert (source.acked, len(producer.sent)) == ([], 4)  # the first still holds its place
    producer.ack(0)
    await settle()
    assert source.acked == [1, 2]
    assert len(producer.sent) == 6
    stop.set()
    await task


async def test_a_failed_delivery_stops_the_acks_and_fails_the_run() -> None:
    source, producer = ScriptedSource(), HandProducer()
    fwd, _ = forwarder(source, producer)
    task = asyncio.create_task(fwd.run(asyncio.Event(), grace_s=5))
    source.feed(*(message(mid) for mid in range(1, 5)))
    await settle()
    producer.ack(0, 2, 3)
    producer.fail(1)
    with pytest.raises(ExceptionGroup) as caught:
        await task
    assert caught.group_contains(DeliveryFailed)
    assert source.acked == [1]  # 3 and 4 are in Kafka, but the broker will deliver them again


async def test_a_cancelled_delivery_is_a_failure_not_a_silent_stop() -> None:
    source, producer = ScriptedSource(), HandProducer()
    fwd, _ = forwarder(source, producer)
    task = asyncio.create_task(fwd.run(asyncio.Event(), grace_s=5))
    source.feed(message(1), message(2))
    await settle()
    producer.sent[0][3].cancel()
    with pytest.raises(ExceptionGroup) as caught:
        await asyncio.wait_for(task, 2)
    assert caught.group_contains(DeliveryFailed)
    assert source.acked == []


async def test_an_mqtt_failure_fails_the_run() -> None:
    source, producer = ScriptedSource(), HandProducer()
    fwd, _ = forwarder(source, producer)
    task = asyncio.create_task(fwd.run(asyncio.Event(), grace_s=5))
    source.feed(message(1), MqttUnavailable("gone"))
    with pytest.raises(ExceptionGroup) as caught:
        await task
    assert caught.group_contains(MqttUnavailable)
    assert source.acked == []


async def test_stop_drains_what_kafka_takes_and_takes_nothing_new() -> None:
    source, producer = ScriptedSource(), HandProducer()
    fwd, _ = forwarder(source, producer)
    stop = asyncio.Event()
    task = asyncio.create_task(fwd.run(stop, grace_s=5))
    source.feed(*(message(mid) for mid in range(1, 4)))
    await settle()
    stop.set()
    await settle()
    source.feed(message(99))
    await settle()
    assert not task.done()  # still waiting for Kafka
    producer.ack(0, 1, 2)
    await asyncio.wait_for(task, 1)
    assert source.acked == [1, 2, 3]
    assert len(producer.sent) == 3


async def test_stop_gives_up_after_the_grace_period() -> None:
    source, producer = ScriptedSource(), HandProducer()
    fwd, _ = forwarder(source, producer)
    stop = asyncio.Event()
    task = asyncio.create_task(fwd.run(stop, grace_s=0.2))
    source.feed(message(1), message(2))
    await settle()
    producer.ack(0)
    stop.set()
    await asyncio.wait_for(task, 2)
    assert source.acked == [1]


async def test_oldest_unacked_age_is_reported_for_health() -> None:
    now = [100.0]
    source, producer = ScriptedSource(), HandProducer()
    fwd = Forwarder(
        source, producer, Router("ns"), BridgeMetrics(), max_in_flight=10, clock=lambda: now[0]
    )
    stop = asyncio.Event()
    task = asyncio.create_task(fwd.run(stop, grace_s=1))
    await settle()
    assert fwd.oldest_unacked_s() is None
    source.feed(message(1))
    await settle()
    now[0] = 107.5
    assert fwd.oldest_unacked_s() == 7.5
    producer.ack(0)
    await settle()
    assert fwd.oldest_unacked_s() is None
    stop.set()
    await task
