"""A tiny HTTP server for the bridge: Prometheus ``/metrics`` and a ``/healthz`` probe.

``GET /metrics``  the registry in Prometheus' text format.
``GET /healthz``  ``200`` with a JSON body while the bridge is subscribed to MQTT, connected to
                  Kafka and Kafka acknowledges what it is sent; ``503`` with the same body
                  (saying what is wrong) otherwise.

It runs on the bridge's event loop (one short response per connection), so it answers only
while the loop does; a loop that stops answering is as unhealthy as it gets.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

_REQUEST_TIMEOUT_S = 5.0
_MAX_REQUEST_BYTES = 8192


@dataclass(frozen=True, slots=True)
class Health:
    healthy: bool
    detail: dict[str, Any]


def assess(
    *, subscribed: bool, producing: bool, oldest_unacked_s: float | None, stall_after_s: float
) -> Health:
    """Whether the bridge is healthy: subscribed, producing and Kafka keeping up."""
    stalled = oldest_unacked_s is not None and oldest_unacked_s > stall_after_s
    return from_checks(
        (
            ("not subscribed to MQTT", not subscribed),
            ("no Kafka producer", not producing),
            (f"Kafka has not acknowledged a message for {oldest_unacked_s or 0:.1f} s", stalled),
        ),
        subscribed=subscribed,
        producing=producing,
        oldest_unacked_s=None if oldest_unacked_s is None else round(oldest_unacked_s, 3),
    )


def from_checks(checks: Iterable[tuple[str, bool]], **detail: Any) -> Health:
    """Healthy unless a check is present; ``/healthz``'s body lists the problems and
    ``detail``."""
    problems = [problem for problem, present in checks if present]
    return Health(
        healthy=not problems,
        detail={"status": "ok" if not problems else "unhealthy", "problems": problems, **detail},
    )


class HealthServer:
    """Serves ``/metrics`` and ``/healthz`` on ``host:port``; owned by an ``async with``."""

    def __init__(
        self, host: str, port: int, registry: CollectorRegistry, probe: Callable[[], Health]
    ) -> None:
        self._host, self._port = host, port
        self._registry, self._probe = registry, probe
        self._server: asyncio.Server | None = None
        self._entered = False

    async def __aenter__(self) -> Self:
        if self._entered:
            raise RuntimeError("HealthServer is not reusable; create a new one")
        self._entered = True
        self._server = await asyncio.start_server(self._serve, self._host, self._port)
        log.info("metrics and health on http://%s:%d/", self._host, self._port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    def respond(self, method: str, path: str) -> tuple[int, str, bytes]:
        """Status, content type and body for one request (no I/O)."""
        path = path.partition("?")[0]
        if method not in {"GET", "HEAD"}:
            return 405, "text/plain; charset=utf-8", b"method not allowed\n"
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self._registry)
        if path == "/healthz":
            health = self._probe()
            body = json.dumps(health.detail).encode() + b"\n"
            return (200 if health.healthy else 503), "application/json", body
        return 404, "text/plain; charset=utf-8", b"not found: try /metrics or /healthz\n"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_REQUEST_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
            if len(head) > _MAX_REQUEST_BYTES:
                return
            method, path, *_ = [*head.decode("latin-1").split(" ", 2), "", ""]
            status, content_type, body = self.respond(method, path)
            writer.write(
                (
                    f"HTTP/1.1 {status} {_REASON.get(status, '')}\r\n"
                    f"Content-Type: {content_type}\r\n"
                    f"Content-Length: {len(body)}\r\n"
                    "Connection: close\r\n\r\n"
                ).encode()
                + (body if method != "HEAD" else b"")
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass  # a client that goes away or dawdles gets nothing
        finally:
            writer.close()


_REASON = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
