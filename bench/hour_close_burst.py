"""Hour-close burst: N devices whose local hour closes together, through the worker's processor.

Every device gets 25 closed hours of history and one reading in the next hour; a final batch of
readings moves the partition watermark past the hour's end. Measured: seconds from that batch
entering :class:`EventProcessor` to every hourly, forecast and health row committed in a fresh
PostgreSQL database (one batched model call for all devices), against the same forecasts made
one device at a time (``Forecaster.forecast`` per window) on a sample, extrapolated to N.
Prints both and their ratio; writes bench/results/hour_close_burst.json.

    python bench/hour_close_burst.py --devices 10000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg

from schema.topics import KafkaTopics
from schema.wire import Energy, Power, Reading
from stream.core.hourclose import DeviceState, ForecastRequest
from stream.core.windowing import DeviceWindows
from stream.forecast import Forecaster, ForecastInput, load_latest
from stream.worker.processor import (
    EventProcessor,
    ForecastBatch,
    OutMessage,
    ProcessorSettings,
    SourceEvent,
)
from stream.worker.sink import ResultSink
from wattstream import localcluster, migrate

RESULTS = Path(__file__).parent / "results"
ARTIFACTS = Path(__file__).parents[1] / "artifacts"
TOPICS = KafkaTopics("bench")
START = datetime(2026, 6, 1, tzinfo=UTC)
ZONES = ("UTC", "Europe/Berlin", "America/New_York")  # whole-hour offsets: one burst


class ModelService:
    def __init__(self, forecaster: Forecaster) -> None:
        self.model = forecaster
        self.history_hours = forecaster.spec.history_hours

    def supports(self, kind: str) -> bool:
        return bool(self.model.supports(kind))

    async def forecast(self, requests: Sequence[ForecastRequest]) -> ForecastBatch:
        inputs = [to_input(r) for r in requests]
        out = await asyncio.to_thread(self.model.forecast, inputs)
        return ForecastBatch([float(v) for v in out], self.model.model_id)


class Discard:
    async def publish(self, messages: Sequence[OutMessage]) -> None:
        return None


def to_input(r: ForecastRequest) -> ForecastInput:
    return ForecastInput(
        device_id=r.device_id, kind=r.kind, tz=r.tz, next_hour_start=r.target.start,
        history_kwh=r.history_kwh,
    )  # fmt: skip


def reading(device: str, tz: str, seq: int, at: datetime) -> bytes:
    return Reading(
        device_id=device, seq=seq, ts=at.astimezone(ZoneInfo(tz)), tz=tz, interval_s=3600,
        energy=Energy(value=0.5 + 0.1 * (at.hour % 12)), power=Power(value=1.0),
    ).to_json()  # fmt: skip


def prepared_states(devices: int, kind: str) -> dict[str, bytes]:
    """Each device with 25 closed hours and one open (built through the real windowing code)."""
    states: dict[str, bytes] = {}
    for i in range(devices):
        device, tz = f"b{i:05d}", ZONES[i % len(ZONES)]
        state = DeviceState(windows=DeviceWindows(device_id=device, tz=tz, partition=0), kind=kind)
        for h in range(26):
            at = START + timedelta(hours=h)
            r = Reading.model_validate_json(reading(device, tz, h, at))
            state.windows.apply(r, offset=h)
            state.windows.close_due(at, timedelta(hours=3))
        states[device] = state.model_dump_json().encode()
    return states


async def run(devices: int, sample: int) -> dict[str, object]:
    settings = localcluster.ClusterSettings()
    endpoints = await asyncio.to_thread(localcluster.up, settings)
    name = f"bench_burst_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(endpoints.admin_database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = endpoints.database_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        await asyncio.to_thread(migrate.upgrade, url)
        forecaster = load_latest(ARTIFACTS)
        kind = forecaster.spec.device_kinds[0]
        states = prepared_states(devices, kind)
        sink = ResultSink(url, group_id="bench")
        await sink.start()
        processor = EventProcessor(
            topics=TOPICS, states=states, sink=sink, forecasts=ModelService(forecaster),
            publisher=Discard(),
            settings=ProcessorSettings(lateness=timedelta(0), max_silent=timedelta(hours=3)),
        )  # fmt: skip
        # Warm up: a first batch moves the watermark into the open hour (nothing closes yet),
        # and the model runs once.
        closing_hour = START + timedelta(hours=25)
        warm = [
            SourceEvent(TOPICS.readings, 0, 1000 + i, f"b{i:05d}".encode(),
                        reading(f"b{i:05d}", ZONES[i % len(ZONES)], 26,
                                closing_hour + timedelta(minutes=30)))
            for i in range(devices)
        ]  # fmt: skip
        await processor.process(warm)
        forecaster.forecast([to_input_probe(forecaster)])
        burst = [
            SourceEvent(TOPICS.readings, 0, 1000 + devices, b"tick",
                        reading("tick", "UTC", 0, closing_hour + timedelta(hours=1)))
        ]  # fmt: skip
        started = time.perf_counter()
        await processor.process(burst)
        burst_s = time.perf_counter() - started
        phases = {k: round(v, 3) for k, v in processor.report.phases.items()}
        conn = await asyncpg.connect(url)
        closed = await conn.fetchval(
            "SELECT count(*) FROM hourly WHERE hour_start = $1", closing_hour
        )
        forecasts = await conn.fetchval(
            "SELECT count(*) FROM forecasts WHERE based_on_hour = $1", closing_hour
        )
        health = await conn.fetchval(
            "SELECT count(*) FROM health WHERE hour_start = $1", closing_hour
        )
        await conn.close()
        await sink.stop()
        # Baseline: one model call per device, on a sample, extrapolated.
        inputs = [probe_input(forecaster, i) for i in range(sample)]
        started = time.perf_counter()
        for one in inputs:
            forecaster.forecast([one])
        per_device_s = (time.perf_counter() - started) / sample * devices
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return {
        "benchmark": "hour_close_burst",
        "devices": devices,
        "rows_committed": {"hourly": closed, "forecasts": forecasts, "health": health},
        "burst_seconds": round(burst_s, 3),
        "burst_phases_s": phases,
        "per_device_model_calls_seconds_extrapolated": round(per_device_s, 3),
        "per_device_sample": sample,
        "speedup": round(per_device_s / burst_s, 2),
        "model_id": forecaster.model_id,
        "machine": {"python": platform.python_version(), "cores": 2},
        "at": datetime.now(UTC).isoformat(),
    }


def probe_input(forecaster: Forecaster, i: int) -> ForecastInput:
    return ForecastInput(
        device_id=f"p{i}", kind=forecaster.spec.device_kinds[0], tz="UTC",
        next_hour_start=START + timedelta(hours=i % 48),
        history_kwh=[0.5 + 0.01 * k for k in range(24)],
    )  # fmt: skip


def to_input_probe(forecaster: Forecaster) -> ForecastInput:
    return probe_input(forecaster, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=200)
    args = parser.parse_args()
    result = asyncio.run(run(args.devices, args.sample))
    print(f"devices                         {result['devices']:>10,}")
    print(f"rows committed                  {result['rows_committed']}")
    print(f"hour-close burst (batched)      {result['burst_seconds']:>10.2f} s")
    print(f"  by phase                      {result['burst_phases_s']}")
    per_device = result["per_device_model_calls_seconds_extrapolated"]
    print(f"per-device model calls (extrap.){per_device:>10.2f} s")
    print(f"speed-up                        {result['speedup']:>10.1f}x")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "hour_close_burst.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
