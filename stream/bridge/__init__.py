"""MQTT -> Kafka bridge: at-least-once, in order per device, invalid messages dead-lettered.

Modules: :mod:`.app` (the pipeline and its reconnect loop), :mod:`.mqtt_source` (paho on the
event loop, manual acks), :mod:`.routing` (validation: which Kafka record a message becomes),
:mod:`.partitioner` (Kafka's default partitions, each key hashed once), :mod:`.health`
(``/metrics`` and ``/healthz``), :mod:`.metrics`, :mod:`.errors`; reconnects wait with
:class:`schema.backoff.Backoff`.

Exceptions::

    Exception
     ├── BridgeError             base of this package's errors (stream.bridge.errors)
     │    ├── MqttUnavailable    retriable: broker unreachable or connection lost; reconnect
     │    └── DeliveryFailed     retriable: Kafka did not acknowledge; rebuild both sides
     └── aiokafka KafkaError     retriable here: the producer is rebuilt with backoff

Invalid input is never an exception that leaves :mod:`.routing`: it becomes a dead letter.
"""
