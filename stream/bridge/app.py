"""The bridge service: MQTT (manual acks) -> Kafka (idempotent producer, acks=all).

Each message is acknowledged to the MQTT broker only after Kafka has acknowledged it, in
arrival order, with at most ``max_in_flight`` messages between the two. If either side fails
the whole pipeline is torn down and rebuilt with jittered exponential backoff; the broker then
redelivers every unacknowledged message to the persistent session (at-least-once).
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import start_http_server

from schema.topics import KafkaTopics, MqttTopics
from schema.wire import InvalidPayload, decode_reading
from stream.bridge.metrics import BridgeMetrics
from stream.bridge.mqtt_source import MqttMessage, MqttSource, MqttUnavailable
from stream.dead_letter import dead_letter_record
from stream.settings import BridgeSettings

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0
Pending = tuple[MqttMessage, "asyncio.Future[object]", float]


class Forwarder:
    """Routes each MQTT message to ``readings`` or ``readings.dlq`` and acks it in order."""

    def __init__(
        self,
        source: MqttSource,
        producer: AIOKafkaProducer,
        settings: BridgeSettings,
        metrics: BridgeMetrics,
    ) -> None:
        self._source, self._producer, self._metrics = source, producer, metrics
        self._mqtt = MqttTopics(settings.topic_namespace)
        self._kafka = KafkaTopics(settings.topic_namespace)
        self._window: asyncio.Queue[Pending] = asyncio.Queue(settings.max_in_flight)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._ack_in_order(), name="bridge-acker")
            group.create_task(self._take(), name="bridge-taker")

    async def _take(self) -> None:
        async for message in self._source.messages():
            self._metrics.received.inc()
            delivery = await self._route(message)
            await self._window.put((message, delivery, asyncio.get_running_loop().time()))
            self._metrics.in_flight.inc()

    async def _route(self, message: MqttMessage) -> asyncio.Future[object]:
        device_id = self._mqtt.device_id_of(message.topic)
        try:
            reading = decode_reading(message.payload, topic_device_id=device_id)
        except InvalidPayload as exc:
            log.debug("dead-lettering %s: %s", message.topic, exc)
            self._metrics.dead_lettered.labels(exc.reason).inc()
            record = dead_letter_record(
                topic=message.topic,
                payload=message.payload,
                reason=exc.reason,
                detail=exc.detail,
                at=datetime.now(UTC),
            )
            key = (device_id or message.topic).encode()
            return await self._producer.send(self._kafka.readings_dlq, record, key=key)  # type: ignore[no-any-return]
        self._metrics.forwarded.inc()
        return await self._producer.send(  # type: ignore[no-any-return]
            self._kafka.readings, message.payload, key=reading.device_id.encode()
        )

    async def _ack_in_order(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            message, delivery, sent_at = await self._window.get()
            await delivery  # raises if Kafka gave up: nothing after it is acked either
            self._metrics.kafka_latency.observe(loop.time() - sent_at)
            self._source.ack(message)
            self._metrics.in_flight.dec()


async def run(settings: BridgeSettings) -> None:
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    metrics = BridgeMetrics()
    if settings.metrics_port:
        start_http_server(
            settings.metrics_port, addr=settings.metrics_host, registry=metrics.registry
        )
    mqtt = MqttTopics(settings.topic_namespace)
    backoff = 0.5
    while True:
        try:
            async with (
                AIOKafkaProducer(
                    bootstrap_servers=settings.kafka_bootstrap,
                    enable_idempotence=True,
                    acks="all",
                    linger_ms=5,
                ) as producer,
                MqttSource(
                    settings.mqtt_host,
                    settings.mqtt_port,
                    settings.mqtt_client_id,
                    [mqtt.all_readings],
                    settings.max_in_flight,
                ) as source,
            ):
                log.info("bridging %s -> %s", mqtt.all_readings, settings.kafka_bootstrap)
                backoff = 0.5
                metrics.in_flight.set(0)
                metrics.ready.set(1)
                try:
                    await Forwarder(source, producer, settings, metrics).run()
                finally:
                    metrics.ready.set(0)
        except* (MqttUnavailable, KafkaError) as group:
            delay = backoff * random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not crypto
            log.warning("bridge pipeline failed (%s); restarting in %.1fs", group.exceptions, delay)
            await asyncio.sleep(delay)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
