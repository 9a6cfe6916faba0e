"""Settings refuse placeholder keys outside development; cursors round-trip and refuse forgeries;
live events decode per their topic's contract."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr, ValidationError

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
        ({"action": "anomaly"}, "needs 'anomaly'"),
        ({"action": "set_interval"}, "needs 'interval_s'"),
        ({"action": "offline", "interval_s": 5}, "only with action 'set_interval'"),
        ({"action": "online", "anomaly": "spike"}, "only with action 'anomaly'"),
        ({"action": "reboot"}, "action"),
    ],
)
def test_commands_must_fit_their_action(body: dict[str, object], needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        CommandIn.model_validate(body)
    assert CommandIn.model_validate({"action": "anomaly", "anomaly": "spike", "magnitude": 3.0})
