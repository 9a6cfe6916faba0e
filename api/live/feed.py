"""The one Kafka consumer of an API process, feeding the hub.

Group-less (no consumer group, no commits): it assigns itself every partition of the result
topics, ``readings`` and ``device-status``, starting from the latest offsets, so each API
process sees every event once and a restart shows what happens from then on. Topics that do
not exist yet are looked for again periodically and read from their beginning once they
appear (everything in them is newer than the feed). When the connection fails, the consumer
is rebuilt with jittered exponential backoff and resumes at the offsets it had reached.

Messages that do not match their topic's contract are counted and skipped (the live feed is a
view; the stream worker and the dead-letter topic deal with bad input).

Kafka away: every ``check_s`` the feed asks Kafka for its metadata and gives it as long to
answer (a consumer's fetches just come back empty from a broker that is gone or frozen, so
waiting for an error would not do). A failed check, start or read tells the hub Kafka is
*down* (its clients get an ``upstream`` frame) and rebuilds the consumer with backoff; the
first successful start after that tells them it is *up* again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.cluster import ClusterMetadata
from aiokafka.errors import KafkaError
from aiokafka.protocol.metadata import MetadataRequest

from api.live.events import Kind, UndecodableEvent, decode, topic_kinds
from api.live.hub import Hub
from schema.backoff import Backoff, Jitter
from schema.topics import KafkaTopics

log = logging.getLogger(__name__)

YIELD_EVERY = 64
"""Records handed to the hub between two yields to the event loop: senders drain their queues
in between, so a burst from Kafka does not look like a slow client to a fast one."""
T = TypeVar("T")
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Take a timed-out step's outcome, so that asyncio does not log it as never retrieved."""
    if not task.cancelled() and task.exception() is not None:
        log.debug("live feed: a timed-out Kafka step ended with %r", task.exception())


def reconnect_backoff() -> Backoff:
    """Full-jitter exponential backoff: uniform in [0, base], the base doubling up to the max."""
    return Backoff(BACKOFF_MIN_S, BACKOFF_MAX_S, jitter=Jitter.FULL)


class KafkaFeed:
    def __init__(
        self,
        bootstrap: str,
        topics: KafkaTopics,
        hub: Hub,
        *,
        client_id: str = "wattstream-api",
        rediscover_s: float = 10.0,
        check_s: float = 5.0,
    ) -> None:
        self._bootstrap = bootstrap
        self._kinds: dict[str, Kind] = topic_kinds(topics)
        self._hub = hub
        self._client_id = client_id
        self._rediscover_s = rediscover_s
        self._check_s = check_s
        self._consumer: AIOKafkaConsumer | None = None
        self._connected = asyncio.Event()
        self._positions: dict[TopicPartition, int] = {}
        self._started_once = False
        self.assigned = asyncio.Event()
        """Set once every topic's partitions are assigned and positioned."""
        self.partitions = 0
        self.missing_topics: list[str] = list(self._kinds)
        self.consumed = 0
        self.undecodable = 0

    async def run(self) -> None:
        """Consume until cancelled, reconnecting on failure."""
        backoff = reconnect_backoff()
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="latest",
                client_id=self._client_id,
            )
            try:
                await self._answered(consumer.start(), "connecting")
                self._consumer = consumer
                self._connected.set()
                self._hub.set_upstream(True)
                backoff.reset()
                await self._consume(consumer)
            except (KafkaError, OSError, TimeoutError) as exc:  # retriable: the network or broker
                attempt = backoff.attempts + 1
                self._hub.set_upstream(False, str(exc) or type(exc).__name__)
                log.warning("live feed: Kafka failed (%s); reconnecting (attempt %d)", exc, attempt)
            finally:
                self._connected.clear()
                self._consumer = None
                # Closing sockets needs no answer, but bound it anyway (a frozen broker).
                with contextlib.suppress(TimeoutError, KafkaError, OSError):
                    await self._answered(consumer.stop(), "stopping")
            await asyncio.sleep(backoff.next_delay())

    async def _answered(self, step: Awaitable[T], what: str, factor: float = 1.0) -> T:
        """``step``, or :class:`TimeoutError` saying so when Kafka takes longer than
        ``factor`` times ``check_s``.

        ``step`` runs as its own task, cancelled on time-out, rather than under
        ``asyncio.timeout`` in this one, and a step that ends cancelled is a
        :class:`KafkaError`: aiokafka's ``stop()`` re-raises the cancellation of its pending
        fetches (after a lost connection), and a ``CancelledError`` escaping into this task
        would end the feed for good, silently (a task group ignores a cancelled child)."""
        bound = factor * self._check_s
        task = asyncio.ensure_future(step)
        try:
            done, _ = await asyncio.wait({task}, timeout=bound)
        finally:
            if not task.done():
                task.cancel()
                task.add_done_callback(_retrieve)
        if not done:
            raise TimeoutError(f"Kafka did not answer within {bound:g}s ({what})")
        if task.cancelled():  # by aiokafka itself: stop() re-raises its fetches' cancellation
            raise KafkaError(f"aiokafka cancelled its own step ({what})")
        return task.result()

    async def probe(self, timeout_s: float) -> str | None:
        """``None`` when Kafka answers a metadata request in time, else why not."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._connected.wait()
                consumer = self._consumer
                if consumer is None:
                    return "the live feed lost its Kafka connection"
                await self._metadata(consumer)
        except TimeoutError:
            return f"Kafka did not answer within {timeout_s:g}s"
        except KafkaError as exc:
            return f"Kafka did not answer: {exc!r}"
        return None

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        next_discovery = 0.0
        next_check = time.monotonic() + self._check_s
        while True:
            if time.monotonic() >= next_discovery:
                # Bounded like a check (twice: it also positions every partition).
                complete = await self._answered(self._assign(consumer), "assigning", 2)
                next_discovery = time.monotonic() + (
                    self._rediscover_s if not complete else 10 * self._rediscover_s
                )
            if time.monotonic() >= next_check:
                # The consumer's own metadata is a cache: ask the broker.
                await self._answered(self._metadata(consumer), "metadata")
                next_check = time.monotonic() + self._check_s
            if not consumer.assignment():
                await asyncio.sleep(min(1.0, self._rediscover_s))
                continue
            batch = await consumer.getmany(timeout_ms=500, max_records=2000)
            handed = 0
            for partition, records in batch.items():
                kind = self._kinds[partition.topic]
                for record in records:
                    self._positions[partition] = record.offset + 1
                    self._deliver(kind, record.value)
                    handed += 1
                    if handed % YIELD_EVERY == 0:
                        await asyncio.sleep(0)

    def _deliver(self, kind: Kind, value: bytes | None) -> None:
        if value is None:  # a tombstone on a compacted topic: nothing to show
            return
        self.consumed += 1
        try:
            device_id, data = decode(kind, value)
        except UndecodableEvent as exc:
            self.undecodable += 1
            log.debug("live feed: skipping an invalid message: %s", exc)
            return
        self._hub.publish(kind, device_id, data)

    async def _metadata(self, consumer: AIOKafkaConsumer) -> ClusterMetadata:
        """The broker's metadata of the feed's topics, asked for now (never auto-creating one).

        Only these topics: the whole cluster's metadata (what ``consumer.topics()`` and the
        client's ``fetch_all_metadata()`` ask for) took ~100 ms of this event loop's CPU to
        decode with 1,200 topics on the broker, every check, and every request waited for it
        (bench/api_load.py: the p99 of ``/live``). ``partitions_for_topic()`` of the consumer
        knows only topics its client already tracks, hence the client's request (private)."""
        client = consumer._client
        request = MetadataRequest(list(self._kinds), allow_auto_topic_creation=False)
        # Each known broker in turn until one answers (what the client does for its own
        # metadata); not get_random_node(): the global ``random`` is not ours to draw from.
        nodes = sorted(b.nodeId for b in client.cluster.brokers())
        if not nodes:
            raise KafkaError("no broker known to ask for metadata")
        for node in nodes:
            try:
                response = await client.send(node, request)
                break
            except KafkaError:
                if node == nodes[-1]:
                    raise
        cluster = ClusterMetadata()
        # A missing topic is simply absent (the feed says which itself), not logged as an error.
        cluster.need_all_topic_metadata = True
        cluster.update_metadata(response)
        return cluster

    async def _assign(self, consumer: AIOKafkaConsumer) -> bool:
        """(Re)assign every partition of the wanted topics; True when none is missing."""
        cluster = await self._metadata(consumer)
        wanted: set[TopicPartition] = set()
        missing = []
        for topic in self._kinds:
            partitions = cluster.partitions_for_topic(topic)
            if not partitions:
                missing.append(topic)
            wanted.update(TopicPartition(topic, p) for p in partitions or ())
        self.missing_topics = missing
        if missing:
            log.info("live feed: topics not there yet: %s", ", ".join(missing))
        if wanted != consumer.assignment():
            for partition in consumer.assignment():
                self._positions[partition] = await consumer.position(partition)
            consumer.assign(list(wanted))
            fresh = [p for p in wanted if p not in self._positions]
            for partition in wanted - set(fresh):
                consumer.seek(partition, self._positions[partition])
            if fresh:
                # At start-up: from now on. Later (a topic that appeared): all of it is new.
                if self._started_once:
                    await consumer.seek_to_beginning(*fresh)
                else:
                    await consumer.seek_to_end(*fresh)
                for partition in fresh:
                    self._positions[partition] = await consumer.position(partition)
            log.info("live feed: reading %d partitions of %d topics", len(wanted), len(self._kinds))
        self.partitions = len(wanted)
        self._started_once = True
        if not missing:
            self.assigned.set()
        return not missing
