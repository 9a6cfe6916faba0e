"""The local cluster for real: up() starts working services, is idempotent, down() stops them.

Uses its own home (a pytest temporary directory, mode 0700, so as root PostgreSQL's files take
the /var/tmp fallback) and free ports, so it never touches the shared development cluster and
nothing else holding a port can fail it.
The Kafka jars are shared with the development cluster's default location to avoid a second
download.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from schema.credentials import DeviceIdentities, device_password
from schema.topics import KafkaTopicSpec, MqttTopics
from wattstream.localcluster import (
    ClusterSettings,
    Endpoints,
    ServiceStatus,
    down,
    endpoints,
    ensure_topics,
    load_secrets,
    provision,
    status,
    up,
)

from ..conftest import free_ports

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]


def _gone(pid: int) -> bool:
    """Whether ``pid`` has exited (an unreaped zombie counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] in {"Z", "X"}


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> ClusterSettings:
    mqtt, kafka, controller, pg = free_ports(4)
    return ClusterSettings(
        home=tmp_path_factory.mktemp("localcluster") / "home",
        mqtt_port=mqtt,
        kafka_port=kafka,
        kafka_controller_port=controller,
        pg_port=pg,
        kafka_jars_dir=ClusterSettings(home=REPO / ".wattstream").jars_dir,
    )


@pytest.fixture(scope="module")
def cluster(settings: ClusterSettings) -> Iterator[Endpoints]:
    postgres_dir = settings.home / "postgres"
    try:
        yield up(settings)
    finally:
        down(settings)
        if postgres_dir.is_symlink():  # the /var/tmp fallback outlives the temporary home
            shutil.rmtree(postgres_dir.resolve(), ignore_errors=True)


@pytest.fixture(scope="module")
def first_status(cluster: Endpoints, settings: ClusterSettings) -> dict[str, ServiceStatus]:
    return status(settings)


def test_up_returns_the_endpoints(cluster: Endpoints, settings: ClusterSettings) -> None:
    assert cluster == endpoints(settings)
    assert cluster.kafka_bootstrap == f"127.0.0.1:{settings.kafka_port}"


def test_every_service_runs(first_status: dict[str, ServiceStatus]) -> None:
    assert set(first_status) == {"mosquitto", "postgres", "kafka"}
    for service in first_status.values():
        assert service.running, service
        assert service.pid is not None
        assert "listening" in service.detail


async def test_mqtt_round_trip(cluster: Endpoints, settings: ClusterSettings) -> None:
    # A device of its own, provisioned at runtime, publishes to its readings; the bridge reads.
    secrets = load_secrets(settings.secrets_path)
    device = f"rt-{uuid.uuid4().hex[:8]}"
    provision(settings, DeviceIdentities(devices=(device,)))
    topic = MqttTopics().readings(device)
    async with (
        aiomqtt.Client(
            cluster.mqtt_host,
            cluster.mqtt_port,
            username="bridge",
            password=secrets.mqtt_bridge_password,
        ) as client,
        aiomqtt.Client(
            cluster.mqtt_host,
            cluster.mqtt_port,
            username=device,
            password=device_password(secrets.device_root_key, device),
        ) as device_client,
    ):
        await client.subscribe(topic, qos=1)
        await device_client.publish(topic, b"hello", qos=1)
        async with asyncio.timeout(10):
            message = await anext(aiter(client.messages))
    assert message.payload == b"hello"
    # Anonymous clients are refused.
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(cluster.mqtt_host, cluster.mqtt_port):
            pass


async def test_kafka_round_trip(cluster: Endpoints) -> None:
    topic = f"test.localcluster.{uuid.uuid4().hex}"
    await ensure_topics(cluster.kafka_bootstrap, [KafkaTopicSpec(topic, 3)])
    await ensure_topics(cluster.kafka_bootstrap, [KafkaTopicSpec(topic, 3)])  # idempotent
    producer = AIOKafkaProducer(bootstrap_servers=cluster.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello", key=b"device-1")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=cluster.kafka_bootstrap,
        group_id=f"test-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
        partitions = consumer.partitions_for_topic(topic)
    finally:
        await consumer.stop()
    assert (record.key, record.value) == (b"device-1", b"hello")
    assert partitions == {0, 1, 2}


async def test_pipeline_topics_exist(cluster: Endpoints) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=cluster.kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(["readings", "readings.dlq", "device-status"])
        configs = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, "device-status")]
        )
    finally:
        await admin.close()
    partitions = {topic["topic"]: len(topic["partitions"]) for topic in described}
    assert partitions == {"readings": 6, "readings.dlq": 1, "device-status": 6}
    entries = {entry[0]: entry[1] for entry in configs[0].resources[0][4]}
    assert entries["cleanup.policy"] == "compact"


async def test_postgres_query(cluster: Endpoints, settings: ClusterSettings) -> None:
    connection = await asyncpg.connect(cluster.database_url)
    try:
        row = await connection.fetchrow("SELECT current_database(), current_user, 6 * 7")
        fsync = await connection.fetchval("SHOW fsync")
    finally:
        await connection.close()
    assert tuple(row) == ("wattstream", "wattstream", 42)
    assert fsync == "on"
    admin = await asyncpg.connect(cluster.admin_database_url)
    try:
        assert await admin.fetchval("SELECT current_database()") == "postgres"
    finally:
        await admin.close()


def test_postgres_runs_as_the_postgres_user_when_root(
    first_status: dict[str, ServiceStatus], settings: ClusterSettings
) -> None:
    if os.geteuid() != 0:
        pytest.skip("only as root does PostgreSQL run as another user")
    pid = first_status["postgres"].pid
    assert Path(f"/proc/{pid}").stat().st_uid == Path("/var/lib/postgresql").stat().st_uid
    data = (settings.home / "postgres" / "data").resolve()
    assert (data / "PG_VERSION").exists()


def test_up_again_reuses_the_running_services(
    first_status: dict[str, ServiceStatus], settings: ClusterSettings
) -> None:
    assert up(settings) == endpoints(settings)
    again = status(settings)
    assert {name: s.pid for name, s in again.items()} == {
        name: s.pid for name, s in first_status.items()
    }


def test_down_stops_everything(
    first_status: dict[str, ServiceStatus], settings: ClusterSettings
) -> None:
    down(settings)
    after = status(settings)
    assert all(not service.running and service.pid is None for service in after.values()), after
    for name, service in first_status.items():
        assert service.pid is not None
        assert _gone(service.pid), f"{name} (pid {service.pid}) is still running"
    assert not list(settings.home.glob("*/*.pid"))
    down(settings)  # harmless when nothing runs


def test_a_pidfile_of_another_process_is_stale(
    first_status: dict[str, ServiceStatus], settings: ClusterSettings
) -> None:
    """A recycled pid (here: this test process) is neither reported as running nor signalled."""
    pidfile = settings.home / "mosquitto" / "mosquitto.pid"
    pidfile.write_text(f"{os.getpid()}\n")
    assert status(settings)["mosquitto"] == ServiceStatus(
        running=False, pid=None, detail=f"not running (stale pid {os.getpid()})"
    )
    down(settings)  # would kill this test process if it trusted the pidfile
    assert not pidfile.exists()
