"""Stream side of WattStream: the MQTT -> Kafka bridge and the Faust stream worker.

:mod:`stream.bridge` forwards device messages to Kafka; :mod:`stream.worker` is the Faust app
whose agents (thin adapters) feed the sink. Pure logic lives apart from the adapters.
"""
