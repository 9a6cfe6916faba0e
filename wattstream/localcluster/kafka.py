"""The local cluster's Kafka broker (KRaft, one node): jars, storage, start, health, topics, stop.

Files under ``home/kafka``: ``libs/`` (the jars, unless ``kafka_jars_dir`` points elsewhere),
``cluster.id``, ``server.properties`` and ``log4j.properties`` (rendered from the committed
templates next to this module), ``data/`` (the log directory), ``server.log`` (the broker's
log), ``console.log`` (its stdout/stderr) and ``kafka.pid``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from schema.topics import KafkaTopics, KafkaTopicSpec
from stream import provision
from wattstream.localcluster.config import ClusterSettings, endpoints
from wattstream.localcluster.errors import InstallError, ServiceError, ServiceStartError
from wattstream.localcluster.install import find_program
from wattstream.localcluster.process import (
    ManagedProcess,
    ServiceStatus,
    file_lock,
    port_open,
    run,
)
from wattstream.localcluster.templates import render

logger = logging.getLogger(__name__)

NAME = "kafka"
KAFKA_VERSION = "3.9.1"
_READY_TIMEOUT_S = 120
_STOP_TIMEOUT_S = 30  # a controlled shutdown of one node takes a few seconds
_ADMIN_TIMEOUT_MS = 5000
_JVM_OPTIONS = ("-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-Djava.awt.headless=true")


@dataclass(frozen=True)
class KafkaLayout:
    directory: Path
    jars: Path
    cluster_id: Path
    config: Path
    log4j_config: Path
    data: Path
    server_log: Path
    console: Path
    pidfile: Path

    @classmethod
    def of(cls, settings: ClusterSettings) -> KafkaLayout:
        directory = settings.home / NAME
        return cls(
            directory=directory,
            jars=settings.jars_dir,
            cluster_id=directory / "cluster.id",
            config=directory / "server.properties",
            log4j_config=directory / "log4j.properties",
            data=directory / "data",
            server_log=directory / "server.log",
            console=directory / "console.log",
            pidfile=directory / "kafka.pid",
        )


def render_server_properties(settings: ClusterSettings) -> str:
    return render(
        "server.properties",
        host=settings.host,
        port=settings.kafka_port,
        controller_port=settings.kafka_controller_port,
        log_dirs=KafkaLayout.of(settings).data,
    )


def render_log4j_properties(settings: ClusterSettings) -> str:
    return render("log4j.properties", server_log=KafkaLayout.of(settings).server_log)


def new_cluster_id() -> str:
    """A random cluster id as Kafka's ``Uuid.randomUuid()`` makes it.

    16 random bytes, base64url without padding (22 characters); like Kafka, never one that starts
    with a dash, which a command line would take for an option.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def _pom_text() -> str:
    return resources.files("wattstream.localcluster").joinpath("pom.xml").read_text()


def jars_stamp() -> str:
    """What the jar directory's marker file holds when its jars match the committed pom.xml."""
    digest = hashlib.sha256(_pom_text().encode()).hexdigest()
    return f"kafka {KAFKA_VERSION} pom.xml sha256 {digest}\n"


def _marker(jars: Path) -> Path:
    return jars / ".wattstream-jars"


def jars_present(jars: Path) -> bool:
    try:
        return _marker(jars).read_text() == jars_stamp()
    except OSError:
        return False


def required_packages(settings: ClusterSettings) -> list[str]:
    packages = [] if find_program("java") else ["default-jre-headless"]
    if not jars_present(settings.jars_dir) and find_program("mvn") is None:
        packages.append("maven")
    return packages


def ensure_jars(jars: Path) -> None:
    """Download the jars of the committed pom.xml into ``jars`` unless they are there already."""
    with file_lock(jars.with_name(f"{jars.name}.lock")):
        if jars_present(jars):
            return
        mvn = find_program("mvn")
        if mvn is None:
            raise InstallError("Maven (mvn) is needed to download the Kafka jars")
        staging = jars.with_name(f"{jars.name}.staging")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        pom = staging / "pom.xml"
        pom.write_text(_pom_text())
        logger.info("kafka: downloading Kafka %s jars into %s (once)", KAFKA_VERSION, jars)
        try:
            run(
                [
                    str(mvn),
                    "-q",
                    "-B",
                    "-f",
                    str(pom),
                    "dependency:copy-dependencies",
                    "-DincludeScope=runtime",
                    f"-DoutputDirectory={staging / 'libs'}",
                ],
                what="downloading the Kafka jars with Maven",
                cwd=staging,
                timeout=1800,
            )
        except ServiceError as exc:
            raise InstallError(str(exc)) from exc
        _marker(staging / "libs").write_text(jars_stamp())
        shutil.rmtree(jars, ignore_errors=True)
        (staging / "libs").rename(jars)
        shutil.rmtree(staging)
        logger.info("kafka: %d jars in %s", len(list(jars.glob("*.jar"))), jars)


def _cluster_id(layout: KafkaLayout) -> str:
    """The cluster id kept in ``cluster.id``, made on first use (or read back from storage)."""
    with contextlib.suppress(OSError):
        return layout.cluster_id.read_text().strip()
    meta = layout.data / "meta.properties"
    cluster_id = new_cluster_id()
    with contextlib.suppress(OSError):
        for line in meta.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "cluster.id":
                cluster_id = value.strip()
    layout.cluster_id.write_text(f"{cluster_id}\n")
    return cluster_id


def _java() -> Path:
    java = find_program("java")
    if java is None:
        raise ServiceStartError(NAME, "java is not installed", "")
    return java


def _classpath(layout: KafkaLayout) -> str:
    return f"{layout.jars}/*"  # the java launcher expands the wildcard itself


def _format_storage(layout: KafkaLayout) -> None:
    if (layout.data / "meta.properties").exists():
        return
    cluster_id = _cluster_id(layout)
    logger.info("kafka: formatting %s for cluster %s", layout.data, cluster_id)
    output = run(
        [
            str(_java()),
            f"-Dlog4j.configuration=file:{layout.log4j_config}",
            "-cp",
            _classpath(layout),
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(layout.config),
        ],
        what="formatting the Kafka storage",
        cwd=layout.directory,
    )
    logger.info("kafka: %s", output.strip())


def managed_process(settings: ClusterSettings) -> ManagedProcess:
    layout = KafkaLayout.of(settings)
    return ManagedProcess(
        name=NAME,
        pidfile=layout.pidfile,
        logs=(layout.console, layout.server_log),
        markers=("kafka.Kafka", str(layout.config)),
    )


def start(settings: ClusterSettings) -> None:
    """Fetch the jars, format the storage if needed and start the broker; does not wait."""
    process = managed_process(settings)
    ports = (settings.kafka_port, settings.kafka_controller_port)
    if process.running_pid(settings.host, ports, home=settings.home) is not None:
        return
    layout = KafkaLayout.of(settings)
    ensure_jars(layout.jars)
    layout.data.mkdir(parents=True, exist_ok=True)
    layout.config.write_text(render_server_properties(settings))
    layout.log4j_config.write_text(render_log4j_properties(settings))
    _format_storage(layout)
    process.spawn(
        [
            str(_java()),
            *_JVM_OPTIONS,
            f"-Dlog4j.configuration=file:{layout.log4j_config}",
            "-cp",
            _classpath(layout),
            "kafka.Kafka",
            str(layout.config),
        ],
        cwd=layout.directory,
    )


def _admin(bootstrap: str) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="wattstream-localcluster",
        request_timeout_ms=_ADMIN_TIMEOUT_MS,
    )


async def _lists_topics(bootstrap: str) -> bool:
    admin = _admin(bootstrap)
    try:
        await admin.start()
        await admin.list_topics()
    except (KafkaError, OSError):
        return False
    finally:
        await admin.close()
    return True


async def ensure_topics(bootstrap: str, specs: Sequence[KafkaTopicSpec]) -> None:
    """Create the topics of ``specs`` that do not exist yet (as every service does at start)."""
    try:
        await provision.ensure_topics(bootstrap, specs, client_id="wattstream-localcluster")
    except provision.TopicProvisionError as exc:
        raise ServiceError(str(exc)) from exc


def wait_ready(settings: ClusterSettings) -> None:
    """Wait until the broker answers an admin client, then create the pipeline's topics."""
    bootstrap = endpoints(settings).kafka_bootstrap
    managed_process(settings).wait_until(
        lambda: (
            port_open(settings.host, settings.kafka_port) and asyncio.run(_lists_topics(bootstrap))
        ),
        timeout=_READY_TIMEOUT_S,
        what="answering admin requests",
    )
    asyncio.run(ensure_topics(bootstrap, KafkaTopics().specs()))
    logger.info("kafka: ready on %s", bootstrap)


def stop(settings: ClusterSettings) -> None:
    managed_process(settings).stop(timeout=_STOP_TIMEOUT_S)


def status(settings: ClusterSettings) -> ServiceStatus:
    return managed_process(settings).status(settings.host, settings.kafka_port)
