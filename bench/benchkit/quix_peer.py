"""The peer of the catch-up bench: a Quix Streams application summing each device's energy per
hour over the ``readings`` topic, run by ``bench/worker_catchup.py`` in its own process.

It runs on the interpreter of ``.venv-peer`` (``make bench-peer``; Quix Streams' pins exclude the
project's pydantic, see ``[dependency-groups]`` in pyproject.toml), so it imports nothing of the
project: it decodes the readings' JSON itself (``schema/wire.py`` documents the fields) and takes
each reading's event time from its ``ts`` (ISO-8601 with the zone's offset). What it does, as a
Quix user would write it: JSON values, event time from ``ts``, an hourly tumbling window per
message key (the device id) summing ``energy.value`` with the worker's allowed lateness as grace,
final windows to a topic of its own, RocksDB state with its changelog topic, at-least-once, its
own consumer group. It stops once every expected reading was processed; Quix commits the
checkpoint (state, changelog, offsets) as it stops.

Writes a JSON object to ``--result``: readings processed, windows closed, and the process's CPU
(every thread: librdkafka's too) from its first reading to the end of its final commit.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from quixstreams import Application
from quixstreams.models import TimestampType


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def event_time_ms(value: Any, _headers: Any, _timestamp: int, _kind: TimestampType) -> int:
    """A reading's ``ts`` in milliseconds since the epoch (its offset makes it one instant)."""
    return int(datetime.fromisoformat(value["ts"]).timestamp() * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True, help="the readings topic")
    parser.add_argument("--expected", type=int, required=True, help="readings to process")
    parser.add_argument("--group", required=True, help="a consumer group of its own")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--grace-s", type=float, default=300.0)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args()

    processed = 0
    windows = 0
    first_cpu: float | None = None
    first_at: float | None = None

    def on_processed(_topic: str, _partition: int, _offset: int) -> None:
        nonlocal processed, first_cpu, first_at
        if first_cpu is None:
            first_cpu, first_at = cpu_s(), time.time()
        processed += 1
        if processed == args.expected:
            app.stop()  # the run loop ends after this message and commits its checkpoint

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        processing_guarantee="at-least-once",
        state_dir=args.state_dir,
        use_changelog_topics=True,
        on_message_processed=on_processed,
        loglevel="WARNING",
    )
    readings = app.topic(
        args.topic,
        key_deserializer="str",
        value_deserializer="json",
        timestamp_extractor=event_time_ms,
    )
    hourly = app.topic(f"{args.topic}.quix-peer-hourly", value_serializer="json")

    def count_window(_window: Any) -> None:
        nonlocal windows
        windows += 1

    sdf = app.dataframe(readings)
    sdf = sdf.apply(lambda reading: reading["energy"]["value"])
    sdf = (
        sdf.tumbling_window(timedelta(hours=1), grace_ms=timedelta(seconds=args.grace_s))
        .sum()
        .final()
    )
    sdf = sdf.update(count_window).to_topic(hourly)
    app.run()
    done_cpu, done_at = cpu_s(), time.time()
    result = {
        "readings": processed,
        "windows_closed": windows,
        "first_reading_at": first_at,
        "done_at": done_at,
        "cpu_s_from_first_reading": None if first_cpu is None else done_cpu - first_cpu,
        "cpu_s_total": done_cpu,
    }
    args.result.write_text(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
