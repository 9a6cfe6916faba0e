"""Faust application factory: ``create_app(settings)`` builds the app, its table and agent.

One agent reads the device topics (``readings``, ``device-birth``, ``device-status``, and
``anomaly-labels``, the ground truth it stores for scoring the alerts; all keyed by device id
with the same partition count, so one device's events share a partition) and hands batches to
:class:`~stream.worker.processor.EventProcessor`. Per-device state lives in a changelog-backed
table written with the producer's partitioner (``use_partitioner``), which puts each device's
entry in the same partition as its events, outside any "current event".
Events are acknowledged only after the processor returned and Kafka acknowledged every
changelog write of the batch (:class:`DeviceStateTable`), i.e. after the database commit, the
result messages and the table's state. Revoked
partitions make the processor drop its parsed states of their devices. Nothing
happens at import.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, MutableMapping, Sequence
from pathlib import Path
from typing import Any, cast

import faust
from faust.types import TP, EventT

from schema.topics import (
    DEVICE_STATE_TABLE,
    READINGS_PARTITIONS,
    KafkaTopics,
    changelog_topic,
    scoped_app_id,
)
from stream.settings import StreamSettings
from stream.worker.forecasting import ForecastService
from stream.worker.lifetime import (
    HealthService,
    Lifetime,
    Progress,
    consumer_lag,
    consumer_state,
    refetch_stranded,
    track_topics,
)
from stream.worker.processor import (
    Event,
    EventProcessor,
    OutMessage,
    ProcessorSettings,
    position_partition,
)
from stream.worker.runtime import (
    DrainingConsumer,
    PassThroughSchema,
    QuietMonitor,
    Records,
    tune,
)
from stream.worker.sink import ResultSink
from stream.worker.statestore import entry_partition


class FaustPublisher:
    """Sends result messages through the app's producer and waits for Kafka's acks."""

    def __init__(self, app: faust.App) -> None:
        self._app = app

    async def publish(self, messages: Sequence[OutMessage]) -> None:
        futures = [
            await self._app.producer.send(
                m.topic, m.key, m.value, partition=None, timestamp=None, headers=None
            )
            for m in messages
        ]
        if futures:
            await asyncio.gather(*futures)


class DeviceStateTable(faust.Table):  # type: ignore[type-arg]  # Faust's Table is generic
    """Faust's table, keeping the delivery future of every changelog message it sends.

    Faust hands changelog writes to its producer buffer and drops their futures, and
    ``Producer.flush()`` may return with writes still in that buffer (its wait gives up after
    0.1 s without a send). Acknowledging events then lets Kafka's committed offsets pass state
    that never reached the changelog: after a kill -9 the next worker resumes past readings
    its restored state lacks (an hourly row short of a reading). :meth:`changelog_written`
    waits for each write instead.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unacknowledged: list[asyncio.Future[Any]] = []

    def on_key_set(self, key: Any, value: Any) -> None:
        # A partition's position key goes to that partition, after the partition's states of
        # the batch (see EventProcessor._state_position); a device's state goes where its
        # events are (the producer's partitioner on the same key).
        partition = position_partition(key.decode()) if key[:1] == b"#" else None
        if partition is None:  # a device's entries (hot and cold) go with its events
            partition = entry_partition(key, READINGS_PARTITIONS)
        self._unacknowledged.append(self.send_changelog(partition, key, value))
        self._sensor_on_set(self, key, value)

    def on_key_del(self, key: Any) -> None:
        partition = entry_partition(key, READINGS_PARTITIONS)
        fut = self.send_changelog(partition, key, None, value_serializer="raw")
        self._unacknowledged.append(fut)
        self._sensor_on_del(self, key)

    async def changelog_written(self) -> None:
        """Return once Kafka acknowledged every changelog write made so far."""
        pending, self._unacknowledged = self._unacknowledged, []
        if pending:
            await asyncio.gather(*pending)


class DeviceStates(MutableMapping[str, bytes]):
    """The Faust table under str keys (its keys are the raw device-id bytes of the topics)."""

    def __init__(self, table: MutableMapping[bytes, bytes]) -> None:
        self._table = table

    def __getitem__(self, key: str) -> bytes:
        return self._table[key.encode()]

    def __setitem__(self, key: str, value: bytes) -> None:
        self._table[key.encode()] = value

    def __delitem__(self, key: str) -> None:
        del self._table[key.encode()]

    def __iter__(self) -> Iterator[str]:
        return (key.decode() for key in self._table)

    def __len__(self) -> int:
        return len(self._table)


def batches(
    events: Sequence[EventT[Records]], readings_topic: str, size: int
) -> Iterator[list[Event]]:
    """The records of a take in batches of at most ``size``: the device messages (births,
    statuses, labels) before the readings, so a device born in the same take is known (its
    kind, its zone) before its readings close hours; each partition's records in order."""
    records: list[Event] = [
        r for e in events if e.message.topic != readings_topic for r in cast("Records", e.value)
    ]
    records += (
        r for e in events if e.message.topic == readings_topic for r in cast("Records", e.value)
    )
    for start in range(0, len(records), size):
        yield records[start : start + size]


def sink_and_forecasts(
    app: faust.App, settings: StreamSettings, app_id: str
) -> tuple[ResultSink, ForecastService]:
    """The database sink and the served model, started and stopped with the app (the processor
    waits until they are ready)."""
    dsn = settings.database.dsn()
    sink = ResultSink(dsn, group_id=app_id)
    forecasts = ForecastService(Path(settings.artifacts_dir), dsn)
    app.add_dependency(sink)
    app.add_dependency(forecasts)
    return sink, forecasts


async def settle(
    app: faust.App,
    stream: faust.Stream,  # type: ignore[type-arg]  # Faust's Stream is generic
    events: Sequence[EventT[Records]],
    rewind: dict[tuple[str, int], int],
) -> None:
    """After a take: seek the partitions the processor asked to rewind, acknowledge the other
    events, and stop tracking the rewound ones without acknowledging them (they come again)."""
    for (topic, partition), offset in rewind.items():
        await app.consumer.seek(TP(topic, partition), offset)
    consumer = cast("DrainingConsumer", app.consumer)
    for event in events:
        if (event.message.topic, event.message.partition) not in rewind:
            await stream.ack(event)
        else:
            consumer.release(event.message)


def create_app(settings: StreamSettings, lifetime: Lifetime | None = None) -> faust.App:
    """The worker's app; ``lifetime`` gets its failures (a fresh one, exit status unused, if
    ``None``). The app id is scoped by the namespace (``schema.topics.scoped_app_id``): its
    consumer group and changelog belong to that pipeline alone."""
    lifetime = lifetime or Lifetime(settings.stop_timeout_s)
    app_id = scoped_app_id(settings.app_id, settings.topic_namespace)
    app = faust.App(
        app_id,
        broker=f"kafka://{settings.kafka.bootstrap}",
        store="memory://",
        datadir=settings.data_dir,
        autodiscover=False,
        web_enabled=False,
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=READINGS_PARTITIONS,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
        Monitor=QuietMonitor,
    )
    topics = KafkaTopics(settings.topic_namespace)
    source_topics = (
        topics.readings,
        topics.device_birth,
        topics.device_status,
        topics.anomaly_labels,
    )
    # Each of the agent's events is one fetched partition batch of records (runtime.py).
    tune(app, batched_topics=source_topics)
    source = app.topic(*source_topics, schema=PassThroughSchema())
    table = app.tables.add(
        DeviceStateTable(
            app,
            name=DEVICE_STATE_TABLE,
            beacon=app.tables.beacon,
            partitions=READINGS_PARTITIONS,
            use_partitioner=True,
            key_type=bytes,
            value_type=bytes,
        )
    )
    assert isinstance(table, DeviceStateTable)
    sink, forecasts = sink_and_forecasts(app, settings, app_id)
    processor = EventProcessor(
        topics=topics,
        states=DeviceStates(table),
        sink=sink,
        forecasts=forecasts,
        publisher=FaustPublisher(app),
        settings=ProcessorSettings(
            lateness=settings.allowed_lateness,
            max_silent=settings.max_silent,
            checkpoint_every_s=settings.state_checkpoint_s,
        ),
    )

    progress = Progress(settings.stall_after_s)
    health = HealthService(
        settings,
        progress,
        lambda: consumer_lag(app, processor.next_offset, topics.readings),
        topics.readings,
        diagnose=lambda: consumer_state(app),
    )
    metrics = health.metrics
    app.add_dependency(health)
    written = [*topics.results, changelog_topic(app_id)]

    @app.on_partitions_revoked.connect
    async def forget_revoked(_sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # Another worker may change these devices now: never reuse their parsed states.
        revoked: set[TP] = args[0] if args else kwargs.get("revoked", set())
        processor.forget_partitions({tp.partition for tp in revoked if tp.topic in source_topics})

    @app.on_rebalance_complete.connect
    async def resume_progress(_sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        progress.resumed()

    @app.timer(settings.resync_after_s / 2)  # type: ignore[untyped-decorator]  # untyped in Faust
    async def fetch_stranded_again() -> None:
        await refetch_stranded(
            app, progress, processor.next_offset, topics.readings, settings.resync_after_s
        )

    @app.agent(source, name="device-events")
    async def device_events(stream: faust.StreamT[Records]) -> None:
        try:
            await consume(stream)
        except Exception as exc:
            # Not restarted in this process (see stream.worker.lifetime): exit non-zero.
            progress.failed(repr(exc))
            lifetime.fail(f"agent crashed: {exc!r}")
            raise

    async def consume(stream: faust.StreamT[Records]) -> None:
        assert isinstance(stream, faust.Stream)
        await track_topics(app, written)
        # Each event is one partition's share of a poll; a take holds up to one per source
        # partition (a few polls while catching up, what came within batch_within_s live).
        most = READINGS_PARTITIONS * len(source_topics)
        async for values in stream.noack_take(most, settings.batch_within_s):
            events = cast("Sequence[EventT[Records]]", values)  # typed as values upstream
            progress.busy = True
            rewind: dict[tuple[str, int], int] = {}
            for chunk in batches(events, topics.readings, settings.batch_size):
                started = time.perf_counter()
                for tp, offset in (await processor.process(chunk)).items():
                    rewind.setdefault(tp, offset)  # a later chunk asks for the same offset
                processed = time.perf_counter()
                # The table's changelog must be on Kafka before the events are acknowledged:
                # were the offsets committed first, a crash would leave the committed offsets
                # ahead of the state (readings the next worker never replays into it).
                await table.changelog_written()
                progress.advanced()
                done = time.perf_counter()
                metrics.batch_done(processor.report, done - started, changelog_s=done - processed)
            await settle(app, stream, events, rewind)
            progress.busy = False

    return app
