"""A light HTTP/1.1 load client, run as its own process: ``python bench/benchkit/loadgen.py``.

A Python load client in the same process (or on the same event loop) as other work measures its
own queueing as much as the server's: httpx costs about a millisecond of CPU per request, which
on a 2-core machine is as much as the server's answer. This one writes each request as
preformatted bytes on ``concurrency`` keep-alive connections (closed loop: a connection sends
its next request once its answer is complete) and parses only the status line and
``Content-Length`` (a chunked answer is counted as an error), on uvloop where it is installed.

Reads a JSON job on stdin: ``{"host", "port", "concurrency", "paths": [...], "headers": {...}}``
(``paths`` already URL-encoded, each requested once, in order); writes a JSON result on stdout:
``latencies_ms`` (in completion order), ``errors`` (non-200 answers), ``wall_s`` and
``cpu_s`` (this process's user + system CPU over the run, from ``getrusage``).

Standard library only (plus uvloop when present): ``bench/api_load.py`` runs it as a child.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from typing import Any, cast

HEAD_END = b"\r\n\r\n"


class _Connection(asyncio.Protocol):
    """One keep-alive connection; :meth:`request` sends one request and waits for its answer."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._waiter: asyncio.Future[int] | None = None
        self._needed = -1  # bytes of the whole answer once its head is parsed
        self._status = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports quack like asyncio.Transport without deriving from it.
        self.transport = cast("asyncio.Transport", transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc or ConnectionError("the server closed the connection"))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._needed < 0:
            end = self._buffer.find(HEAD_END)
            if end < 0:
                return
            head = bytes(self._buffer[:end]).split(b"\r\n")
            self._status = int(head[0].split(b" ", 2)[1])
            length = -1
            for line in head[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
                    break
            if length < 0:  # chunked or until-close: not what this client reads
                self._fail(ValueError("an answer without Content-Length"))
                return
            self._needed = end + len(HEAD_END) + length
        if len(self._buffer) >= self._needed:
            del self._buffer[: self._needed]
            self._needed = -1
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(self._status)

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    async def request(self, raw: bytes) -> int:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self._waiter


async def run(job: dict[str, Any]) -> dict[str, Any]:
    host, port = job["host"], int(job["port"])
    extra = "".join(f"{k}: {v}\r\n" for k, v in job.get("headers", {}).items())
    raws = [
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}\r\n".encode()
        for path in job["paths"]
    ]
    loop = asyncio.get_running_loop()
    connections = []
    for _ in range(int(job["concurrency"])):
        _, protocol = await loop.create_connection(_Connection, host, port)
        connections.append(protocol)
    latencies: list[float] = []
    errors = 0
    next_index = 0

    async def drive(connection: _Connection) -> None:
        nonlocal errors, next_index
        while next_index < len(raws):
            raw = raws[next_index]
            next_index += 1
            started = time.perf_counter()
            status = await connection.request(raw)
            latencies.append((time.perf_counter() - started) * 1000)
            errors += status != 200

    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    await asyncio.gather(*(drive(c) for c in connections))
    wall_s = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    for connection in connections:
        if connection.transport is not None:
            connection.transport.close()
    cpu_s = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return {"latencies_ms": latencies, "errors": errors, "wall_s": wall_s, "cpu_s": cpu_s}


def main() -> None:
    job = json.load(sys.stdin)
    try:
        import uvloop  # noqa: PLC0415  # optional: the stock loop works too, a little heavier
    except ImportError:
        result = asyncio.run(run(job))
    else:
        result = uvloop.run(run(job))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
