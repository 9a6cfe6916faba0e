"""A readings topic preloaded with a simulated fleet (births first), for the catch-up benches."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from schema.device_messages import DeviceBirth, Location
from schema.topics import KafkaTopics
from simulator.devices import tick_time
from simulator.fleet import build_fleet

INTERVAL_S = 60
START = datetime(2026, 6, 1, tzinfo=UTC)


async def preload(bootstrap: str, topics: KafkaTopics, devices: int, readings: int) -> int:
    fleet = build_fleet(devices, seed=3)
    async with AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=50, max_batch_size=512 * 1024
    ) as producer:
        for model in fleet:
            birth = DeviceBirth(
                device_id=model.spec.device_id, kind=str(model.spec.kind), tz=model.spec.tz,
                location=Location(latitude=0, longitude=0), nominal_kw=model.spec.nominal_kw,
                firmware="bench", interval_s=INTERVAL_S, ts=START,
            )  # fmt: skip
            await producer.send(topics.device_birth, birth.model_dump_json().encode(),
                                key=model.spec.device_id.encode())  # fmt: skip
        sent, tick, pending = 0, 0, []
        while sent < readings:
            at = tick_time(START, tick, INTERVAL_S)
            for model in fleet:
                if sent == readings:
                    break
                value = model.reading(tick, at, INTERVAL_S).to_json()
                pending.append(
                    await producer.send(topics.readings, value, key=model.spec.device_id.encode())
                )
                sent += 1
            tick += 1
            if len(pending) > 20_000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    return sent
