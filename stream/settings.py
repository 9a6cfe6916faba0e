"""Settings of the two stream services: the bridge (``WATTSTREAM_BRIDGE_``) and the worker
(``WATTSTREAM_STREAM_``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class BridgeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WATTSTREAM_BRIDGE_", frozen=True, extra="forbid")

    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 11883
    mqtt_client_id: str = "wattstream-bridge"
    """Fixed, so the broker keeps the persistent session (and queues) across restarts."""
    kafka_bootstrap: str = "127.0.0.1:19092"
    topic_namespace: str = ""
    """Prefix of the MQTT topic tree and the Kafka topic names (tests use it to stay apart)."""
    max_in_flight: Annotated[int, Field(ge=1, le=65_535)] = 1000
    """Messages taken from MQTT but not yet acknowledged by Kafka, at most."""
    metrics_host: str = "127.0.0.1"
    metrics_port: Annotated[int, Field(ge=0, le=65_535)] = 9101
    """Prometheus metrics and health on this port (0: off)."""


class StreamSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WATTSTREAM_STREAM_", frozen=True, extra="forbid")

    kafka_bootstrap: str = "127.0.0.1:19092"
    database_url: SecretStr = SecretStr(
        "postgresql://wattstream:wattstream@127.0.0.1:15432/wattstream"
    )
    app_id: str = "wattstream-stream"
    """Faust application id: the Kafka consumer group and the prefix of its internal topics."""
    topic_namespace: str = ""
    batch_size: Annotated[int, Field(ge=1)] = 1000
    batch_within_s: Annotated[float, Field(gt=0)] = 0.5
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
