from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from schema.device_messages import (
    AnomalyKind,
    AnomalyLabel,
    CommandAction,
    DeviceBirth,
    DeviceCommand,
    DeviceStatus,
    GatewayStatus,
    LabelSource,
    Location,
    Presence,
)
from schema.topics import MqttTopics

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


def test_status_round_trip_and_last_will_without_time() -> None:
    will = DeviceStatus(device_id="dev-1", status=Presence.OFFLINE)
    assert will.model_dump_json() == (
        '{"schema_version":1,"device_id":"dev-1","status":"offline","ts":null}'
    )
    online = DeviceStatus(device_id="dev-1", status=Presence.ONLINE, ts=NOW)
    assert DeviceStatus.model_validate_json(online.model_dump_json()) == online
    with pytest.raises(ValidationError):
        DeviceStatus.model_validate_json(b'{"device_id":"dev-1","status":"sleeping"}')


def test_birth_round_trip() -> None:
    birth = DeviceBirth(
        device_id="dev-1",
        kind="solar_inverter",
        tz="Asia/Kolkata",
        location=Location(latitude=22.5, longitude=88.3, name="Kolkata"),
        nominal_kw=6.0,
        firmware="pv-inv 7.3.2",
        interval_s=60,
        ts=NOW,
        gateway_id="sim-pool-0",
    )
    assert DeviceBirth.model_validate_json(birth.model_dump_json()) == birth
    with pytest.raises(ValidationError, match="unknown IANA time zone"):
        DeviceBirth.model_validate({**birth.model_dump(), "tz": "Mars/Base"})
    with pytest.raises(ValidationError):
        Location(latitude=91, longitude=0)


def test_gateway_status() -> None:
    status = GatewayStatus(gateway_id="sim-pool-0", status=Presence.OFFLINE, devices=1250)
    assert GatewayStatus.model_validate_json(status.model_dump_json()) == status


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"action": "anomaly"}, "needs 'anomaly'"),
        ({"action": "set_interval"}, "needs 'interval_s'"),
        ({"action": "offline", "anomaly": "spike"}, "only goes with action 'anomaly'"),
        ({"action": "anomaly", "anomaly": "meltdown"}, "spike"),
        ({"action": "anomaly", "anomaly": "spike", "duration_s": 0}, "greater than 0"),
        ({"action": "reboot"}, "anomaly"),
        ({"action": "online", "colour": "red"}, "Extra inputs"),
    ],
)
def test_incomplete_or_wrong_commands_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DeviceCommand.model_validate({"command_id": "c", "issued_at": NOW, **fields})


def test_commands_from_json() -> None:
    command = DeviceCommand.model_validate_json(
        b'{"command_id":"c-1","action":"anomaly","anomaly":"drift","magnitude":1.5,'
        b'"duration_s":3600,"issued_at":"2026-03-29T03:00:00+02:00"}'
    )
    assert (command.action, command.anomaly, command.magnitude) == (
        CommandAction.ANOMALY,
        AnomalyKind.DRIFT,
        1.5,
    )
    interval = DeviceCommand.model_validate_json(
        b'{"command_id":"c-2","action":"set_interval","interval_s":15,'
        b'"issued_at":"2026-03-29T01:00:00Z"}'
    )
    assert interval.interval_s == 15


def test_label_round_trip() -> None:
    label = AnomalyLabel(
        label_id="c-1:dev-1",
        device_id="dev-1",
        anomaly=AnomalyKind.SPIKE,
        start=datetime.fromisoformat("2026-03-29T03:15:00+02:00"),
        end=datetime.fromisoformat("2026-03-29T03:16:00+02:00"),
        first_seq=42,
        magnitude=3.0,
        nominal_kw=2.5,
        source=LabelSource.COMMAND,
        command_id="c-1",
    )
    assert AnomalyLabel.model_validate_json(label.model_dump_json()) == label


def test_topics_of_gateways_and_labels() -> None:
    assert MqttTopics().gateway_status("g1") == "wattstream/v1/gateways/g1/status"
    assert MqttTopics("ns").labels == "ns/wattstream/v1/labels"
    assert MqttTopics().device_id_of(MqttTopics().gateway_status("g1")) is None
