"""Request limits, as pure ASGI middlewares in front of the routes: a body-size limit (413), a
per-client token bucket (429 with ``Retry-After``) and a deadline (503 with ``Retry-After`` when
no answer has started in time: a database that does not answer never hangs a client), all
answering problem+json.

A client is its API key (or bearer token) when it sends one (each key its own bucket, so clients
behind one proxy address do not starve each other), else its address. The operations endpoints
(``/live``, ``/ready``, ``/metrics``) are never rate limited: probes and scrapers must always get
through.
Websockets pass straight through (the hub bounds its clients).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import problem

log = logging.getLogger(__name__)

UNLIMITED_PATHS = frozenset({"/live", "/ready", "/metrics"})
MAX_BUCKETS = 10_000
"""Clients remembered at most; the longest idle is forgotten first (a full bucket again)."""


class BodyLimit:
    """413 for a body longer than ``max_bytes``: at once from ``Content-Length``, or as soon as
    a streamed body passes the limit while the route reads it."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self._app, self._max = app, max_bytes

    def _detail(self) -> str:
        return f"the request body is larger than {self._max} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max:
            await problem(413, "Content too large", self._detail())(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self._max:
                    # FastAPI re-raises HTTPException from body parsing; errors.py maps it.
                    raise HTTPException(413, "Content too large")
            return message

        await self._app(scope, counted, send)


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """One bucket per client: ``burst`` tokens, refilled at ``rate`` a second; a request takes
    one. Pure: the clock is injected."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate, self.burst, self._clock = rate, burst, clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, client: str) -> float:
        """0 if ``client`` may go on; else the seconds until it may."""
        now = self._clock()
        bucket = self._buckets.pop(client, None) or _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        self._buckets[client] = bucket  # most recently used last
        while len(self._buckets) > MAX_BUCKETS:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate


def client_of(scope: Scope) -> str:
    """The digest of the request's key or bearer token (never the credential itself), else
    its address."""
    headers = dict(scope["headers"])
    credential = headers.get(b"x-api-key") or headers.get(b"authorization")
    if credential:
        return "key:" + hashlib.sha256(credential).hexdigest()[:32]
    client = scope.get("client")
    return f"addr:{client[0] if client else 'unknown'}"


class RateLimit:
    """429 problem+json with ``Retry-After`` (whole seconds, at least 1) once a client's bucket
    is empty."""

    def __init__(self, app: ASGIApp, *, buckets: TokenBuckets) -> None:
        self._app, self._buckets = app, buckets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNLIMITED_PATHS:
            await self._app(scope, receive, send)
            return
        wait_s = self._buckets.take(client_of(scope))
        if wait_s == 0:
            await self._app(scope, receive, send)
            return
        retry_after = max(1, math.ceil(wait_s))
        response = problem(
            429,
            "Too many requests",
            f"more than {self._buckets.rate:g} requests a second (bursts of "
            f"{self._buckets.burst}); retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
        await response(scope, receive, send)


class Deadline:
    """503 problem+json with ``Retry-After`` when the route has not started its answer within
    ``seconds``. The route runs as a task of its own that is cancelled and left to finish its
    clean-up in the background (a connection to a frozen database may take long to give back);
    whatever it sends afterwards is dropped."""

    def __init__(self, app: ASGIApp, *, seconds: float, retry_after_s: int) -> None:
        self._app, self._seconds, self._retry_after = app, seconds, retry_after_s
        self._abandoned: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = abandoned = False

        async def guarded(message: Message) -> None:
            nonlocal started
            if abandoned:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        # One future woken by whichever comes first, the route's end or the deadline: what
        # asyncio.wait() does, without its sets and per-call bookkeeping (this runs for every
        # request; bench/api_load.py).
        async def serve() -> None:
            await self._app(scope, receive, guarded)

        loop = asyncio.get_running_loop()
        task = loop.create_task(serve(), name="request")
        woken = loop.create_future()

        def wake(_: object = None) -> None:
            if not woken.done():
                woken.set_result(None)

        task.add_done_callback(wake)
        timer = loop.call_later(self._seconds, wake)
        try:
            await woken
        finally:
            timer.cancel()
            task.remove_done_callback(wake)
        if task.done() or started:
            await task  # finished, or answering (streaming): its own outcome
            return
        abandoned = True
        task.cancel()
        self._abandoned.add(task)
        task.add_done_callback(self._forget)
        log.warning("%s %s: no answer within %.1f s", scope["method"], scope["path"], self._seconds)
        response = problem(
            503,
            "Service unavailable",
            f"no answer within {self._seconds:g} s (a dependency does not answer); retry later",
            headers={"Retry-After": str(self._retry_after)},
        )
        await response(scope, receive, send)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("an abandoned request failed: %r", task.exception())
