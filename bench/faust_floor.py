"""Faust's own cost per message: a bare agent that only takes and acknowledges, stock against
the worker's tuning (:mod:`stream.worker.runtime`: inline delivery, the quiet monitor, uvloop)
and against the worker's batch delivery (a Faust message per fetched partition batch, as the
worker reads its device topics), over the same preloaded readings, one after the other in the
same run.

The figure is the agent process's CPU per message once messages flow (start-up excluded),
which a loaded machine disturbs far less than a rate. Prints both and their ratio; writes
bench/results/faust_floor.json.

    python bench/faust_floor.py --readings 200000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import faust
import uvloop

from schema.topics import KafkaTopics
from stream.worker.runtime import PassThroughSchema, QuietMonitor, Records, tune
from wattstream import localcluster

from benchkit.preload import preload

RESULTS = Path(__file__).parent / "results"


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


MODES = ("stock", "tuned", "batched")


def agent_main(bootstrap: str, topic: str, expected: int, mode: str, result: Path) -> None:
    """Run a bare agent until it took ``expected`` readings; write its CPU µs per reading
    to ``result`` (Faust's worker owns standard output)."""
    tuned, batched = mode != "stock", mode == "batched"
    if tuned:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    options = {"Monitor": QuietMonitor} if tuned else {}
    app = faust.App(
        f"floor-{uuid.uuid4().hex[:8]}", broker=f"kafka://{bootstrap}", store="memory://",
        web_enabled=False, autodiscover=False, key_serializer="raw", value_serializer="raw",
        consumer_auto_offset_reset="earliest", **options,
    )  # fmt: skip
    if tuned:
        tune(app, batched_topics=[topic] if batched else [])
    if batched:
        source = app.topic(topic, schema=PassThroughSchema())
    else:
        source = app.topic(topic, key_type=bytes, value_type=bytes, value_serializer="raw")
    seen = {"n": 0, "cpu": 0.0, "t": 0.0}

    @app.agent(source)
    async def take(stream: faust.StreamT[bytes]) -> None:
        async for events in stream.noack_take(6 if batched else 5000, 0.5):
            if seen["n"] == 0:
                seen["cpu"], seen["t"] = _cpu_s(), time.perf_counter()
            for event in events:
                await stream.ack(event)  # type: ignore[arg-type]  # events, typed as values
                seen["n"] += len(cast("Records", event.value)) if batched else 1  # type: ignore[attr-defined]
            if seen["n"] >= expected:
                cpu, wall = _cpu_s() - seen["cpu"], time.perf_counter() - seen["t"]
                figures = {"cpu_us": 1e6 * cpu / seen["n"], "per_s": seen["n"] / wall}
                result.write_text(json.dumps(figures))  # noqa: ASYNC240  # exits next
                os._exit(0)

    faust.Worker(app, loop=loop, quiet=True, loglevel="warning").execute_from_commandline()


def measure(bootstrap: str, topic: str, expected: int, *, mode: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "figures.json"
        command = [sys.executable, __file__, "--agent", mode]
        command += ["--bootstrap", bootstrap, "--topic", topic, "--readings", str(expected)]
        command += ["--result", str(result)]
        subprocess.run(command, capture_output=True, timeout=900, check=True)
        figures: dict[str, float] = json.loads(result.read_text())
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description="Faust's cost per message, stock vs tuned")
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--readings", type=int, default=200_000)
    parser.add_argument("--agent", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.agent is not None:
        agent_main(args.bootstrap, args.topic, args.readings, args.agent, args.result)
        return
    endpoints = localcluster.up(localcluster.ClusterSettings())
    topics = KafkaTopics(f"floor{uuid.uuid4().hex[:6]}")
    asyncio.run(localcluster.ensure_topics(endpoints.kafka_bootstrap, topics.specs()))
    sent = asyncio.run(preload(endpoints.kafka_bootstrap, topics, args.devices, args.readings))
    stock, tuned, batched = (
        measure(endpoints.kafka_bootstrap, topics.readings, sent, mode=mode) for mode in MODES
    )
    result = {
        "benchmark": "faust_floor",
        "messages": sent,
        "stock_cpu_us_per_message": round(stock["cpu_us"], 1),
        "tuned_cpu_us_per_message": round(tuned["cpu_us"], 1),
        "stock_per_s": round(stock["per_s"]),
        "tuned_per_s": round(tuned["per_s"]),
        "batched_cpu_us_per_reading": round(batched["cpu_us"], 1),
        "batched_per_s": round(batched["per_s"]),
        "cpu_ratio_stock_to_tuned": round(stock["cpu_us"] / tuned["cpu_us"], 2),
        "cpu_ratio_stock_to_batched": round(stock["cpu_us"] / batched["cpu_us"], 2),
        "machine": {"python": platform.python_version(), "cores": os.cpu_count()},
        "at": datetime.now(UTC).isoformat(),
    }
    print(f"messages                  {sent:>12,}")
    print(f"stock Faust               {result['stock_cpu_us_per_message']:>12.1f} µs CPU/message")
    print(f"tuned (stream.worker)     {result['tuned_cpu_us_per_message']:>12.1f} µs CPU/message")
    print(f"batched (stream.worker)   {result['batched_cpu_us_per_reading']:>12.1f} µs CPU/reading")
    print(f"stock / tuned             {result['cpu_ratio_stock_to_tuned']:>12.2f}")
    print(f"stock / batched           {result['cpu_ratio_stock_to_batched']:>12.2f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "faust_floor.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
