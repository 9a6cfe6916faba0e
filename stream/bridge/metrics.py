"""Prometheus metrics of the bridge, in a registry of its own (no import-time registration)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True)
class BridgeMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    received: Counter = field(init=False)
    forwarded: Counter = field(init=False)
    dead_lettered: Counter = field(init=False)
    in_flight: Gauge = field(init=False)
    kafka_latency: Histogram = field(init=False)
    ready: Gauge = field(init=False)

    def __post_init__(self) -> None:
        def set_(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        reg = self.registry
        set_("received", Counter("bridge_received", "MQTT messages received", registry=reg))
        set_("forwarded", Counter("bridge_forwarded", "Readings acked by Kafka", registry=reg))
        set_(
            "dead_lettered",
            Counter("bridge_dead_lettered", "Messages dead-lettered", ["reason"], registry=reg),
        )
        set_("in_flight", Gauge("bridge_in_flight", "Taken from MQTT, not yet acked", registry=reg))
        set_("ready", Gauge("bridge_ready", "1 while subscribed and producing", registry=reg))
        set_(
            "kafka_latency",
            Histogram("bridge_kafka_ack_seconds", "Produce-to-ack latency", registry=reg),
        )
