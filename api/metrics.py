"""Prometheus metrics of one app, in its own registry (several apps may live in one process).

HTTP requests are counted and timed by route template (``/api/v1/devices/{device_id}``, not
the raw path, so the label set stays small). The live feed, the hub and the command publisher
keep plain counters; a collector reads them at scrape time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.commands import CommandPublisher
from api.live.feed import KafkaFeed
from api.live.hub import Hub


@dataclass
class SentCounter:
    """Frames the websocket handlers delivered (incremented by them)."""

    events: int = 0
    heartbeats: int = 0


class _LiveCollector(Collector):
    def __init__(
        self, hub: Hub, feed: KafkaFeed, publisher: CommandPublisher, sent: SentCounter
    ) -> None:
        self._hub, self._feed, self._publisher, self._sent = hub, feed, publisher, sent

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        stats = self._hub.stats
        yield GaugeMetricFamily(
            "wattstream_api_live_clients", "Connected live websocket clients", self._hub.clients
        )
        counters: list[tuple[str, str, float]] = [
            ("live_events_published", "Events taken from Kafka into the hub", stats.published),
            ("live_events_queued", "Events queued for clients", stats.queued),
            (
                "live_events_coalesced",
                "Events replaced by a newer one of the same key",
                stats.coalesced,
            ),
            ("live_events_replayed", "Events replayed to resuming clients", stats.replayed),
            ("live_events_sent", "Event frames sent to clients", self._sent.events),
            ("live_heartbeats_sent", "Heartbeat frames sent to clients", self._sent.heartbeats),
            ("live_clients_kicked", "Clients disconnected for falling behind", stats.kicked),
            ("live_kafka_consumed", "Kafka messages read by the live feed", self._feed.consumed),
            (
                "live_kafka_invalid",
                "Kafka messages that broke their contract",
                self._feed.undecodable,
            ),
            (
                "commands_published",
                "Device commands acknowledged by MQTT",
                self._publisher.published,
            ),
        ]
        for name, documentation, value in counters:
            yield CounterMetricFamily(f"wattstream_api_{name}", documentation, value)
        yield GaugeMetricFamily(
            "wattstream_api_live_kafka_up",
            "1 while the live feed's Kafka answers (what its clients were last told)",
            1.0 if self._hub.upstream.kafka == "up" else 0.0,
        )
        yield GaugeMetricFamily(
            "wattstream_api_mqtt_connected",
            "1 while the command publisher is connected to MQTT",
            1.0 if self._publisher.connected else 0.0,
        )


class Metrics:
    def __init__(self, hub: Hub, feed: KafkaFeed, publisher: CommandPublisher) -> None:
        self.registry = CollectorRegistry()
        self.sent = SentCounter()
        self.requests = Counter(
            "wattstream_api_http_requests",
            "HTTP requests by route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "wattstream_api_http_request_duration_seconds",
            "HTTP request latency by route template",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.registry.register(_LiveCollector(hub, feed, publisher, self.sent))

    def middleware(self, app: ASGIApp) -> ASGIApp:
        return _RequestMetrics(app, self)


class _RequestMetrics:
    """Pure ASGI middleware (no body buffering; websockets pass straight through)."""

    def __init__(
        self, app: ASGIApp, metrics: Metrics, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self._app, self._metrics, self._clock = app, metrics, clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = self._clock()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self._app(scope, receive, record_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = str(scope.get("method", ""))
            self._metrics.requests.labels(method, template, str(status)).inc()
            self._metrics.latency.labels(method, template).observe(self._clock() - started)
