"""Simulated fleet of timezone-aware energy devices publishing readings over MQTT.

Layers: :mod:`simulator.devices` (pure, seeded device models) -> :mod:`simulator.fleet`
(which devices, which clock) -> :mod:`simulator.publisher` (MQTT) -> :mod:`simulator.app`.
"""
