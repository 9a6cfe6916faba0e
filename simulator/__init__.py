"""Simulated fleet of timezone-aware energy devices publishing readings over MQTT.

Layers, pure first: :mod:`simulator.profiles`, :mod:`simulator.weather`,
:mod:`simulator.localtime` and :mod:`simulator.randomness` feed the seeded device models of
:mod:`simulator.devices`; :mod:`simulator.fleet` (and :mod:`simulator.fleetfile`,
:mod:`simulator.scenarios`) say which devices there are; :mod:`simulator.behaviour` is what each
device does over time (commands, anomalies, delivery faults); :mod:`simulator.connection` and
:mod:`simulator.transport` put them on MQTT; :mod:`simulator.app` runs the clock.
:mod:`simulator.history` exports the same models' hourly energy for training.
"""
