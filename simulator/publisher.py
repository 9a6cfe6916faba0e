"""Publishes device readings to MQTT at QoS 1 (at-least-once from the device's side)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import aiomqtt

from schema.topics import MqttTopics
from schema.wire import Reading

log = logging.getLogger(__name__)


class ReadingPublisher:
    """Publishes readings over one MQTT connection owned by the caller's ``async with``."""

    def __init__(self, client: aiomqtt.Client, topics: MqttTopics) -> None:
        self._client = client
        self._topics = topics

    async def publish(self, readings: Sequence[Reading]) -> None:
        """Publish a batch; returns when the broker has acknowledged (PUBACK) every one."""
        async with asyncio.TaskGroup() as group:
            for reading in readings:
                group.create_task(
                    self._client.publish(
                        self._topics.readings(reading.device_id), reading.to_json(), qos=1
                    ),
                    name=f"publish-{reading.device_id}-{reading.seq}",
                )
        log.debug("published %d readings", len(readings))
