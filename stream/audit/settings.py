"""Settings of the delivery audit (env prefix ``WATTSTREAM_AUDIT_``)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schema.connections import (
    DatabaseConnection,
    ServiceOptions,
    refuse_placeholder_secrets,
)


class AuditSettings(BaseSettings, ServiceOptions):
    model_config = SettingsConfigDict(env_prefix="WATTSTREAM_AUDIT_")

    journal: Path
    """The simulator's delivery journal (``wattstream simulate --journal``)."""
    database: DatabaseConnection = DatabaseConnection()
    """The pipeline's database."""
    allowed_lateness: timedelta = timedelta(minutes=5)
    """The stream worker's ``WATTSTREAM_STREAM_ALLOWED_LATENESS``."""
    max_silent: timedelta = timedelta(hours=3)
    """The stream worker's ``WATTSTREAM_STREAM_MAX_SILENT``."""
    history_hours: Annotated[int, Field(ge=1)] = 24
    """Closed hours a device needs before it gets forecasts (the served model's history)."""
    partitions: Annotated[int, Field(ge=1)] = 6
    """Partitions of the ``readings`` topic (``schema.topics.READINGS_PARTITIONS``)."""
    examples: Annotated[int, Field(ge=0)] = 3
    """Devices shown per kind of finding."""
    watch_s: Annotated[float, Field(ge=0)] = 0.0
    """Audit again every this many seconds (0: once, and exit 1 on any loss or duplicate)."""
    metrics_host: str = "127.0.0.1"
    """Address of the metrics server."""
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = 0
    """Serve the findings as Prometheus metrics on ``/metrics`` (0: no server)."""

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> AuditSettings:
        refuse_placeholder_secrets(
            self.environment, variables="WATTSTREAM_AUDIT_", database=self.database
        )
        return self
