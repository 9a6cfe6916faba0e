"""Settings of the API service (env prefix ``WATTSTREAM_API_``).

Defaults point at the local cluster (``wattstream services up``), so ``wattstream run`` only
passes the database URL and the port. Lists (``API_KEYS``, ``CORS_ORIGINS``) are read from the
environment either as JSON or comma-separated.

API keys carry a scope: ``read_api_keys`` read, ``api_keys`` write (device commands; also
read), ``admin_api_keys`` admin (model activation; also write and read); ``device_keys`` are
keys of any scope limited to some devices (ids, or id prefixes such as a site's). Reads (every
``GET`` under ``/api/v1`` and the live websocket) need a key when ``reads_need_key``: by default
outside development, so ``wattstream run`` works without one. The default keys are a placeholder
that only ``environment=development`` accepts; every other environment refuses to start with it,
with a short key, or with the default database password.

MQTT: the API publishes commands as its own broker user (``mqtt.username``, the local
cluster's ``api``), over TLS with ``mqtt.tls``. HTTPS: give ``ssl_certfile`` and ``ssl_keyfile``.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from api.jwks import parse_jwks, read_source
from api.kpi.tariffs import load_book
from schema.connections import (
    PLACEHOLDER_SECRET,
    DatabaseConnection,
    KafkaConnection,
    MqttConnection,
    ServiceOptions,
    refuse_placeholder_secrets,
)
from schema.wire import DEVICE_ID_PATTERN

log = logging.getLogger(__name__)

PLACEHOLDER_API_KEY = PLACEHOLDER_SECRET  # refused outside development
DEFAULT_RATE_LIMIT_PER_S = 50.0
JWT_SECRET_MIN_BYTES = 32
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def _list_from_env(value: Any) -> Any:
    """``'["a","b"]'`` or ``'a, b'`` -> ``["a", "b"]``; anything else is left to pydantic."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        return json.loads(text)
    return [part.strip() for part in text.split(",") if part.strip()]


class DeviceKey(BaseModel):
    """A key limited to some devices: ``{"key": "...", "scope": "read", "devices": ["dev-1"],
    "prefixes": ["berlin-"]}``. It reaches the devices named and those whose id starts with a
    prefix, nothing fleet-wide."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: SecretStr
    scope: Literal["read", "write", "admin"] = "read"
    devices: tuple[Annotated[str, Field(pattern=DEVICE_ID_PATTERN)], ...] = ()
    prefixes: tuple[Annotated[str, Field(min_length=1, max_length=64)], ...] = ()

    @model_validator(mode="after")
    def _limited(self) -> DeviceKey:
        if not (self.devices or self.prefixes):
            raise ValueError("a device key names devices or prefixes (else use the key lists)")
        return self


def _json_objects(value: Any) -> Any:
    """Each entry of a list given as JSON text (``--device-keys '{...}'``) decoded."""
    value = _list_from_env(value) if isinstance(value, str) else value
    if isinstance(value, list | tuple):
        return [json.loads(v) if isinstance(v, str) else v for v in value]
    return value


class ApiSettings(BaseSettings, ServiceOptions):
    model_config = SettingsConfigDict(env_prefix="WATTSTREAM_API_")

    host: str = "127.0.0.1"
    """Address the HTTP server listens on."""
    port: Annotated[int, Field(ge=1, le=65_535)] = 8000
    """Port the HTTP server listens on."""
    database: DatabaseConnection = DatabaseConnection()
    ssl_certfile: Path | None = None
    """Serve HTTPS with this certificate (PEM; with ``ssl_keyfile``)."""
    ssl_keyfile: Path | None = None
    """The HTTPS certificate's key."""
    kafka: KafkaConnection = KafkaConnection()
    mqtt: MqttConnection = MqttConnection()
    topic_namespace: str = ""
    """Prefix of the MQTT topic tree and the Kafka topic names (tests use it to stay apart)."""

    api_keys: Annotated[tuple[SecretStr, ...], NoDecode] = (SecretStr(PLACEHOLDER_API_KEY),)
    """Keys accepted in ``X-API-Key`` by the write endpoints; empty: only admin keys are."""
    admin_api_keys: Annotated[tuple[SecretStr, ...], NoDecode] = (SecretStr(PLACEHOLDER_API_KEY),)
    """Keys accepted by the admin endpoints (and the write endpoints); empty: no admin access."""
    read_api_keys: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    """Keys of scope ``read``: the ``GET`` endpoints under ``/api/v1`` and the live feed."""
    device_keys: Annotated[tuple[DeviceKey, ...], NoDecode] = ()
    """Keys limited to some devices: a JSON list of ``{"key", "scope", "devices",
    "prefixes"}`` (see docs/security.md); outside them a 403."""
    jwt_secret: SecretStr | None = None
    """HS256 secret of bearer JWTs (``Authorization: Bearer``) next to the API keys; unset: no
    JWTs. Claims: ``exp`` (required), ``scope`` (``read``/``write``/``admin``, space-separated
    or a list), optional ``devices`` and ``device_prefixes`` limiting the token like a device
    key."""
    jwt_jwks: str | None = None
    """The identity provider's public keys (a JWKS): a file path or an ``http(s)`` URL; bearer
    JWTs signed RS256 (RSA keys) or ES256 (P-256 keys) are verified with them. Unset: none.
    Outside development an ``http://`` URL must be on the loopback."""
    jwt_jwks_cache_s: Annotated[float, Field(gt=0)] = 300.0
    """How long a fetched JWKS is used before it is fetched again."""
    jwt_jwks_min_refresh_s: Annotated[float, Field(ge=0)] = 10.0
    """A token naming a key id the JWKS lacks fetches it again, at most this often."""
    jwt_scope_claim: Annotated[str, Field(min_length=1, max_length=64)] = "scope"
    """The claim holding the token's scopes (``scope``; ``scp`` for some providers)."""
    jwt_issuer: str | None = None
    """Required ``iss`` of the JWTs, if set."""
    jwt_audience: str | None = None
    """Required ``aud`` of the JWTs, if set (a token with an ``aud`` needs it set)."""
    jwt_leeway_s: Annotated[float, Field(ge=0, le=300)] = 30.0
    """Clock skew allowed when checking ``exp``, ``nbf`` and ``iat``."""
    require_read_key: bool | None = None
    """Whether reads need a key; unset: everywhere but ``environment=development``."""
    ws_auth_timeout_s: Annotated[float, Field(gt=0)] = 5.0
    """A live-feed client without an ``X-API-Key`` header must send
    ``{"type": "auth", "api_key": ...}`` as its first message within this many seconds."""
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
    live_kafka_check_s: Annotated[float, Field(gt=0, le=300)] = 5.0
    """The live feed asks Kafka for its metadata this often and gives it as long to answer;
    when it does not (or the feed cannot connect), live clients get an ``upstream`` frame
    saying Kafka is down, and another once it is back."""
    ws_max_clients: Annotated[int, Field(ge=1)] = 5_000
    """Live-feed clients one API process serves at most; more are closed with 1013."""
    ws_max_clients_per_key: Annotated[int, Field(ge=1)] = 50
    """Live-feed clients of one key at most (where reads need a key); more are closed with
    1013."""

    max_body_bytes: Annotated[int, Field(ge=1)] = 64 * 1024
    """Longest request body accepted; a longer one is a 413 (commands are a few hundred bytes)."""
    rate_limit_per_s: Annotated[float, Field(ge=0)] | None = None
    """Requests a second per client (token bucket; its key, else its address); 0: no limit;
    unset: 50 outside development, none in development (and the tests)."""
    rate_limit_burst: Annotated[int, Field(ge=1)] = 100
    """Requests a client may make at once before the rate applies."""

    db_timeout_s: Annotated[float, Field(gt=0)] = 3.0
    """Connecting to the database and each query: a slower one fails (503)."""
    request_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    """Every HTTP answer starts within this bound, else a 503 (``Retry-After``)."""
    retry_after_s: Annotated[int, Field(ge=1)] = 5
    """``Retry-After`` of the 503s a dependency being away causes."""
    idempotency_ttl: timedelta = timedelta(hours=24)
    """How long a command's ``Idempotency-Key`` keeps its first answer."""
    command_timeout_s: Annotated[float, Field(gt=0)] = 5.0
    """How long a command waits for the MQTT broker (connect and PUBACK) before a 503."""

    allow_training: bool = False
    """Admins may start ``wattstream train`` from the API (``POST /api/v1/admin/training``; CPU
    heavy: minutes on 2 cores); off: that answers 409."""
    training_command: str | None = None
    """The train command, shell-quoted (default: this Python's ``-m stream.forecast``); the API
    adds ``--progress --no-activate --no-latest --artifacts-dir ... --seed ...``."""
    training_artifacts_dir: Path = Path("artifacts")
    """Where trainings started from the API write their model directories."""
    training_timeout: timedelta = timedelta(hours=2)
    """A training started from the API that runs longer is killed (and reported failed)."""

    tariffs_file: Path | None = None
    """Tariff book (TOML or JSON, see docs/kpis.md); default: the reference two-rate tariff
    and 0.45 kg CO2e/kWh. A JSON file is rewritten by ``PUT /api/v1/tariffs``."""

    @field_validator("tariffs_file")
    @classmethod
    def _tariffs_file_is_valid(cls, value: Path | None) -> Path | None:
        """Refuse an unreadable or invalid book with the settings (``BookError`` names every
        problem); the app reads it again when it starts."""
        if value is not None:
            load_book(value)
        return value

    @field_validator("api_keys", "admin_api_keys", "read_api_keys", "cors_origins", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return _list_from_env(value)

    @field_validator("jwt_secret")
    @classmethod
    def _jwt_secret_is_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < JWT_SECRET_MIN_BYTES:
            # RFC 7518 3.2: an HS256 key at least as long as the hash.
            raise ValueError(f"an HS256 secret needs at least {JWT_SECRET_MIN_BYTES} bytes")
        return value

    @field_validator("jwt_jwks")
    @classmethod
    def _jwks_is_readable(cls, value: str | None) -> str | None:
        """A JWKS file must hold one now (fail at start-up); a URL is fetched when needed."""
        if value is None or value.startswith(("http://", "https://")):
            return value
        if "://" in value:
            raise ValueError("jwt_jwks is a file path or an http(s) URL")
        try:
            keys = parse_jwks(read_source(value))
        except OSError as exc:
            raise ValueError(f"cannot read the JWKS file: {exc}") from exc
        if not keys:
            raise ValueError(f"{value} holds no RS256 or ES256 signing key")
        return value

    @field_validator("device_keys", mode="before")
    @classmethod
    def _decode_device_keys(cls, value: Any) -> Any:
        return _json_objects(value)

    @model_validator(mode="after")
    def _no_placeholder_keys_outside_development(self) -> ApiSettings:
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("HTTPS needs both ssl_certfile and ssl_keyfile")
        if self.jwt_jwks and self.environment != "development":
            url = urlsplit(self.jwt_jwks)
            if url.scheme == "http" and url.hostname not in LOOPBACK_HOSTS:
                raise ValueError("outside development a JWKS URL is https (or on the loopback)")
        refuse_placeholder_secrets(
            self.environment,
            variables="WATTSTREAM_API_",
            database=self.database,
            keys={
                "api_keys": self.api_keys,
                "admin_api_keys": self.admin_api_keys,
                "read_api_keys": self.read_api_keys,
                "device_keys": tuple(k.key for k in self.device_keys),
                "jwt_secret": (self.jwt_secret,),
            },
        )
        return self

    @property
    def uses_placeholder_key(self) -> bool:
        return any(
            k.get_secret_value() == PLACEHOLDER_API_KEY
            for k in (
                *self.api_keys,
                *self.admin_api_keys,
                *self.read_api_keys,
                *(d.key for d in self.device_keys),
            )
        )

    @property
    def rate_limit(self) -> float:
        """Requests a second per client; 0: no limit."""
        if self.rate_limit_per_s is not None:
            return self.rate_limit_per_s
        return 0.0 if self.environment == "development" else DEFAULT_RATE_LIMIT_PER_S

    @property
    def reads_need_key(self) -> bool:
        if self.require_read_key is not None:
            return self.require_read_key
        return self.environment != "development"
