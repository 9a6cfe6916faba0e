"""WattStream contracts shared by the services.

Wire models (:mod:`schema.wire`, :mod:`schema.device_messages`), topic names
(:mod:`schema.topics`), result records (:mod:`schema.results`), table definitions
(:mod:`schema.tables`), the storage modes and the Alembic migrations (:mod:`schema.storage`,
``schema/migrations``), the delivery journal (:mod:`schema.journal`), the derivation of device
credentials (:mod:`schema.credentials`), the connection blocks every service's settings share
(:mod:`schema.connections`) and the contract between a service's settings and its flags and
variables (:mod:`schema.commandline`). The services (``simulator``, ``stream``, ``api``)
import this package and never each other; this package imports none of them, and no client
library (paho, aiokafka, asyncpg), no subprocess and no settings source (import-linter enforces
it). The tooling that runs things (the ``wattstream`` command, the local cluster) lives in
:mod:`wattstream`. Importing any module of this package does no I/O.
"""
