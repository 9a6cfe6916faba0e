"""Faust application factory: ``create_app(settings)`` builds the app and registers agents.

Nothing happens at import: the app, its topics and its services exist only once
:func:`create_app` is called from ``main()`` with the settings.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import cast

import faust
from faust.types import EventT

from schema.topics import READINGS_PARTITIONS, KafkaTopics
from schema.wire import InvalidPayload, decode_reading
from stream.dead_letter import dead_letter_record
from stream.settings import StreamSettings
from stream.worker.sink import ReadingSink

log = logging.getLogger(__name__)


def create_app(settings: StreamSettings) -> faust.App:
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        datadir=settings.data_dir,
        autodiscover=False,
        web_enabled=False,
        topic_partitions=READINGS_PARTITIONS,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
    )
    topics = KafkaTopics(settings.topic_namespace)
    readings = app.topic(topics.readings, key_type=bytes, value_type=bytes, value_serializer="raw")
    dead_letters = app.topic(
        topics.readings_dlq, key_type=bytes, value_type=bytes, value_serializer="raw"
    )
    # Started and stopped with the app; the agent waits in write() until its pool is ready.
    sink = ReadingSink(settings.database_url.get_secret_value())
    app.add_dependency(sink)

    @app.agent(readings, name="store-readings")
    async def store_readings(stream: faust.StreamT[bytes]) -> None:
        assert isinstance(stream, faust.Stream)
        # noack_take: events are acknowledged (offsets committed) only after the batch is in
        # the database; a crash before that replays the batch, which the sink absorbs.
        async for values in stream.noack_take(settings.batch_size, settings.batch_within_s):
            events = cast("Sequence[EventT[bytes]]", values)  # typed as values upstream
            batch = []
            for event in events:
                try:
                    batch.append(decode_reading(event.value))
                except InvalidPayload as exc:
                    # The bridge validated it, so something else wrote this record.
                    log.warning("dead-lettering offset %s: %s", event.message.offset, exc)
                    record = dead_letter_record(
                        topic=f"kafka:{event.message.topic}",
                        payload=event.value,
                        reason=exc.reason,
                        detail=exc.detail,
                        at=datetime.now(UTC),
                    )
                    await dead_letters.send(key=event.key, value=record)
            if batch:
                await sink.write(batch)
            for event in events:
                await stream.ack(event)

    return app
