"""Settings refuse placeholder keys outside development; cursors round-trip and refuse forgeries;
live events decode per their topic's contract."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr, TypeAdapter, ValidationError

from api import pagination
from api.errors import InvalidRequest
from api.live.events import UndecodableEvent, decode, topic_kinds
from api.models import CommandIn
from api.settings import PLACEHOLDER_API_KEY, ApiSettings
from schema.connections import DatabaseConnection
from schema.device_messages import DeviceStatus, Presence
from schema.topics import KafkaTopics

pytestmark = pytest.mark.unit

STRONG = "k" * 32


PRODUCTION_DB = DatabaseConnection(
    url=SecretStr("postgresql://wattstream:a-real-secret@db.example:5432/wattstream")
)


def test_development_accepts_the_placeholder_key() -> None:
    settings = ApiSettings()
    assert settings.environment == "development"
    assert settings.uses_placeholder_key
    assert settings.kafka.bootstrap == "127.0.0.1:19092"
    assert (settings.mqtt.host, settings.mqtt.port) == ("127.0.0.1", 11883)


@pytest.mark.parametrize("key", [PLACEHOLDER_API_KEY, "short"])
def test_production_refuses_placeholder_and_short_keys(key: str) -> None:
    strong = (SecretStr(STRONG),)
    with pytest.raises(ValidationError, match="refuses the placeholder"):
        ApiSettings(
            environment="production",
            api_keys=(SecretStr(key),),
            admin_api_keys=strong,
            database=PRODUCTION_DB,
        )
    with pytest.raises(ValidationError, match="refuses the placeholder"):
        ApiSettings(
            environment="staging",
            api_keys=strong,
            admin_api_keys=(SecretStr(key),),
            database=PRODUCTION_DB,
        )
    assert ApiSettings(
        environment="production",
        api_keys=strong,
        admin_api_keys=strong,
        database=PRODUCTION_DB,
    )


def test_production_refuses_the_default_admin_key_and_database_password() -> None:
    strong = (SecretStr(STRONG),)
    with pytest.raises(ValidationError, match="refuses the placeholder"):
        ApiSettings(environment="production", api_keys=strong, database=PRODUCTION_DB)
    with pytest.raises(ValidationError, match="well-known database password"):
        ApiSettings(environment="production", api_keys=strong, admin_api_keys=strong)


def test_https_needs_both_certificate_and_key() -> None:
    with pytest.raises(ValidationError, match="ssl_certfile and ssl_keyfile"):
        ApiSettings(ssl_certfile="cert.pem")


def test_lists_come_from_the_environment_as_json_or_commas(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WATTSTREAM_API_API_KEYS", f"{STRONG}, {'z' * 20}")
    monkeypatch.setenv("WATTSTREAM_API_CORS_ORIGINS", '["http://a.example", "http://b.example"]')
    monkeypatch.setenv("WATTSTREAM_API_ADMIN_API_KEYS", f'["{"a" * 20}"]')
    monkeypatch.setenv("WATTSTREAM_API_DATABASE_URL", PRODUCTION_DB.dsn())
    monkeypatch.setenv("WATTSTREAM_API_ENVIRONMENT", "production")
    settings = ApiSettings()
    assert [k.get_secret_value() for k in settings.api_keys] == [STRONG, "z" * 20]
    assert [k.get_secret_value() for k in settings.admin_api_keys] == ["a" * 20]
    assert settings.cors_origins == ("http://a.example", "http://b.example")
    assert STRONG not in repr(settings)


def test_cursor_round_trip_and_forgeries() -> None:
    cursor = pagination.encode("alerts", ["2026-01-01T00:00:00+00:00", "dev-1"])
    assert pagination.decode("alerts", cursor, 2) == ["2026-01-01T00:00:00+00:00", "dev-1"]
    with pytest.raises(InvalidRequest, match="not a cursor of the devices list"):
        pagination.decode("devices", cursor, 2)
    with pytest.raises(InvalidRequest, match="not a cursor"):
        pagination.decode("alerts", "!!!not base64", 2)
    with pytest.raises(InvalidRequest):
        pagination.decode("alerts", cursor, 3)


def test_live_events_decode_by_topic_contract() -> None:
    kinds = topic_kinds(KafkaTopics("ns"))
    assert kinds["ns.readings"] == "readings"
    assert kinds["ns.device-status"] == "status"
    status = DeviceStatus(
        device_id="dev-1", status=Presence.ONLINE, ts=datetime(2026, 1, 1, tzinfo=UTC)
    )
    device_id, data = decode("status", status.model_dump_json().encode())
    assert device_id == "dev-1"
    assert json.loads(data)["status"] == "online"
    with pytest.raises(UndecodableEvent):
        decode("readings", status.model_dump_json().encode())
    with pytest.raises(UndecodableEvent):
        decode("alerts", b"not json")


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"action": "anomaly"}, r"anomaly\.anomaly\n  Field required"),
        ({"action": "set_interval"}, r"set_interval\.interval_s\n  Field required"),
        ({"action": "offline", "interval_s": 5}, r"offline\.interval_s\n  Extra inputs"),
        ({"action": "online", "anomaly": "spike"}, r"online\.anomaly\n  Extra inputs"),
        ({"action": "reboot"}, "does not match any of the expected tags"),
        ({"anomaly": "spike"}, "Unable to extract tag using discriminator 'action'"),
    ],
)
def test_commands_must_fit_their_action(body: dict[str, object], needle: str) -> None:
    commands: TypeAdapter[Any] = TypeAdapter(CommandIn)
    with pytest.raises(ValidationError, match=needle):
        commands.validate_python(body)
    anomaly = commands.validate_python({"action": "anomaly", "anomaly": "spike", "magnitude": 3.0})
    assert anomaly.model_dump() == {
        "action": "anomaly",
        "anomaly": "spike",
        "magnitude": 3.0,
        "duration_s": None,
    }
    schema = commands.json_schema()  # what the OpenAPI document says: one shape per action
    assert schema["discriminator"]["propertyName"] == "action"
    assert set(schema["discriminator"]["mapping"]) == {
        "anomaly",
        "online",
        "offline",
        "set_interval",
    }
