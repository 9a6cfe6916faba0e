from __future__ import annotations

import pytest
from pydantic import ValidationError

from stream.bridge.__main__ import parse_args
from stream.bridge.app import producer_options
from stream.settings import BridgeKafka, BridgeMqtt, BridgeSettings

pytestmark = pytest.mark.unit


def test_every_setting_has_a_flag() -> None:
    settings = parse_args(
        [
            "--shared-group=bridges",
            "--mqtt-client-id=bridge-2",
            "--max-in-flight=50",
            "--shutdown-grace-s=2.5",
            "--mqtt-session-expiry-s=3600",
        ]
    )
    assert settings.shared_group == "bridges"
    assert settings.mqtt.client_id == "bridge-2"
    assert settings.max_in_flight == 50
    assert settings.shutdown_grace_s == 2.5
    assert settings.mqtt.session_expiry_s == 3600


def test_flags_default_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATTSTREAM_BRIDGE_SHARED_GROUP", "g1")
    assert parse_args([]).shared_group == "g1"


@pytest.mark.parametrize(
    "bad",
    [
        {"shared_group": "a/b"},
        {"shared_group": "#"},
        {"max_in_flight": 0},
        {"mqtt": {"client_id": ""}},
    ],
)
def test_nonsense_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        BridgeSettings.model_validate(bad)


def test_the_producer_is_idempotent_and_waits_for_all_replicas() -> None:
    options = producer_options(
        BridgeSettings(
            kafka=BridgeKafka(bootstrap="k:1", request_timeout_ms=5000),
            mqtt=BridgeMqtt(client_id="b-1"),
        )
    )
    assert options["enable_idempotence"] is True
    assert options["acks"] == "all"
    assert (options["bootstrap_servers"], options["client_id"]) == ("k:1", "b-1")
    assert options["request_timeout_ms"] == 5000
