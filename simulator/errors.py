"""The simulator's exceptions::

Exception
 └── SimulatorError
      ├── BrokerUnavailable    retriable: the broker cannot be reached or dropped us
      ├── BrokerRefused        poison: the broker refused the connection (credentials, ACL)
      └── FleetDefinitionError poison: a fleet file, ``--anomaly`` or scenario is invalid
                               (also a ValueError)
"""

from __future__ import annotations


class SimulatorError(Exception):
    """Base of the simulator's errors."""


class BrokerUnavailable(SimulatorError):
    """The MQTT broker cannot be reached (or went away); trying again may help."""


class BrokerRefused(SimulatorError):
    """The broker answered CONNACK with a refusal; trying again with the same settings won't."""


class FleetDefinitionError(SimulatorError, ValueError):
    """A fleet definition (file or flags) that cannot be simulated; the message says where."""
