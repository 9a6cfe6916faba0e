"""Settings of the two stream services: the bridge (``WATTSTREAM_BRIDGE_``) and the worker
(``WATTSTREAM_STREAM_``). The MQTT, Kafka and database blocks are ``schema.connections``'s,
read from ``<PREFIX>MQTT_*``, ``<PREFIX>KAFKA_*`` and ``<PREFIX>DATABASE_*``."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schema.connections import (
    DatabaseConnection,
    KafkaConnection,
    MqttConnection,
    ServiceOptions,
    refuse_placeholder_secrets,
)


class BridgeMqtt(MqttConnection):
    """The broker, as the bridge's persistent session sees it."""

    client_id: Annotated[str, Field(min_length=1, max_length=128)] = "wattstream-bridge"
    """Fixed, so the broker keeps the persistent session (and queues) across restarts. Every
    bridge of a shared subscription needs its own."""
    session_expiry_s: Annotated[int, Field(ge=0, le=0xFFFFFFFF)] = 0xFFFFFFFF
    """How long the broker keeps the session (and queues for it) while the bridge is away;
    the default, 2**32-1, means never expire."""
    keepalive_s: Annotated[int, Field(ge=5, le=65_535)] = 30
    """Seconds between MQTT keep-alive pings when idle."""


class BridgeKafka(KafkaConnection):
    """Kafka, as the bridge's producer sees it."""

    request_timeout_ms: Annotated[int, Field(ge=1000)] = 30_000
    """How long Kafka may take to acknowledge a batch before the bridge gives up on it,
    reconnects and gets the unacknowledged messages again from the broker."""
    linger_ms: Annotated[int, Field(ge=0)] = 5
    """How long the producer waits to fill a batch."""


class BridgeSettings(BaseSettings, ServiceOptions):
    model_config = SettingsConfigDict(env_prefix="WATTSTREAM_BRIDGE_")

    mqtt: BridgeMqtt = BridgeMqtt()
    kafka: BridgeKafka = BridgeKafka()
    shared_group: Annotated[str, Field(pattern=r"^[^/+#]*$")] = ""
    """Subscribe as ``$share/<group>/...`` so bridges with the same group split the messages
    (each with its own client id); empty: a plain subscription."""
    topic_namespace: str = ""
    """Prefix of the MQTT topic tree and the Kafka topic names (tests use it to stay apart)."""
    max_in_flight: Annotated[int, Field(ge=1, le=65_535)] = 1000
    """Messages taken from MQTT but not yet acknowledged by Kafka, at most (also the MQTT
    receive maximum: the broker queues the rest)."""
    reconnect_initial_s: Annotated[float, Field(gt=0)] = 0.5
    """First wait before reconnecting after a failure."""
    reconnect_max_s: Annotated[float, Field(gt=0)] = 30.0
    """Reconnection waits double from the first up to this ceiling; each is drawn at random
    between half of it and all of it (jitter)."""
    shutdown_grace_s: Annotated[float, Field(ge=0)] = 10.0
    """On SIGTERM, how long to wait for Kafka to acknowledge what is in flight."""
    stall_after_s: Annotated[float, Field(gt=0)] = 15.0
    """``/healthz`` fails when Kafka has left a message unacknowledged this long."""
    metrics_host: str = "127.0.0.1"
    """Address of the HTTP server for metrics and health."""
    metrics_port: Annotated[int, Field(ge=0, le=65_535)] = 9101
    """Prometheus metrics (``/metrics``) and health (``/healthz``) on this port (0: off)."""
    prepare_only: bool = False
    """Create the Kafka topics and the bridge's persistent MQTT session (subscribed), then
    exit: run once before devices publish, so what they publish before the bridge first runs
    is queued for it (compose's one-shot ``bridge-session``)."""


class StreamSettings(BaseSettings, ServiceOptions):
    model_config = SettingsConfigDict(env_prefix="WATTSTREAM_STREAM_")

    kafka: KafkaConnection = KafkaConnection()
    database: DatabaseConnection = DatabaseConnection()
    app_id: str = "wattstream-stream"
    """Faust application id: the Kafka consumer group and the prefix of its internal topics."""
    topic_namespace: str = ""
    batch_size: Annotated[int, Field(ge=1)] = 5000
    """Most events per batch. Each batch writes every device state it touched to the table's
    changelog once, so while catching up a larger batch writes far fewer state bytes per
    event (1,000 devices reading in turn: one state per reading at 1,000, one per five
    readings at 5,000; bench/worker_catchup.py); live traffic is cut into batches by
    ``batch_within_s`` long before this."""
    batch_within_s: Annotated[float, Field(gt=0)] = 0.5
    state_checkpoint_s: Annotated[float, Field(ge=0)] = 5.0
    """How often the device states whose open hours alone changed, and each partition's
    position, are written to the table's changelog (a checkpoint); states whose history
    changed are written by their batch. A crash replays at most this long of readings from the
    last checkpoint. 0: every batch."""
    data_dir: str = ".wattstream/faust"
    artifacts_dir: str = "artifacts"
    """Where the forecaster's model directories and ``latest`` are."""
    allowed_lateness: timedelta = timedelta(minutes=5)
    """How far behind the partition's newest event time a reading may be and still be on time."""
    session_timeout_s: Annotated[float, Field(ge=6)] = 60.0
    """Kafka consumer-group session timeout: how long a crashed worker's partitions wait
    before another worker takes them over."""
    max_silent: timedelta = timedelta(hours=3)
    """A silent device's empty hours are closed (completeness 0) for this long, then no more."""
    # -- cold start, stalls and stopping (issue 20) --------------------------------------
    topic_wait_s: Annotated[float, Field(gt=0)] = 120.0
    """At start, how long to keep trying to create the pipeline's topics while Kafka is
    unreachable before exiting non-zero."""
    stall_after_s: Annotated[float, Field(gt=0)] = 120.0
    """``/healthz`` fails (and the worker logs why) when readings wait on an assigned partition
    and no batch has been processed for this long."""
    resync_after_s: Annotated[float, Field(gt=0)] = 10.0
    """A readings partition the consumer has read to its end but the worker processed only
    part of for this long, while the worker waits for events, is fetched again from the next
    offset to process (events a Faust stream skipped during a rebalance or a recovery)."""
    stop_timeout_s: Annotated[float, Field(gt=0)] = 30.0
    """After SIGTERM (or a crashed agent), how long a clean stop may take before the worker
    exits non-zero regardless of its state."""
    metrics_host: str = "127.0.0.1"
    """Address of the HTTP server for metrics and health."""
    metrics_port: Annotated[int, Field(ge=0, le=65_535)] = 0
    """Prometheus metrics (``/metrics``) and health (``/healthz``) on this port (0: off;
    compose serves them on 9102)."""

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> StreamSettings:
        refuse_placeholder_secrets(
            self.environment, variables="WATTSTREAM_STREAM_", database=self.database
        )
        return self
