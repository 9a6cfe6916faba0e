"""WattStream contracts shared by the services.

Wire models (:mod:`schema.wire`), topic names (:mod:`schema.topics`), table definitions
(:mod:`schema.tables`) and the Alembic migrations live here. The services (``simulator``,
``stream``, ``api``) import this package and never each other; this package imports none of them.

Two operational pieces also live here because they belong to no single service: the
``wattstream`` command-line launcher (:mod:`schema.cli`, which starts services as separate
processes, never by importing them) and the Docker-free local cluster
(:mod:`schema.localcluster`). Importing any module of this package does no I/O.
"""
