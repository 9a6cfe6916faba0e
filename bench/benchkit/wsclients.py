"""Live-feed websocket clients, run as their own process: ``python bench/benchkit/wsclients.py``.

The bench's own process produces the events; a thousand clients decoding ten thousand frames a
second in that process measured its own queueing more than the API's fan-out. Each of these
processes holds some of the clients and reads a frame no further than it must: event frames
are counted, ``coalesced`` is parsed only when a frame carries it, and only a sample of frames
per client is decoded for its ``seq`` (the delivery latency).

Reads a JSON job on stdin: ``{"url", "clients", "headers", "expected", "timeout_s",
"samples_per_client"}``; prints ``ready`` once every client has its hello, then (when every
client has ``expected`` events, delivered or coalesced, or at ``timeout_s`` after ready) a JSON
line: ``delivered``, ``coalesced``, ``received_at`` (``[seq, time.monotonic()]`` pairs: the
clock is system-wide, so the producer's send times compare) and ``cpu_s`` (this process's
user + system CPU while the events came).
"""

from __future__ import annotations

import asyncio
import json
import re
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

EVENT = '"type": "event"'
EVENT_COMPACT = '"type":"event"'
_SEQ = re.compile(r'"seq":\s*(\d+)')
_COALESCED = re.compile(r'"coalesced":\s*(\d+)')


@dataclass
class Tally:
    delivered: int = 0
    coalesced: int = 0
    received_at: list[tuple[int, float]] = field(default_factory=list)


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def listen(ws: ClientConnection, tally: Tally, expected: int, samples: int) -> None:
    async for message in ws:
        text = message if isinstance(message, str) else message.decode()
        if EVENT not in text and EVENT_COMPACT not in text:
            continue
        tally.delivered += 1
        if '"coalesced"' in text and (found := _COALESCED.search(text)):
            tally.coalesced += int(found.group(1))
        if len(tally.received_at) < samples and (seq := _SEQ.search(text)):
            tally.received_at.append((int(seq.group(1)), time.monotonic()))
        if tally.delivered + tally.coalesced >= expected:
            return


async def run(job: dict[str, Any]) -> dict[str, Any]:
    sockets: list[ClientConnection] = []
    clients = int(job["clients"])
    for start in range(0, clients, 100):  # connect in waves, not in one SYN storm
        batch = await asyncio.gather(
            *(
                connect(
                    job["url"],
                    max_queue=None,
                    open_timeout=60,
                    additional_headers=job.get("headers", {}),
                )
                for _ in range(start, min(clients, start + 100))
            )
        )
        sockets.extend(batch)
    for ws in sockets:
        await ws.recv()  # hello
    print("ready", flush=True)
    tallies = [Tally() for _ in sockets]
    before = cpu_s()
    listeners = [
        asyncio.create_task(listen(ws, t, int(job["expected"]), int(job["samples_per_client"])))
        for ws, t in zip(sockets, tallies, strict=True)
    ]
    await asyncio.wait(listeners, timeout=float(job["timeout_s"]))
    spent = cpu_s() - before
    for task in listeners:
        task.cancel()
    await asyncio.gather(*listeners, return_exceptions=True)
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return {
        "delivered": sum(t.delivered for t in tallies),
        "coalesced": sum(t.coalesced for t in tallies),
        "received_at": [pair for t in tallies for pair in t.received_at],
        "cpu_s": spent,
    }


def main() -> None:
    job = json.loads(sys.stdin.readline())
    try:
        import uvloop  # noqa: PLC0415  # optional: the stock loop works too, a little heavier
    except ImportError:
        result = asyncio.run(run(job))
    else:
        result = uvloop.run(run(job))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
