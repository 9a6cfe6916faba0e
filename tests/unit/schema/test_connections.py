"""The shared connection blocks and the one placeholder-secret check."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from schema.connections import (
    DEFAULT_DATABASE_URL,
    DatabaseConnection,
    KafkaConnection,
    MqttConnection,
    refuse_placeholder_secrets,
)
from schema.credentials import BrokerAuth

pytestmark = pytest.mark.unit

STRONG = SecretStr("k" * 32)


def test_mqtt_block_gives_the_broker_auth_whole() -> None:
    block = MqttConnection(
        username="bridge",
        password=SecretStr("pw"),
        tls=True,
        ca_file=Path("/ca.pem"),
        cert_file=Path("/c.pem"),
        key_file=Path("/k.pem"),
        tls_insecure=True,
    )
    assert block.auth() == BrokerAuth(
        username="bridge",
        password="pw",
        tls=True,
        ca_file=Path("/ca.pem"),
        cert_file=Path("/c.pem"),
        key_file=Path("/k.pem"),
        tls_insecure=True,
    )
    device = block.auth(username="dev-00001", password="derived")
    assert (device.username, device.password, device.ca_file) == (
        "dev-00001",
        "derived",
        Path("/ca.pem"),
    )
    assert MqttConnection().auth() == BrokerAuth()


def test_blocks_refuse_nonsense() -> None:
    with pytest.raises(ValidationError):
        MqttConnection(port=0)
    with pytest.raises(ValidationError):
        MqttConnection.model_validate({"hostname": "x"})  # extra="forbid"
    with pytest.raises(ValidationError):
        KafkaConnection.model_validate({"bootstrap": "k:1", "linger_ms": 5})


def test_database_block_gives_the_dsn_and_hides_it() -> None:
    block = DatabaseConnection(url=SecretStr("postgresql://u:secret@db:5432/w"))
    assert block.dsn() == "postgresql://u:secret@db:5432/w"
    assert "secret" not in repr(block)
    assert not block.has_well_known_password()
    assert DatabaseConnection().dsn() == DEFAULT_DATABASE_URL
    assert DatabaseConnection().has_well_known_password()


def test_development_accepts_every_placeholder() -> None:
    refuse_placeholder_secrets(
        "development",
        variables="X_",
        database=DatabaseConnection(),
        keys={"api_keys": [SecretStr("changethis"), SecretStr("short")]},
    )


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_other_environments_refuse_placeholders(environment: str) -> None:
    with pytest.raises(ValueError, match=r"well-known database password \(set X_DATABASE_URL\)"):
        refuse_placeholder_secrets(environment, variables="X_", database=DatabaseConnection())  # type: ignore[arg-type]
    for weak in ("changethis", "short"):
        with pytest.raises(ValueError, match=r"placeholder key .* \(set X_API_KEYS\)"):
            refuse_placeholder_secrets(
                environment,  # type: ignore[arg-type]
                variables="X_",
                keys={"api_keys": [STRONG, SecretStr(weak)]},
            )
    refuse_placeholder_secrets(
        environment,  # type: ignore[arg-type]
        variables="X_",
        database=DatabaseConnection(url=SecretStr("postgresql://u:a-real-secret@db/w")),
        keys={"api_keys": [STRONG], "device_key": [None]},
    )
