from __future__ import annotations

import pytest

from schema.topics import READINGS_PARTITIONS, KafkaTopics, MqttTopics

pytestmark = pytest.mark.unit


def test_documented_mqtt_tree() -> None:
    topics = MqttTopics()
    assert topics.readings("dev-1") == "wattstream/v1/devices/dev-1/readings"
    assert topics.status("dev-1") == "wattstream/v1/devices/dev-1/status"
    assert topics.commands("dev-1") == "wattstream/v1/devices/dev-1/commands"
    assert topics.all_readings == "wattstream/v1/devices/+/readings"


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("wattstream/v1/devices/dev-1/readings", "dev-1"),
        ("wattstream/v1/devices//readings", None),
        ("wattstream/v1/devices/dev-1", None),
        ("other/v1/devices/dev-1/readings", None),
        ("ns/wattstream/v1/devices/dev-1/readings", None),
    ],
)
def test_device_id_of(topic: str, expected: str | None) -> None:
    assert MqttTopics().device_id_of(topic) == expected


def test_namespaces_keep_tests_apart() -> None:
    assert MqttTopics("t1").readings("d") == "t1/wattstream/v1/devices/d/readings"
    assert MqttTopics("t1").device_id_of("t1/wattstream/v1/devices/d/readings") == "d"
    assert KafkaTopics("t1").readings == "t1.readings"
    assert {s.name for s in KafkaTopics("t1").specs()} == {
        "t1.readings",
        "t1.readings.dlq",
        "t1.device-status",
        "t1.device-birth",
        "t1.anomaly-labels",
        "t1.readings.late",
        "t1.hourly",
        "t1.forecasts",
        "t1.health",
        "t1.alerts",
    }


def test_partition_counts() -> None:
    specs = {s.name: s for s in KafkaTopics().specs()}
    assert specs["readings"].partitions == READINGS_PARTITIONS
    assert specs["device-status"].compacted
    assert not specs["readings"].compacted
    # Co-partitioned with the worker's other sources (Faust's table needs it); every label kept.
    assert specs["anomaly-labels"].partitions == READINGS_PARTITIONS
    assert not specs["anomaly-labels"].compacted
