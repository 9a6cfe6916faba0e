"""Settings of the simulator service (env prefix ``WATTSTREAM_SIM_``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import AwareDatetime, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SimulatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WATTSTREAM_SIM_", frozen=True, extra="forbid")

    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 11883
    topic_namespace: str = ""
    """Prefix of the MQTT topic tree (empty: the documented ``wattstream/v1/...``)."""
    devices: Annotated[int, Field(ge=1, le=100_000)] = 10
    interval_s: Annotated[int, Field(ge=1, le=3600)] = 60
    """Simulated seconds between two readings of one device."""
    speed: Annotated[float, Field(gt=0)] | None = None
    """Accelerated time: simulated seconds per wall-clock second from ``start`` (3600: an hour
    a second). Unset: live, each reading published at its own time (past ones at once)."""
    backfill: timedelta = timedelta(0)
    """Live mode starts this far in the past and publishes that history as fast as the
    broker takes it before going live (ISO-8601 duration or seconds, e.g. ``PT6H``)."""
    seed: int = 42
    start: AwareDatetime | None = None
    """Simulated start instant; default: now minus ``backfill``, floored to the interval."""
    max_ticks: Annotated[int, Field(ge=1)] | None = None
    """Stop after this many readings per device (default: run until cancelled)."""
