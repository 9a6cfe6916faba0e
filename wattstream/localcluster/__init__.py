"""A Docker-free local cluster: real Mosquitto, PostgreSQL and Kafka on 127.0.0.1.

``up(ClusterSettings())`` installs what is missing (Debian packages; the Kafka jars from Maven
Central), starts each service as a detached process under ``home`` (``.wattstream`` by default),
waits until each one answers, creates the pipeline's Kafka topics and returns the endpoints.
``down()`` stops exactly those processes; ``status()`` reports on them. Nothing happens at
import.

Modules: :mod:`.config` (settings, endpoints), :mod:`.cluster` (up, down, status),
:mod:`.mosquitto`, :mod:`.postgres`, :mod:`.kafka` (one service each), :mod:`.mqttauth`
(Mosquitto's password file and ACL), :mod:`.localsecrets` (generated secrets), :mod:`.tlscerts`
(a local CA), :mod:`.process`
(pidfile-managed processes), :mod:`.install` (Debian packages), :mod:`.errors`.
"""

from wattstream.localcluster.cluster import down, ensure_test_tools, status, up
from wattstream.localcluster.config import ClusterSettings, Endpoints, endpoints
from wattstream.localcluster.errors import (
    InstallError,
    LocalClusterError,
    ServiceError,
    ServiceStartError,
)
from wattstream.localcluster.kafka import ensure_topics
from wattstream.localcluster.localsecrets import LocalSecrets, ensure_secrets, load_secrets
from wattstream.localcluster.mosquitto import provision, provisioned
from wattstream.localcluster.process import ServiceStatus

__all__ = [
    "ClusterSettings",
    "Endpoints",
    "InstallError",
    "LocalClusterError",
    "LocalSecrets",
    "ServiceError",
    "ServiceStartError",
    "ServiceStatus",
    "down",
    "endpoints",
    "ensure_secrets",
    "ensure_test_tools",
    "ensure_topics",
    "load_secrets",
    "provision",
    "provisioned",
    "status",
    "up",
]
