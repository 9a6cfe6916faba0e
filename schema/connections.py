"""The connection blocks every service's settings share, and the one placeholder-secret check.

Plain pydantic models (no settings source: each service's ``Settings`` nests them and reads them
from its own variables, ``WATTSTREAM_<SERVICE>_MQTT_HOST`` -> ``mqtt.host``)::

    ServiceOptions      environment, log_level (every service)
    MqttConnection      host, port, username, password, tls, ca/cert/key files, tls_insecure
                        -> .auth(): the BrokerAuth the MQTT clients take
    KafkaConnection     bootstrap
    DatabaseConnection  url (SecretStr) -> .dsn()

:func:`refuse_placeholder_secrets` is the one check of the secrets a service starts with:
outside ``environment=development`` it refuses the local cluster's well-known database
password, the placeholder key and keys shorter than :data:`MIN_KEY_LENGTH`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Literal, cast
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr

from schema.credentials import BrokerAuth
from schema.logformat import LogFormat

Environment = Literal["development", "staging", "production"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

PLACEHOLDER_SECRET = "changethis"  # noqa: S105 - the placeholder refused outside development
WELL_KNOWN_DATABASE_PASSWORD = "wattstream"  # noqa: S105 - the local cluster's, refused likewise
MIN_KEY_LENGTH = 16
DEFAULT_DATABASE_URL = "postgresql://wattstream:wattstream@127.0.0.1:15432/wattstream"
"""The local cluster's database, with its well-known password: refused outside development."""


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


_BLOCK = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class ServiceOptions(BaseModel):
    """What every service's settings have besides its own: where it runs and how it logs.

    Every service's ``Settings(BaseSettings, ServiceOptions)`` inherits this configuration and
    adds only its ``env_prefix``: frozen, no unknown settings, docstrings as help, and the
    blocks read from flat variables (``<prefix>MQTT_CA_FILE`` -> ``mqtt.ca_file``: the first
    ``_`` after a block's name splits, so no other setting's name may start with a block's name
    and ``_``).
    """

    # pydantic_settings' keys in a plain ConfigDict (this module may not import it): pydantic
    # merges the bases' configurations, so the services' settings classes get them.
    model_config = cast(
        "ConfigDict",
        {**_BLOCK, "env_nested_delimiter": "_", "env_nested_max_split": 1},
    )

    environment: Environment = "development"
    """Outside ``development`` placeholder secrets (default keys, the well-known database
    password, short keys) are refused at start-up."""
    log_level: Annotated[LogLevel, BeforeValidator(_upper)] = "INFO"
    """How much the service logs (any case)."""
    log_format: LogFormat = "text"
    """``text`` (for people) or ``json`` (one event per line: ISO-8601 UTC time, service, level,
    logger, message, request id where there is one)."""


class MqttConnection(BaseModel):
    """How a service reaches the MQTT broker."""

    model_config = _BLOCK

    host: str = "127.0.0.1"
    """The MQTT broker's host."""
    port: Annotated[int, Field(ge=1, le=65_535)] = 11883
    username: str | None = None
    """Broker user (the local cluster's ``bridge``, ``api``; devices: their own identity)."""
    password: SecretStr | None = None
    """Its password (prefer the environment variable: flags show in ``ps``)."""
    tls: bool = False
    """Connect with TLS (the broker's certificate checked against ``ca_file``)."""
    ca_file: Path | None = None
    """CA bundle for the broker's certificate (default: the system's CAs)."""
    cert_file: Path | None = None
    """Client certificate (with ``key_file``) for brokers that want one."""
    key_file: Path | None = None
    """The client certificate's key."""
    tls_insecure: bool = False
    """Do not check the broker's host name (self-signed test brokers only)."""

    def auth(self, *, username: str | None = None, password: str | None = None) -> BrokerAuth:
        """The credentials and TLS of this block (``username``/``password`` override them,
        e.g. with a device identity's)."""
        return BrokerAuth(
            username=username if username is not None else self.username,
            password=password if password is not None else _plain(self.password),
            tls=self.tls,
            ca_file=self.ca_file,
            cert_file=self.cert_file,
            key_file=self.key_file,
            tls_insecure=self.tls_insecure,
        )


class KafkaConnection(BaseModel):
    """How a service reaches Kafka."""

    model_config = _BLOCK

    bootstrap: str = "127.0.0.1:19092"
    """Kafka's ``host:port`` (comma-separated for several)."""


class DatabaseConnection(BaseModel):
    """How a service reaches PostgreSQL."""

    model_config = _BLOCK

    url: SecretStr = SecretStr(DEFAULT_DATABASE_URL)
    """The database's URL (``postgresql://user:password@host:port/db``)."""

    def dsn(self) -> str:
        return self.url.get_secret_value()

    def has_well_known_password(self) -> bool:
        try:
            password = urlsplit(self.dsn()).password
        except ValueError:
            return False
        return password in {WELL_KNOWN_DATABASE_PASSWORD, PLACEHOLDER_SECRET}


def _plain(secret: SecretStr | None) -> str | None:
    return None if secret is None else secret.get_secret_value()


def refuse_placeholder_secrets(
    environment: Environment,
    *,
    variables: str,
    database: DatabaseConnection | None = None,
    keys: Mapping[str, Iterable[SecretStr | None]] | None = None,
) -> None:
    """Raise ``ValueError`` naming every placeholder secret, unless in development.

    ``variables`` is the service's variable prefix (``WATTSTREAM_API_``), to name what to set;
    ``keys`` maps a setting to its keys (API keys, the device root key; ``None``: unset).
    """
    if environment == "development":
        return
    problems: list[str] = []
    if database is not None and database.has_well_known_password():
        problems.append(f"the well-known database password (set {variables}DATABASE_URL)")
    for name, values in (keys or {}).items():
        secrets = [v.get_secret_value() for v in values if v is not None]
        if any(s == PLACEHOLDER_SECRET or len(s) < MIN_KEY_LENGTH for s in secrets):
            problems.append(
                f"the placeholder key {PLACEHOLDER_SECRET!r} or a key shorter than "
                f"{MIN_KEY_LENGTH} characters (set {variables}{name.upper()})"
            )
    if problems:
        raise ValueError(f"environment={environment} refuses {'; '.join(problems)}")
