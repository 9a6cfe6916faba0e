"""The bridge's errors (see :mod:`stream.bridge` for the tree)."""

from __future__ import annotations


class BridgeError(Exception):
    """Base of the bridge's errors."""


class MqttUnavailable(BridgeError):
    """Retriable: the MQTT broker refused or dropped the connection; reconnect with backoff."""


class DeliveryFailed(BridgeError):
    """Retriable: Kafka did not acknowledge a message. The producer is rebuilt and MQTT
    reconnected, so the broker redelivers everything not yet acknowledged."""
