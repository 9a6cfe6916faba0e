"""Topic names: the MQTT topic tree devices publish under and the Kafka topics of the pipeline.

Both are contracts: the simulator, the bridge, the stream worker and the API must agree on them.
A ``namespace`` prefixes every name so that tests (and several fleets on one broker) stay apart;
the default, empty namespace gives the documented names.
"""

from __future__ import annotations

from dataclasses import dataclass

MQTT_ROOT = "wattstream/v1"
"""Root of the documented MQTT topic tree: ``wattstream/v1/devices/{device_id}/...``."""

READINGS_PARTITIONS = 6
"""Partitions of ``readings``: the most stream workers that can share the load."""


DEVICE_STATE_TABLE = "device-state"
"""The stream worker's per-device state table (changelog: ``{app id}-device-state-changelog``)."""

WEEK_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class KafkaTopicSpec:
    """A Kafka topic the pipeline needs, as every service creates it when it is missing."""

    name: str
    partitions: int
    compacted: bool = False
    retention_ms: int | None = None
    """``retention.ms`` (``None``: the broker's default; compacted topics keep every key)."""
    replication: int = 1
    """Replicas (the local cluster and compose run one broker)."""

    def configs(self) -> dict[str, str]:
        """The topic-level configuration it is created with."""
        out = {"cleanup.policy": "compact" if self.compacted else "delete"}
        if self.retention_ms is not None:
            out["retention.ms"] = str(self.retention_ms)
        return out


def scoped_app_id(app_id: str, namespace: str) -> str:
    """The stream worker's Faust application id under a namespace: its consumer group and the
    prefix of its internal topics, so that two namespaces never share either."""
    return f"{namespace}.{app_id}" if namespace else app_id


def changelog_topic(app_id: str, table: str = DEVICE_STATE_TABLE) -> str:
    """Faust's name for the changelog of ``table`` of the application ``app_id``."""
    return f"{app_id}-{table}-changelog"


@dataclass(frozen=True, slots=True)
class MqttTopics:
    """The MQTT topic tree under one root (``wattstream/v1`` unless a namespace is given)."""

    namespace: str = ""

    @property
    def root(self) -> str:
        return f"{self.namespace}/{MQTT_ROOT}" if self.namespace else MQTT_ROOT

    def readings(self, device_id: str) -> str:
        return f"{self.root}/devices/{device_id}/readings"

    def status(self, device_id: str) -> str:
        return f"{self.root}/devices/{device_id}/status"

    def commands(self, device_id: str) -> str:
        return f"{self.root}/devices/{device_id}/commands"

    def birth(self, device_id: str) -> str:
        """Retained metadata sent on connect (:class:`schema.device_messages.DeviceBirth`)."""
        return f"{self.root}/devices/{device_id}/birth"

    def gateway_status(self, gateway_id: str) -> str:
        """Retained presence of a connection carrying many devices (``GatewayStatus``)."""
        return f"{self.root}/gateways/{gateway_id}/status"

    @property
    def labels(self) -> str:
        """Ground-truth labels of injected anomalies (``AnomalyLabel``), not retained."""
        return f"{self.root}/labels"

    @property
    def all_status(self) -> str:
        return f"{self.root}/devices/+/status"

    @property
    def all_birth(self) -> str:
        return f"{self.root}/devices/+/birth"

    @property
    def all_readings(self) -> str:
        """Subscription filter matching every device's readings topic."""
        return f"{self.root}/devices/+/readings"

    def device_id_of(self, topic: str) -> str | None:
        """The device id in a ``.../devices/{id}/...`` topic under this root, else ``None``."""
        prefix = f"{self.root}/devices/"
        if not topic.startswith(prefix):
            return None
        device_id, sep, _rest = topic[len(prefix) :].partition("/")
        return device_id if sep and device_id else None


@dataclass(frozen=True, slots=True)
class KafkaTopics:
    """Kafka topic names of the pipeline, optionally namespaced (``{namespace}.readings``)."""

    namespace: str = ""

    def _name(self, base: str) -> str:
        return f"{self.namespace}.{base}" if self.namespace else base

    @property
    def readings(self) -> str:
        """Validated device readings, keyed by device id (per-device order)."""
        return self._name("readings")

    @property
    def readings_dlq(self) -> str:
        """Messages that failed validation, with the original bytes and the reason."""
        return self._name("readings.dlq")

    @property
    def device_status(self) -> str:
        """Latest ``online``/``offline`` status per device, compacted by device id."""
        return self._name("device-status")

    @property
    def device_birth(self) -> str:
        """Latest birth (metadata) message per device, compacted by device id."""
        return self._name("device-birth")

    @property
    def readings_late(self) -> str:
        """Readings that arrived after their hour closed (their hour is restated)."""
        return self._name("readings.late")

    @property
    def anomaly_labels(self) -> str:
        """Ground truth of injected anomalies (``AnomalyLabel``, from the MQTT ``labels``
        topic), keyed by device id."""
        return self._name("anomaly-labels")

    @property
    def hourly(self) -> str:
        return self._name("hourly")

    @property
    def forecasts(self) -> str:
        return self._name("forecasts")

    @property
    def health(self) -> str:
        return self._name("health")

    @property
    def alerts(self) -> str:
        return self._name("alerts")

    @property
    def results(self) -> tuple[str, ...]:
        """The topics the stream worker writes its results to."""
        return (self.readings_late, self.hourly, self.forecasts, self.health, self.alerts)

    def specs(self, *, readings_partitions: int = READINGS_PARTITIONS) -> list[KafkaTopicSpec]:
        """Every topic of the pipeline but the worker's internal ones (:meth:`worker_specs`)."""
        return [
            KafkaTopicSpec(self.readings, readings_partitions, retention_ms=WEEK_MS),
            KafkaTopicSpec(self.readings_dlq, 1, retention_ms=WEEK_MS),
            KafkaTopicSpec(self.device_status, readings_partitions, compacted=True),
            KafkaTopicSpec(self.device_birth, readings_partitions, compacted=True),
            KafkaTopicSpec(self.anomaly_labels, readings_partitions, retention_ms=WEEK_MS),
            *(
                KafkaTopicSpec(name, readings_partitions, retention_ms=WEEK_MS)
                for name in self.results
            ),
        ]

    def worker_specs(
        self, app_id: str, *, readings_partitions: int = READINGS_PARTITIONS
    ) -> list[KafkaTopicSpec]:
        """:meth:`specs` and the internal topics of the worker whose (unscoped) id is
        ``app_id``: its table's changelog, compacted, with the source topics' partitions."""
        changelog = changelog_topic(scoped_app_id(app_id, self.namespace))
        return [
            *self.specs(readings_partitions=readings_partitions),
            KafkaTopicSpec(changelog, readings_partitions, compacted=True),
        ]
