"""Starting, stopping and inspecting the whole local cluster: Mosquitto, PostgreSQL, Kafka."""

from __future__ import annotations

import logging
import time
from collections.abc import Collection

from wattstream.localcluster import kafka, mosquitto, postgres
from wattstream.localcluster.config import ClusterSettings, Endpoints, endpoints
from wattstream.localcluster.errors import LocalClusterError, ServiceError
from wattstream.localcluster.install import ensure_packages, find_program
from wattstream.localcluster.process import ServiceStatus, file_lock

logger = logging.getLogger(__name__)


def up(settings: ClusterSettings) -> Endpoints:
    """Install what is missing, start every service not running yet, wait until all are healthy.

    Services already running from this ``home`` are reused, so calling it again is harmless.
    Kafka's pipeline topics are created if missing. Blocks (it runs its own event loops): from
    async code call it through ``asyncio.to_thread``.
    """
    started = time.monotonic()
    settings.home.mkdir(parents=True, exist_ok=True)
    with file_lock(settings.home / ".lock"):
        ensure_packages(
            [
                *mosquitto.required_packages(),
                *postgres.required_packages(settings),
                *kafka.required_packages(settings),
            ]
        )
        # Start all three first, then wait: the JVM warms up while PostgreSQL starts.
        mosquitto.start(settings)
        postgres.start(settings)
        kafka.start(settings)
        mosquitto.wait_ready(settings)
        postgres.wait_ready(settings)
        kafka.wait_ready(settings)
    logger.info("local cluster up in %.1f s (home %s)", time.monotonic() - started, settings.home)
    return endpoints(settings)


def down(settings: ClusterSettings, only: Collection[str] | None = None) -> None:
    """Stop the processes :func:`up` started from this ``home`` and wait until they are gone.

    ``only`` names the services to stop (``mosquitto``, ``postgres``, ``kafka``; default all).
    Harmless when nothing runs. Every service is tried even when stopping one of them fails.
    """
    if not settings.home.exists():
        return
    failures: list[str] = []
    with file_lock(settings.home / ".lock"):
        for name, stop in (
            ("kafka", kafka.stop),
            ("postgres", postgres.stop),
            ("mosquitto", mosquitto.stop),
        ):
            if only is not None and name not in only:
                continue
            try:
                stop(settings)
            except LocalClusterError as exc:
                logger.exception("stopping %s failed", name)
                failures.append(f"{name}: {exc}")
    if failures:
        raise ServiceError("stopping the local cluster failed:\n" + "\n".join(failures))


TEST_TOOLS = {"docker-compose": "docker-compose"}
"""Programs the test suite needs beyond the cluster, by the Debian package that has them."""


def ensure_test_tools() -> None:
    """Install the Debian packages of :data:`TEST_TOOLS` that are missing."""
    ensure_packages([pkg for prog, pkg in TEST_TOOLS.items() if find_program(prog) is None])


def status(settings: ClusterSettings) -> dict[str, ServiceStatus]:
    """Whether each service of this ``home`` runs, its pid, and whether it answers on its port."""
    return {
        "mosquitto": mosquitto.status(settings),
        "postgres": postgres.status(settings),
        "kafka": kafka.status(settings),
    }
