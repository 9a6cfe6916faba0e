"""Settings of the local cluster and the endpoints it serves.

Everything the cluster writes (configuration, data, logs, pidfiles, by default the Kafka jars)
lives under ``home``, one directory per service: ``home/mosquitto``, ``home/postgres``,
``home/kafka``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ClusterSettings(BaseSettings):
    """Where the local cluster lives and the ports its services listen on."""

    model_config = SettingsConfigDict(env_prefix="WATTSTREAM_CLUSTER_", frozen=True)

    home: Path = Path(".wattstream")
    host: str = "127.0.0.1"
    mqtt_port: int = 11883
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    pg_port: int = 15432
    pg_user: str = "wattstream"
    # A well-known password is fine here: this is the local development cluster, listening on
    # the loopback interface only. Deployed services get their secrets from their own settings.
    pg_password: SecretStr = SecretStr("wattstream")
    pg_database: str = "wattstream"
    pg_bindir: Path | None = None
    """PostgreSQL's server programs (``initdb``, ``postgres``, ``pg_ctl``); the newest
    ``/usr/lib/postgresql/N/bin`` unless set. Point it at a build that has TimescaleDB (for
    example ``/opt/tsdb/lib/postgresql/15/bin``) to run the cluster in TimescaleDB mode."""
    kafka_jars_dir: Path | None = None
    """Where the Kafka jars are kept; ``home/kafka/libs`` unless set. Clusters may share one."""
    secrets_dir: Path | None = None
    """Where the generated local secrets are (``home/secrets`` unless set): MQTT passwords of
    the service users, the device root key, the API keys. Created once, files mode 0600."""
    mqtt_tls: bool = False
    """Also serve MQTT over TLS (``mqtt_tls_port``), with a CA and server certificate generated
    once under ``home/mosquitto/tls``."""
    mqtt_tls_port: int | None = None
    """Port of the TLS listener; ``mqtt_port + 1`` unless set."""

    @field_validator("home", "pg_bindir", "kafka_jars_dir", "secrets_dir")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        path = value.expanduser().resolve()
        # The paths go into configuration files whose parsers split on whitespace.
        if any(ch.isspace() for ch in str(path)):
            raise ValueError(f"path must not contain whitespace: {str(path)!r}")
        return path

    @property
    def jars_dir(self) -> Path:
        return self.kafka_jars_dir or self.home / "kafka" / "libs"

    @property
    def secrets_path(self) -> Path:
        return self.secrets_dir or self.home / "secrets"

    @property
    def tls_port(self) -> int | None:
        """The TLS listener's port, or ``None`` without ``mqtt_tls``."""
        if not self.mqtt_tls:
            return None
        return self.mqtt_tls_port or self.mqtt_port + 1


@dataclass(frozen=True)
class Endpoints:
    """How clients reach the services of a running local cluster."""

    mqtt_host: str
    mqtt_port: int
    mqtt_tls_port: int | None
    """The TLS listener (``None``: none); its CA is ``mqtt_ca_file``."""
    mqtt_ca_file: Path | None
    kafka_bootstrap: str
    """``host:port`` of the Kafka broker."""
    database_url: str
    """asyncpg DSN of the application database."""
    admin_database_url: str
    """asyncpg DSN of the ``postgres`` database, for creating and dropping databases."""


def _dsn(settings: ClusterSettings, database: str) -> str:
    user = quote(settings.pg_user, safe="")
    password = quote(settings.pg_password.get_secret_value(), safe="")
    return (
        f"postgresql://{user}:{password}@{settings.host}:{settings.pg_port}/"
        f"{quote(database, safe='')}"
    )


def endpoints(settings: ClusterSettings) -> Endpoints:
    """The endpoints of the cluster ``settings`` describe, whether it is running or not."""
    return Endpoints(
        mqtt_host=settings.host,
        mqtt_port=settings.mqtt_port,
        mqtt_tls_port=settings.tls_port,
        mqtt_ca_file=settings.home / "mosquitto" / "tls" / "ca.crt" if settings.mqtt_tls else None,
        kafka_bootstrap=f"{settings.host}:{settings.kafka_port}",
        database_url=_dsn(settings, settings.pg_database),
        admin_database_url=_dsn(settings, "postgres"),
    )
