"""Settings of the API service (env prefix ``WATTSTREAM_API_``).

Defaults point at the local cluster (``wattstream services up``), so ``wattstream run`` only
passes the database URL and the port. Lists (``API_KEYS``, ``CORS_ORIGINS``) are read from the
environment either as JSON or comma-separated.

API keys guard the endpoints that change something (device commands, model activation) and,
with ``ws_require_key``, the live websocket. The default key is a placeholder that only
``environment=development`` accepts; every other environment refuses to start with it.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

log = logging.getLogger(__name__)

PLACEHOLDER_API_KEY = "changethis"  # refused outside development
MIN_KEY_LENGTH = 16

Environment = Literal["development", "staging", "production"]


def _list_from_env(value: Any) -> Any:
    """``'["a","b"]'`` or ``'a, b'`` -> ``["a", "b"]``; anything else is left to pydantic."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        return json.loads(text)
    return [part.strip() for part in text.split(",") if part.strip()]


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WATTSTREAM_API_", frozen=True, extra="forbid")

    environment: Environment = "development"
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65_535)] = 8000
    database_url: SecretStr = SecretStr(
        "postgresql://wattstream:wattstream@127.0.0.1:15432/wattstream"
    )
    kafka_bootstrap: str = "127.0.0.1:19092"
    mqtt_host: str = "127.0.0.1"
    mqtt_port: Annotated[int, Field(ge=1, le=65_535)] = 11883
    topic_namespace: str = ""
    """Prefix of the MQTT topic tree and the Kafka topic names (tests use it to stay apart)."""

    api_keys: Annotated[tuple[SecretStr, ...], NoDecode] = (SecretStr(PLACEHOLDER_API_KEY),)
    """Keys accepted in ``X-API-Key``; empty: nothing that needs a key is allowed."""
    ws_require_key: bool = False
    """Also require a key (``api_key`` query parameter or ``X-API-Key``) on the websocket."""
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    """Origins allowed by CORS (``*`` for any); empty: no CORS headers."""

    max_range: timedelta = timedelta(days=31)
    """Longest time range of a raw-readings or 15-minute aggregate query."""
    max_hourly_range: timedelta = timedelta(days=92)
    max_daily_range: timedelta = timedelta(days=366)
    max_rows: Annotated[int, Field(ge=1, le=100_000)] = 10_000
    page_size_max: Annotated[int, Field(ge=1, le=10_000)] = 500

    ws_queue_size: Annotated[int, Field(ge=1, le=100_000)] = 256
    """Events waiting for one websocket client before they coalesce to the latest per key."""
    ws_max_behind_s: Annotated[float, Field(gt=0)] = 30.0
    """A client whose queue has not drained for this long is disconnected."""
    ws_heartbeat_s: Annotated[float, Field(gt=0)] = 15.0
    ws_replay_size: Annotated[int, Field(ge=0, le=1_000_000)] = 10_000
    """Recent events kept for clients that reconnect with a last-event id."""
    ws_replay_age: timedelta = timedelta(minutes=5)
    ws_max_clients: Annotated[int, Field(ge=1)] = 5_000

    command_timeout_s: Annotated[float, Field(gt=0)] = 5.0
    """How long a command waits for the MQTT broker (connect and PUBACK) before a 503."""

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return _list_from_env(value)

    @model_validator(mode="after")
    def _no_placeholder_keys_outside_development(self) -> ApiSettings:
        weak = [
            key
            for key in self.api_keys
            if key.get_secret_value() == PLACEHOLDER_API_KEY
            or len(key.get_secret_value()) < MIN_KEY_LENGTH
        ]
        if weak and self.environment != "development":
            raise ValueError(
                f"environment={self.environment} refuses the placeholder API key "
                f"{PLACEHOLDER_API_KEY!r} and keys shorter than {MIN_KEY_LENGTH} characters: "
                "set WATTSTREAM_API_API_KEYS"
            )
        return self

    @property
    def uses_placeholder_key(self) -> bool:
        return any(k.get_secret_value() == PLACEHOLDER_API_KEY for k in self.api_keys)
