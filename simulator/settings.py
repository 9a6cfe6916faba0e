"""Settings of the simulator service (env prefix ``WATTSTREAM_SIM_``).

Precedence: flags, then ``WATTSTREAM_SIM_*`` variables, then the fleet file (``fleet_file``),
then these defaults.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

from pydantic import (
    AwareDatetime,
    BeforeValidator,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from schema.commandline import Flag
from schema.connections import (
    MqttConnection,
    ServiceOptions,
    refuse_placeholder_secrets,
)
from simulator.durations import duration_seconds, parse_duration
from simulator.scenarios import Scenario
from simulator.transport import ConnectionMode

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class SimulatorSettings(BaseSettings, ServiceOptions):
    model_config = SettingsConfigDict(env_prefix="WATTSTREAM_SIM_")

    mqtt: MqttConnection = MqttConnection()
    device_key: SecretStr | None = None
    """Device root key: without ``mqtt_username``, each connection authenticates as its own
    identity (device id, or gateway id when pooled) with the password derived from this key
    (``schema.credentials.device_password``). The broker must know the identities first
    (``python -m simulator identities`` prints them; ``wattstream services provision``)."""
    topic_namespace: str = ""
    """Prefix of the MQTT topic tree (empty: the documented ``wattstream/v1/...``)."""
    client_id_prefix: str | None = None
    """Client ids are ``{prefix}-{device_id}`` or ``{prefix}-pool-{n}``; default
    ``wattstream-sim-{namespace or 'fleet'}-{seed}``."""
    connections: str = "per-device"
    """``per-device`` (one MQTT connection and last will per device) or ``pooled:N``."""
    devices: Annotated[int, Field(ge=1, le=100_000)] = 10
    """Devices in the fleet."""
    interval_s: Annotated[
        int, Field(ge=1, le=86_400), BeforeValidator(duration_seconds), Flag("--interval")
    ] = 60
    """Simulated seconds between two readings of one device (or a duration: 60s, 15m, 1h)."""
    speed: Annotated[float, Field(gt=0)] | None = None
    """Accelerated time: simulated seconds per wall-clock second from ``start`` (3600: an hour
    a second). Unset: live, each reading published at its own time (past ones at once)."""
    backfill: Duration = timedelta(0)
    """Live mode starts this far in the past and publishes that history as fast as the
    broker takes it before going live (``14d``, ``6h``, ``PT6H`` or seconds)."""
    seed: int = 42
    """Seeds the fleet's device models."""
    start: AwareDatetime | None = None
    """Simulated start instant; default: now minus ``backfill``, floored to the interval."""
    max_ticks: Annotated[int, Field(ge=1)] | None = None
    """Stop after this many readings per device (default: run until cancelled)."""
    fleet_file: Annotated[Path | None, Flag("--fleet")] = None
    """TOML fleet definition (groups, scenarios, planned anomalies); see simulator.fleetfile."""
    scenarios: Annotated[list[Scenario], Flag("--scenario")] = []
    """Scenarios (repeatable; see simulator.scenarios)."""
    anomalies: Annotated[list[str], Flag("--anomaly")] = []
    """Planned anomalies, ``device=dev-00003,kind=spike,after=2h,duration=15m,magnitude=3``."""
    labels_file: Annotated[Path | None, Flag("--labels")] = None
    """Append a JSON line per injected anomaly (ground truth) to this file."""
    labels_topic: bool = False
    """Also publish the labels on ``{root}/labels`` (QoS 1, not retained)."""
    operator_username: str = "operator"
    operator_password: SecretStr | None = None
    """With it, the labels go out over a connection of their own as ``operator_username``, the
    only broker user allowed to publish them; without it, over the devices' connections (what an
    anonymous broker takes; the local cluster's and compose's brokers refuse them)."""
    resend_window_s: Annotated[float, Field(ge=0)] = 3.0
    """After a lost connection, publish again what the broker acknowledged in this many
    seconds before: a broker that crashes can lose messages it acknowledged but had not saved
    (see simulator.connection); 0 turns it off."""
    journal_file: Annotated[Path | None, Flag("--journal")] = None
    """Append the delivery journal (``schema.journal``: every reading the broker acknowledged,
    as seq ranges) to this file, for ``wattstream audit``."""
    journal_flush_s: Annotated[float, Field(gt=0)] = 0.5
    """Write and flush the journal this often (a crash loses at most this much of it)."""
    progress_s: Annotated[float, Field(ge=0)] = 10.0
    """Log a progress line (publish rate, backlog, connections) this often; 0: never."""
    backlog: Annotated[int, Field(ge=1)] = 20_000
    """At most this many messages wait for PUBACK before publishing pauses."""
    max_inflight: Annotated[int, Field(ge=1, le=65_535)] = 100
    """Unacknowledged messages per connection on the wire (paho queues the rest)."""

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> SimulatorSettings:
        refuse_placeholder_secrets(
            self.environment,
            variables="WATTSTREAM_SIM_",
            keys={"device_key": [self.device_key], "operator_password": [self.operator_password]},
        )
        return self

    @field_validator("connections")
    @classmethod
    def _connection_mode(cls, value: str) -> str:
        ConnectionMode.parse(value)
        return value

    @property
    def connection_mode(self) -> ConnectionMode:
        return ConnectionMode.parse(self.connections)

    def client_prefix(self, seed: int) -> str:
        """Client ids are ``{prefix}-{device_id}`` or ``{prefix}-pool-{n}``."""
        return self.client_id_prefix or f"wattstream-sim-{self.topic_namespace or 'fleet'}-{seed}"


class HistorySettings(BaseSettings, ServiceOptions):
    """``python -m simulator history`` (env prefix ``WATTSTREAM_SIM_HISTORY_``)."""

    model_config = SettingsConfigDict(env_prefix="WATTSTREAM_SIM_HISTORY_")

    devices: Annotated[int, Field(ge=1, le=100_000)]
    """Devices in the fleet."""
    days: Annotated[int, Field(ge=1)]
    """Days of history."""
    out: Path
    """The JSON-lines file to write."""
    seed: int = 42
    """Seeds the fleet's device models."""
    start: AwareDatetime | None = None
    """First hour (ISO-8601 with offset); default: 00:00 UTC, ``days`` ago."""
    interval_s: Annotated[
        int, Field(ge=1, le=86_400), BeforeValidator(duration_seconds), Flag("--interval")
    ] = 900
    """Simulated seconds between two readings (or a duration: 15m)."""
