"""MQTT -> Kafka bridge: at-least-once, in order per device, invalid messages dead-lettered.

Exceptions::

    Exception
     └── BridgeError             base of this package's errors
          └── MqttUnavailable    retriable: the broker is unreachable; reconnect with backoff
"""
