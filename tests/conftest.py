"""Real services for the tests, and per-test isolation on top of them.

Where a Docker engine answers, the services come from testcontainers with the same pinned
images as ``docker-compose.yml``; elsewhere from the local cluster (``wattstream services up``),
started here if it is not running. Either way the tests talk to a real Mosquitto, Kafka and
PostgreSQL. Isolation: every test gets its own topic namespace (MQTT tree and Kafka topics),
consumer groups and a fresh database built by the Alembic migrations.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import pytest
from hypothesis import HealthCheck, settings

from schema.credentials import DeviceIdentities, device_password
from schema.topics import KafkaTopics
from wattstream import migrate
from wattstream.localcluster.localsecrets import LocalSecrets

if TYPE_CHECKING:
    from wattstream.localcluster import ClusterSettings

# Shared helpers that assert (the worker fleet's invariants, the bridge's audit) report their
# failures as pytest does in a test module: operands shown, not a bare AssertionError.
pytest.register_assert_rewrite("tests.fixtures")

# Property-based tests: "ci" (the default) is deterministic - derandomized, no example database,
# a bounded number of examples - so a run is reproducible and the unit suite stays fast;
# "explore" hunts wider and at random (HYPOTHESIS_PROFILE=explore pytest tests/unit).
settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    max_examples=100,
    deadline=None,  # a shared 2-core machine: timing is not what these tests check
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("explore", max_examples=2_000, deadline=None, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

MOSQUITTO_IMAGE = "eclipse-mosquitto:2.0.20"
KAFKA_IMAGE = "apache/kafka:3.9.1"
# The same pin as docker-compose.yml; its jobs run clean (docs/storage-timescaledb.md).
TIMESCALEDB_IMAGE = "timescale/timescaledb:2.28.3-pg16"
TIMESCALEDB_URL_VARIABLE = "WATTSTREAM_TEST_TIMESCALEDB_URL"
"""An admin URL (a role that may create databases) of a TimescaleDB server that preloads the
extension: the TimescaleDB tests use it instead of a testcontainers one."""


@dataclass(frozen=True)
class Services:
    mqtt_host: str
    mqtt_port: int
    kafka_bootstrap: str
    database_url: str
    admin_database_url: str
    source: str
    """``testcontainers`` or ``local``: where the services came from."""
    secrets: LocalSecrets | None = None
    """The local cluster's credentials (``None``: an anonymous testcontainers broker)."""

    def mqtt_auth(self, user: str) -> dict[str, str]:
        """``username``/``password`` keyword arguments for a client acting as ``user``: the
        ``bridge`` (reads devices' topics), the ``api`` (publishes commands) or a device or
        gateway id (provisioned first: :func:`provision`)."""
        if self.secrets is None:
            return {}
        passwords = {
            "bridge": self.secrets.mqtt_bridge_password,
            "api": self.secrets.mqtt_api_password,
            "operator": self.secrets.mqtt_operator_password,
        }
        password = passwords.get(user) or device_password(self.secrets.device_root_key, user)
        return {"username": user, "password": password}


DEFAULT_FLEET = DeviceIdentities(devices=tuple(f"dev-{i:05d}" for i in range(1000)))
"""Provisioned at session start: the ids of every default fleet up to 1,000 devices."""


def private_mqtt_auth(cluster: ClusterSettings, user: str) -> dict[str, str]:
    """Like :meth:`Services.mqtt_auth`, for a private cluster of a test (its own secrets)."""
    from wattstream.localcluster import load_secrets  # noqa: PLC0415

    secrets = load_secrets(cluster.secrets_path)
    passwords = {
        "bridge": secrets.mqtt_bridge_password,
        "api": secrets.mqtt_api_password,
        "operator": secrets.mqtt_operator_password,
    }
    password = passwords.get(user) or device_password(secrets.device_root_key, user)
    return {"username": user, "password": password}


def provision_simulator(services: Services, *args: str) -> None:
    """Let the devices of ``python -m simulator *args`` connect to the session's broker."""
    if services.source != "local":
        return
    from wattstream import localcluster  # noqa: PLC0415
    from wattstream.launcher import ServiceProcess, provision_simulator  # noqa: PLC0415

    simulator = ServiceProcess("simulator", "simulator", {}, args)
    provision_simulator(localcluster.ClusterSettings(), simulator)


def provision(services: Services, identities: DeviceIdentities) -> None:
    """Let ``identities`` connect to the session's broker (no-op on an anonymous one)."""
    if services.source != "local":
        return
    from wattstream import localcluster  # noqa: PLC0415

    localcluster.provision(localcluster.ClusterSettings(), identities)


def docker_engine_answers() -> bool:
    if os.environ.get("WATTSTREAM_TEST_NO_DOCKER"):
        return False
    try:
        import docker  # noqa: PLC0415 - only needed for this probe

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - any failure means "no engine": fall back to local services
        return False


@contextlib.contextmanager
def _testcontainer_services() -> Iterator[Services]:
    from testcontainers.kafka import KafkaContainer  # noqa: PLC0415
    from testcontainers.mqtt import MosquittoContainer  # noqa: PLC0415
    from testcontainers.postgres import PostgresContainer  # noqa: PLC0415

    with (
        MosquittoContainer(MOSQUITTO_IMAGE) as mqtt,
        KafkaContainer(KAFKA_IMAGE).with_kraft() as kafka,
        PostgresContainer(TIMESCALEDB_IMAGE, driver=None) as pg,
    ):
        url = pg.get_connection_url()
        yield Services(
            mqtt_host=mqtt.get_container_host_ip(),
            mqtt_port=int(mqtt.get_exposed_port(mqtt.MQTT_PORT)),
            kafka_bootstrap=kafka.get_bootstrap_server(),
            database_url=url,
            admin_database_url=url.rsplit("/", 1)[0] + "/postgres",
            source="testcontainers",
        )


@contextlib.contextmanager
def _local_services() -> Iterator[Services]:
    from wattstream import localcluster  # noqa: PLC0415
    from wattstream.launcher import credential_environment  # noqa: PLC0415

    settings = localcluster.ClusterSettings()
    endpoints = localcluster.up(settings)
    secrets = localcluster.load_secrets(settings.secrets_path)
    # The cluster's credentials for every settings object built here and every process spawned
    # (bridge and API users, API keys, the simulator's device key), as `services env` prints.
    saved = {key: os.environ.get(key) for key in credential_environment(secrets)}
    os.environ.update(credential_environment(secrets))
    localcluster.provision(settings, DEFAULT_FLEET)
    try:
        yield Services(
            mqtt_host=endpoints.mqtt_host,
            mqtt_port=endpoints.mqtt_port,
            kafka_bootstrap=endpoints.kafka_bootstrap,
            database_url=endpoints.database_url,
            admin_database_url=endpoints.admin_database_url,
            source="local",
            secrets=secrets,
        )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    factory = _testcontainer_services if docker_engine_answers() else _local_services
    with factory() as found:
        yield found


@pytest.fixture
def namespace() -> str:
    """A name no other test uses: prefix of this test's MQTT tree and Kafka topics."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def kafka_topics(services: Services, namespace: str) -> KafkaTopics:
    from wattstream.localcluster import ensure_topics  # noqa: PLC0415

    topics = KafkaTopics(namespace)
    await ensure_topics(services.kafka_bootstrap, topics.specs())
    return topics


@contextlib.asynccontextmanager
async def migrated_database(services: Services) -> AsyncIterator[str]:
    """A fresh database migrated to head, dropped on exit; yields its URL."""
    name = f"wattstream_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(services.admin_database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = services.database_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        await asyncio.to_thread(migrate.upgrade, url)
        yield url
    finally:
        admin = await asyncpg.connect(services.admin_database_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def database(services: Services) -> AsyncIterator[str]:
    """URL of a fresh database migrated to head; dropped after the test."""
    async with migrated_database(services) as url:
        yield url


@dataclass
class Spawned:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


Spawn = Callable[..., Spawned]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start ``python -m <module>`` as a real process; terminate it (then kill) after the test."""
    spawned: list[Spawned] = []

    def start(name: str, module: str, env: dict[str, str], *args: str) -> Spawned:
        log = tmp_path / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", module, *args],
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        spawned.append(Spawned(name, process, log))
        return spawned[-1]

    yield start
    for item in spawned:
        if item.process.poll() is None:
            item.process.terminate()
    for item in spawned:
        try:
            item.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            item.process.kill()
            item.process.wait()
        # Shown by pytest with the captured output of a failing test.
        print(f"----- {item.name} (exit {item.process.returncode}) -----\n{item.log_tail()}")


def free_port() -> int:
    (port,) = free_ports(1)
    return port


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports nothing listens on now (the kernel's pick for port 0; all bound
    at once, so no two are the same)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


# ---------------------------------------------------------------- storage modes (issue 7)
@pytest.fixture(scope="session")
def timescaledb_admin_url() -> Iterator[str]:
    """Admin URL of a TimescaleDB server: ``$WATTSTREAM_TEST_TIMESCALEDB_URL`` when set, else
    the compose image through testcontainers where a Docker engine answers, else a skip."""
    if given := os.environ.get(TIMESCALEDB_URL_VARIABLE):
        yield given
        return
    if not docker_engine_answers():
        pytest.skip(
            f"no TimescaleDB server: {TIMESCALEDB_URL_VARIABLE} is not set and no Docker engine"
            f" answers for testcontainers ({TIMESCALEDB_IMAGE})"
        )
    from testcontainers.postgres import PostgresContainer  # noqa: PLC0415

    with PostgresContainer(TIMESCALEDB_IMAGE, driver=None) as pg:
        yield pg.get_connection_url().rsplit("/", 1)[0] + "/postgres"


@contextlib.asynccontextmanager
async def storage_mode_database(admin: str, mode: str) -> AsyncIterator[str]:
    """A fresh database on the server of ``admin`` migrated in storage ``mode``; dropped after."""
    from schema.storage import StorageOptions  # noqa: PLC0415

    name = f"wattstream_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = admin.rsplit("/", 1)[0] + f"/{name}"
    try:
        # No compression job: it would compress the tests' old rows at a moment of its choosing.
        options = StorageOptions(
            mode="timescaledb" if mode == "timescaledb" else "postgresql", compress_after=None
        )
        await asyncio.to_thread(migrate.upgrade, url, "head", options)
        yield url
    finally:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture(params=["postgresql", pytest.param("timescaledb", marks=pytest.mark.timescaledb)])
async def storage_database(
    request: pytest.FixtureRequest, services: Services
) -> AsyncIterator[str]:
    """A fresh database migrated in each storage mode (``storage_info`` says which)."""
    mode = request.param
    admin = (
        services.admin_database_url
        if mode == "postgresql"
        else request.getfixturevalue("timescaledb_admin_url")
    )
    async with storage_mode_database(admin, mode) as url:
        yield url
