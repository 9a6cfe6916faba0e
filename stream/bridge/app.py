"""The bridge service: MQTT (manual acks) -> Kafka (idempotent producer, acks=all).

Each message is acknowledged to the MQTT broker only after Kafka has acknowledged it, in
arrival order, with at most ``max_in_flight`` messages between the two (also the MQTT receive
maximum, so while Kafka does not answer the broker stops sending and queues for the session).

Failures and what they cost:

* MQTT connection lost: the MQTT side reconnects with jittered exponential backoff; the
  producer stays. Messages Kafka took but that were not acknowledged yet are redelivered by the
  broker: duplicates in Kafka, never a gap.
* Kafka does not acknowledge a message (or the producer fails): nothing after it is
  acknowledged; both sides are rebuilt (the MQTT reconnect is what makes the broker redeliver).
* SIGTERM (or SIGINT): stop taking messages, wait up to ``shutdown_grace_s`` for Kafka to
  acknowledge what is in flight, acknowledge it to MQTT, disconnect cleanly. A second signal, or
  the grace period plus a few seconds, cancels whatever is left.
* Bad input never raises: :mod:`.routing` turns it into a dead letter.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import Counter

from schema.backoff import Backoff
from schema.topics import KafkaTopics
from stream.bridge.errors import DeliveryFailed, MqttUnavailable
from stream.bridge.health import Health, HealthServer, assess
from stream.bridge.metrics import BridgeMetrics
from stream.bridge.mqtt_source import MqttMessage, MqttSource
from stream.bridge.partitioner import CachedPartitioner
from stream.bridge.routing import Record, Router
from stream.provision import ensure_topics
from stream.settings import BridgeSettings

log = logging.getLogger(__name__)

_HARD_STOP_EXTRA_S = 5.0
"""After SIGTERM, cancel everything this long after the grace period at the latest."""


class Source(Protocol):
    """Where messages come from and go back acknowledged (:class:`MqttSource`)."""

    def messages(self) -> AsyncIterator[MqttMessage]: ...

    def ack(self, message: MqttMessage) -> None: ...


class Producer(Protocol):
    """Where records go (:class:`aiokafka.AIOKafkaProducer`)."""

    async def send(
        self, topic: str, value: bytes, key: bytes, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[Any]: ...


class _Tally:
    """Counts per label value, added to a labelled counter once per turn of the event loop
    (a counter takes a lock per increment; the bridge counts two or three times a message)."""

    def __init__(self, parent: Counter) -> None:
        self._parent = parent
        self._children: dict[str, Counter] = {}
        self._counts: dict[str, int] = {}

    def add(self, value: str) -> None:
        counts = self._counts
        if not counts:
            asyncio.get_running_loop().call_soon(self.flush)
        counts[value] = counts.get(value, 0) + 1

    def flush(self) -> None:
        for value, count in self._counts.items():
            child = self._children.get(value)
            if child is None:
                child = self._children[value] = self._parent.labels(value)
            child.inc(count)
        self._counts.clear()


class _Pending(NamedTuple):
    message: MqttMessage
    record: Record
    delivery: asyncio.Future[Any]
    sent_at: float


class Forwarder:
    """Routes each message to its Kafka topic (or the dead-letter topic), acks it in order."""

    def __init__(
        self,
        source: Source,
        producer: Producer,
        router: Router,
        metrics: BridgeMetrics,
        *,
        max_in_flight: int,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._source, self._producer, self._router = source, producer, router
        self._metrics, self._clock, self._now = metrics, clock, now
        # Taken from the source and not yet acknowledged, in arrival order; ``None`` ends it.
        self._window: collections.deque[_Pending | None] = collections.deque()
        self._window_filled = asyncio.Event()
        """Set while ``_window`` holds something (the acker's wake-up)."""
        self._max_in_flight = max_in_flight
        self._room = asyncio.Event()
        """Set while fewer than ``max_in_flight`` messages are in flight (the taker's)."""
        self._room.set()
        self._in_flight = 0
        self._awaiting_since: float | None = None
        # Read when scraped: setting a gauge per message took a lock each time.
        metrics.in_flight.set_function(lambda: self._in_flight)
        self._received = _Tally(metrics.received)
        self._forwarded = _Tally(metrics.forwarded)
        self._dead_lettered = _Tally(metrics.dead_lettered)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def oldest_unacked_s(self) -> float | None:
        """How long Kafka has had the oldest message it has not acknowledged yet."""
        since = self._awaiting_since
        return None if since is None else self._clock() - since

    async def run(self, stop: asyncio.Event, grace_s: float) -> None:
        """Forward until ``stop`` is set, then drain: wait (up to ``grace_s``) for Kafka to
        acknowledge what is in flight and acknowledge it to MQTT. Raises if either side fails.
        """
        try:
            async with asyncio.TaskGroup() as group:
                acker = group.create_task(self._ack_in_order(), name="bridge-acker")
                taker = group.create_task(self._take(), name="bridge-taker")
                await stop.wait()
                taker.cancel()
                try:
                    async with asyncio.timeout(grace_s):
                        await asyncio.wait([taker])
                        self._put(None)
                        await acker
                except TimeoutError:
                    log.warning(
                        "stopping with %d messages Kafka has not acknowledged within %.1f s; "
                        "the broker will deliver them again",
                        self._in_flight,
                        grace_s,
                    )
                    acker.cancel()
                else:
                    log.info("drained: everything Kafka took is acknowledged to MQTT")
        finally:
            for tally in (self._received, self._forwarded, self._dead_lettered):
                tally.flush()

    def _put(self, pending: _Pending | None) -> None:
        self._window.append(pending)
        self._window_filled.set()

    async def _take(self) -> None:
        messages = aiter(self._source.messages())
        route, send, now, clock = self._router.route, self._producer.send, self._now, self._clock
        room, received = self._room, self._received
        while True:
            if self._in_flight >= self._max_in_flight:  # no free place in the window
                room.clear()
                await room.wait()
                continue
            message = await anext(messages)
            record = route(message.topic, message.payload, at=now())
            received.add(record.kind)
            if record.reason is not None:
                log.debug("dead-lettering %s: %s", message.topic, record.reason)
            sent_at = clock()
            delivery = await send(
                record.topic, record.value, key=record.key, headers=list(record.headers)
            )
            delivery.add_done_callback(self._observe_latency(sent_at))
            self._in_flight += 1
            self._put(_Pending(message, record, delivery, sent_at))

    def _observe_latency(self, sent_at: float) -> Callable[[asyncio.Future[Any]], None]:
        def observe(delivery: asyncio.Future[Any]) -> None:
            if not delivery.cancelled() and delivery.exception() is None:
                self._metrics.kafka_latency.observe(self._clock() - sent_at)

        return observe

    async def _ack_in_order(self) -> None:
        window, filled, ack = self._window, self._window_filled, self._source.ack
        while True:
            if not window:
                filled.clear()
                await filled.wait()
                continue
            pending = window.popleft()
            if pending is None:
                return
            delivery = pending.delivery
            if not delivery.done():
                self._awaiting_since = pending.sent_at
                await self._delivered(pending)
                self._awaiting_since = None
            elif delivery.cancelled() or delivery.exception() is not None:
                await self._delivered(pending)  # raises
            ack(pending.message)
            self._in_flight -= 1
            self._room.set()
            record = pending.record
            if record.reason is None:
                self._forwarded.add(record.kind)
            else:
                self._dead_lettered.add(record.reason)

    @staticmethod
    async def _delivered(pending: _Pending) -> None:
        """Wait for Kafka's acknowledgement of ``pending``; raise if it will never come."""
        try:
            await pending.delivery
        except KafkaError as exc:
            # Nothing after it is acknowledged either: the broker redelivers them all.
            raise DeliveryFailed(
                f"Kafka did not acknowledge a record for {pending.record.topic}: {exc!r}"
            ) from exc
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # we are being stopped
            # The delivery itself was cancelled: a failure, not a silent end of the acker.
            raise DeliveryFailed(
                f"the delivery of a record for {pending.record.topic} was cancelled"
            ) from None


def mqtt_client_id(settings: BridgeSettings) -> str:
    """The bridge's MQTT client id, scoped by the namespace: two pipelines on one broker never
    take over each other's session."""
    ns = settings.topic_namespace
    return f"{ns}-{settings.mqtt.client_id}" if ns else settings.mqtt.client_id


def producer_options(settings: BridgeSettings) -> dict[str, object]:
    """How the bridge's Kafka producer is configured: idempotent, ``acks=all``."""
    return {
        "bootstrap_servers": settings.kafka.bootstrap,
        "client_id": mqtt_client_id(settings),
        "enable_idempotence": True,  # a retried batch is written once, in order
        "acks": "all",
        "linger_ms": settings.kafka.linger_ms,
        "request_timeout_ms": settings.kafka.request_timeout_ms,
        # Also the pace of aiokafka's reconnect attempts (and error lines) while Kafka is down.
        "retry_backoff_ms": 250,
        "partitioner": CachedPartitioner(),  # Kafka's default partitions, each key hashed once
    }


@contextlib.asynccontextmanager
async def kafka_producer(settings: BridgeSettings) -> AsyncIterator[AIOKafkaProducer]:
    """An idempotent ``acks=all`` producer, stopped (flushed) on exit, also if start fails."""
    producer = AIOKafkaProducer(**producer_options(settings))
    try:
        await producer.start()
        yield producer
    finally:
        await producer.stop()


async def _sleep_unless(stop: asyncio.Event, delay: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), delay)


class Bridge:
    """The reconnect loops around one :class:`Forwarder` at a time; reports its health."""

    def __init__(self, settings: BridgeSettings, metrics: BridgeMetrics) -> None:
        self._settings, self._metrics = settings, metrics
        self._router = Router(settings.topic_namespace, settings.shared_group)
        self._producing = False
        self._source: MqttSource | None = None
        self._forwarder: Forwarder | None = None

    def _backoff(self) -> Backoff:
        return Backoff(self._settings.reconnect_initial_s, self._settings.reconnect_max_s)

    def health(self) -> Health:
        forwarder, source = self._forwarder, self._source
        return assess(
            subscribed=source is not None and source.subscribed,
            producing=self._producing,
            oldest_unacked_s=forwarder.oldest_unacked_s() if forwarder else None,
            stall_after_s=self._settings.stall_after_s,
        )

    async def prepare(self) -> None:
        """Create the topics and this bridge's persistent MQTT session, subscribed: from then
        on the broker queues what devices publish for the bridge, whenever it first runs."""
        await self._ensure_topics()
        async with self._mqtt_source() as source:
            log.info(
                "bridge session %s ready (it existed already: %s), subscribed to %s",
                mqtt_client_id(self._settings),
                source.session_present,
                self._router.subscriptions,
            )

    async def _ensure_topics(self) -> None:
        await ensure_topics(
            self._settings.kafka.bootstrap,
            KafkaTopics(self._settings.topic_namespace).specs(),
            client_id=mqtt_client_id(self._settings),
        )

    def _mqtt_source(self) -> MqttSource:
        settings = self._settings
        return MqttSource(
            settings.mqtt.host,
            settings.mqtt.port,
            mqtt_client_id(settings),
            self._router.subscriptions,
            receive_maximum=settings.max_in_flight,
            session_expiry_s=settings.mqtt.session_expiry_s,
            keepalive_s=settings.mqtt.keepalive_s,
            auth=settings.mqtt.auth(),
        )

    async def run(self, stop: asyncio.Event) -> None:
        backoff = self._backoff()
        topics_ready = False
        while not stop.is_set():
            try:
                if not topics_ready:  # before the first record: never rely on auto-creation
                    await self._ensure_topics()
                    topics_ready = True
                async with kafka_producer(self._settings) as producer:
                    backoff.reset()
                    self._producing = True
                    try:
                        await self._run_mqtt(producer, stop)
                    finally:
                        self._producing = False
            except* (KafkaError, DeliveryFailed) as group:
                self._metrics.reconnects.labels("kafka").inc()
                delay = backoff.next_delay()
                log.warning(
                    "Kafka side failed (%s); rebuilding both sides in %.1f s",
                    "; ".join(repr(exc) for exc in group.exceptions),
                    delay,
                )
                await _sleep_unless(stop, delay)

    async def _run_mqtt(self, producer: Producer, stop: asyncio.Event) -> None:
        settings = self._settings
        backoff = self._backoff()
        while not stop.is_set():
            try:
                async with self._mqtt_source() as source:
                    backoff.reset()
                    forwarder = Forwarder(
                        source,
                        producer,
                        self._router,
                        self._metrics,
                        max_in_flight=settings.max_in_flight,
                    )
                    self._source, self._forwarder = source, forwarder
                    self._metrics.ready.set(1)
                    log.info(
                        "bridging %s -> %s", self._router.subscriptions, settings.kafka.bootstrap
                    )
                    try:
                        await forwarder.run(stop, settings.shutdown_grace_s)
                    finally:
                        self._metrics.ready.set(0)
                        self._source = self._forwarder = None
            except* MqttUnavailable as group:
                self._metrics.reconnects.labels("mqtt").inc()
                delay = backoff.next_delay()
                log.warning(
                    "MQTT side failed (%s); reconnecting in %.1f s",
                    "; ".join(str(exc) for exc in group.exceptions),
                    delay,
                )
                await _sleep_unless(stop, delay)


async def run(
    settings: BridgeSettings,
    *,
    metrics: BridgeMetrics | None = None,
    stop: asyncio.Event | None = None,
    handle_signals: bool = True,
) -> None:
    """Run the bridge until ``stop`` is set or SIGTERM/SIGINT arrives, then drain and return.

    ``handle_signals=False`` leaves the signals alone (the bridge runs inside another program,
    e.g. a test, which sets ``stop`` itself).
    """
    metrics = metrics or BridgeMetrics()
    if settings.prepare_only:
        await Bridge(settings, metrics).prepare()
        return
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    assert main_task is not None

    hard_stop: list[asyncio.TimerHandle] = []

    def on_signal(signum: signal.Signals) -> None:
        if stop.is_set():
            log.warning("%s again: stopping now", signum.name)
            main_task.cancel()
            return
        log.info("%s: finishing what is in flight, then stopping", signum.name)
        stop.set()
        grace = settings.shutdown_grace_s + _HARD_STOP_EXTRA_S
        hard_stop.append(loop.call_later(grace, main_task.cancel))

    signals = (signal.SIGTERM, signal.SIGINT) if handle_signals else ()
    for signum in signals:
        loop.add_signal_handler(signum, on_signal, signum)
    bridge = Bridge(settings, metrics)
    try:
        async with contextlib.AsyncExitStack() as stack:
            if settings.metrics_port:
                await stack.enter_async_context(
                    HealthServer(
                        settings.metrics_host,
                        settings.metrics_port,
                        metrics.registry,
                        bridge.health,
                    )
                )
            await bridge.run(stop)
        log.info("bridge stopped")
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
        for handle in hard_stop:
            handle.cancel()
