"""Prometheus metrics of the bridge, in a registry of its own (no import-time registration).

=========================================  =====================================================
``bridge_received_total{kind}``            MQTT messages taken (reading, status, birth, unknown)
``bridge_forwarded_total{kind}``           valid messages Kafka acknowledged (then acked to MQTT)
``bridge_dead_lettered_total{reason}``     dead letters Kafka acknowledged, per reason code
``bridge_in_flight``                       taken from MQTT, not yet acknowledged by Kafka
``bridge_kafka_ack_seconds``               histogram: produce call to Kafka's acknowledgement
``bridge_reconnects_total{side}``          pipeline restarts after a failure (mqtt, kafka)
``bridge_ready``                           1 while subscribed and producing (``wattstream run``
                                           waits for ``bridge_ready 1.0``)
=========================================  =====================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass(frozen=True)
class BridgeMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    received: Counter = field(init=False)
    forwarded: Counter = field(init=False)
    dead_lettered: Counter = field(init=False)
    in_flight: Gauge = field(init=False)
    kafka_latency: Histogram = field(init=False)
    reconnects: Counter = field(init=False)
    ready: Gauge = field(init=False)

    def __post_init__(self) -> None:
        def set_(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        reg = self.registry
        set_(
            "received",
            Counter("bridge_received", "MQTT messages taken, by kind", ["kind"], registry=reg),
        )
        set_(
            "forwarded",
            Counter(
                "bridge_forwarded", "Valid messages acked by Kafka, by kind", ["kind"], registry=reg
            ),
        )
        set_(
            "dead_lettered",
            Counter(
                "bridge_dead_lettered",
                "Dead letters acked by Kafka, by reason",
                ["reason"],
                registry=reg,
            ),
        )
        set_("in_flight", Gauge("bridge_in_flight", "Taken from MQTT, not yet acked", registry=reg))
        set_("ready", Gauge("bridge_ready", "1 while subscribed and producing", registry=reg))
        set_(
            "kafka_latency",
            Histogram(
                "bridge_kafka_ack_seconds",
                "Produce-to-ack latency",
                buckets=_LATENCY_BUCKETS,
                registry=reg,
            ),
        )
        set_(
            "reconnects",
            Counter(
                "bridge_reconnects", "Restarts after a failure, by side", ["side"], registry=reg
            ),
        )
