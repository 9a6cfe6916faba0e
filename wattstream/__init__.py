"""The ``wattstream`` command and the Docker-free local cluster: tooling, not a service.

- :mod:`wattstream.cli`: the ``wattstream`` command (``python -m wattstream``). Service
  sub-commands replace the process with the service's own entry point, so this package never
  imports a service's code.
- :mod:`wattstream.launcher`: ``wattstream run``, every service as a child process.
- :mod:`wattstream.localcluster`: Mosquitto, Kafka (KRaft) and PostgreSQL from Debian packages
  and Maven Central, each with its own data directory on loopback ports.
- :mod:`wattstream.migrate`: runs the Alembic migrations of :mod:`schema.migrations`.

The contracts the services share stay in :mod:`schema`, which imports nothing from here.
"""
