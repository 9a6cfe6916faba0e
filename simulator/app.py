"""The simulator service: a seeded fleet publishing one reading per device per tick.

The simulated clock runs ``speed`` times faster than the wall clock from ``start``. Tick ``k``
of every device carries ``seq = k``, so a restarted simulator with the same seed and start
republishes byte-identical readings (duplicates the pipeline must absorb, never gaps).
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
from datetime import UTC, datetime

import aiomqtt

from schema.topics import MqttTopics
from simulator.devices import tick_time
from simulator.fleet import build_fleet
from simulator.publisher import ReadingPublisher
from simulator.settings import SimulatorSettings

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0


def floor_to_interval(at: datetime, interval_s: int) -> datetime:
    epoch = int(at.timestamp())
    return datetime.fromtimestamp(epoch - epoch % interval_s, tz=UTC)


async def run(settings: SimulatorSettings) -> None:
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    fleet = build_fleet(settings.devices, settings.seed)
    start = settings.start or floor_to_interval(
        datetime.now(UTC) - settings.backfill, settings.interval_s
    )
    topics = MqttTopics(settings.topic_namespace)
    loop = asyncio.get_running_loop()
    wall_start = loop.time()
    tick = 0
    backoff = 0.5
    log.info(
        "simulating %d devices from %s, every %ds, %s",
        len(fleet),
        start.isoformat(),
        settings.interval_s,
        f"speed x{settings.speed:g}" if settings.speed else "live",
    )
    while settings.max_ticks is None or tick < settings.max_ticks:
        try:
            async with aiomqtt.Client(
                settings.mqtt_host,
                port=settings.mqtt_port,
                identifier=f"wattstream-sim-{settings.topic_namespace or 'fleet'}-{settings.seed}",
            ) as client:
                backoff = 0.5
                publisher = ReadingPublisher(client, topics)
                while settings.max_ticks is None or tick < settings.max_ticks:
                    at = tick_time(start, tick, settings.interval_s)
                    if settings.speed is None:  # live: never before the reading's own time
                        delay = (at - datetime.now(UTC)).total_seconds()
                    else:
                        delay = (
                            wall_start + tick * settings.interval_s / settings.speed - loop.time()
                        )
                    await asyncio.sleep(max(0.0, delay))
                    await publisher.publish(
                        [model.reading(tick, at, settings.interval_s) for model in fleet]
                    )
                    tick += 1
        except aiomqtt.MqttError as exc:
            delay = backoff * random.uniform(0.5, 1.5)
            log.warning("MQTT connection lost (%s); retrying tick %d in %.1fs", exc, tick, delay)
            await asyncio.sleep(delay)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
    log.info("published %d ticks for %d devices; done", tick, len(fleet))
