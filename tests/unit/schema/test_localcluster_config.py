"""Configuration of the local cluster: settings, endpoints, rendered templates, cluster ids."""

from __future__ import annotations

import base64
import os
import re
import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from wattstream.launcher import service_environment
from wattstream.localcluster import ClusterSettings, endpoints
from wattstream.localcluster.kafka import (
    KAFKA_VERSION,
    jars_stamp,
    new_cluster_id,
    render_log4j_properties,
    render_server_properties,
)
from wattstream.localcluster.localsecrets import LocalSecrets
from wattstream.localcluster.mosquitto import render_config
from wattstream.localcluster.postgres import (
    PostgresLayout,
    fallback_directory,
    has_timescaledb,
    server_arguments,
)

pytestmark = pytest.mark.unit

PLACEHOLDER = re.compile(r"\$\{")


@pytest.fixture
def settings(tmp_path: Path) -> ClusterSettings:
    return ClusterSettings(
        home=tmp_path / "home",
        mqtt_port=21883,
        kafka_port=29092,
        kafka_controller_port=29093,
        pg_port=25432,
    )


def properties(text: str) -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    )
    return {key.strip(): value.strip() for key, value in pairs}


def directives(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("WATTSTREAM_CLUSTER_")]:
        monkeypatch.delenv(name)
    settings = ClusterSettings()
    assert settings.home == Path(".wattstream").resolve()
    assert settings.home.is_absolute()
    assert (settings.host, settings.mqtt_port, settings.kafka_port) == ("127.0.0.1", 11883, 19092)
    assert (settings.kafka_controller_port, settings.pg_port) == (19093, 15432)
    assert settings.jars_dir == settings.home / "kafka" / "libs"


def test_settings_come_from_prefixed_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("WATTSTREAM_CLUSTER_HOME", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("WATTSTREAM_CLUSTER_PG_PORT", "35432")
    monkeypatch.setenv("WATTSTREAM_CLUSTER_KAFKA_JARS_DIR", str(tmp_path / "jars"))
    settings = ClusterSettings()
    assert settings.home == tmp_path / "elsewhere"
    assert settings.pg_port == 35432
    assert settings.jars_dir == tmp_path / "jars"


def test_settings_are_frozen(settings: ClusterSettings) -> None:
    with pytest.raises(ValidationError):
        settings.mqtt_port = 1  # type: ignore[misc]


def test_home_with_whitespace_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="whitespace"):
        ClusterSettings(home=tmp_path / "my home")


def test_endpoints(settings: ClusterSettings) -> None:
    found = endpoints(settings)
    assert (found.mqtt_host, found.mqtt_port) == ("127.0.0.1", 21883)
    assert found.kafka_bootstrap == "127.0.0.1:29092"
    assert found.database_url == "postgresql://wattstream:wattstream@127.0.0.1:25432/wattstream"
    assert found.admin_database_url == (
        "postgresql://wattstream:wattstream@127.0.0.1:25432/postgres"
    )


def test_endpoints_quote_the_password() -> None:
    settings = ClusterSettings(pg_password=SecretStr("p@ss:w/rd"), pg_database="db", pg_port=15432)
    assert endpoints(settings).database_url == (
        "postgresql://wattstream:p%40ss%3Aw%2Frd@127.0.0.1:15432/db"
    )


def test_mosquitto_config(settings: ClusterSettings) -> None:
    text = render_config(settings, user="mosquitto")
    assert not PLACEHOLDER.search(text)
    lines = directives(text)
    assert "user mosquitto" in lines
    assert "listener 21883 127.0.0.1" in lines
    assert "allow_anonymous false" in lines
    assert f"password_file {settings.home}/mosquitto/passwd" in lines
    assert f"acl_file {settings.home}/mosquitto/acl" in lines
    assert "persistence true" in lines
    assert f"persistence_location {settings.home}/mosquitto/data" in lines
    assert f"log_dest file {settings.home}/mosquitto/mosquitto.log" in lines
    assert "max_queued_messages 1000000" in lines
    assert any(line.startswith("max_inflight_messages ") for line in lines)
    assert any(line.startswith("max_queued_bytes ") for line in lines)
    # Only the one listener: nothing on the default port or on all interfaces.
    assert [line for line in lines if line.startswith(("listener", "port", "bind"))] == [
        "listener 21883 127.0.0.1"
    ]
    assert "$SYS" in text  # the template's escaped dollar sign


def test_mosquitto_config_names_the_current_user_by_default(settings: ClusterSettings) -> None:
    assert any(line.startswith("user ") for line in directives(render_config(settings)))


def test_server_properties(settings: ClusterSettings) -> None:
    text = render_server_properties(settings)
    assert not PLACEHOLDER.search(text)
    props = properties(text)
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:29093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:29092"
    assert props["log.dirs"] == f"{settings.home}/kafka/data"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["num.partitions"] == "6"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["auto.create.topics.enable"] == "false"


def test_log4j_properties(settings: ClusterSettings) -> None:
    text = render_log4j_properties(settings)
    assert not PLACEHOLDER.search(text)
    assert properties(text)["log4j.appender.server.File"] == f"{settings.home}/kafka/server.log"


def test_pom_declares_kafka_its_tools_and_its_logging_backend() -> None:
    root = ET.fromstring(resources.files("wattstream.localcluster").joinpath("pom.xml").read_text())
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    artifacts = {
        dependency.findtext("m:artifactId", namespaces=ns)
        for dependency in root.iterfind("m:dependencies/m:dependency", ns)
    }
    assert {"kafka_2.13", "kafka-tools", "slf4j-reload4j", "reload4j"} <= artifacts
    assert root.findtext("m:properties/m:kafka.version", namespaces=ns) == KAFKA_VERSION
    assert KAFKA_VERSION in jars_stamp()


def test_cluster_id_is_a_kafka_uuid() -> None:
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cluster_id in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id)
        assert not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_postgres_arguments(settings: ClusterSettings) -> None:
    layout = PostgresLayout.of(settings)
    arguments = server_arguments(settings, layout)
    values = dict(value.split("=", 1) for value in arguments[1::2])
    assert set(arguments[::2]) == {"-c"}
    assert values["listen_addresses"] == "127.0.0.1"
    assert values["port"] == "25432"
    assert values["unix_socket_directories"] == f"{settings.home}/postgres/run"
    assert values["fsync"] == "on"
    assert values["shared_buffers"] == "256MB"
    assert values["max_connections"] == "200"
    assert values["track_commit_timestamp"] == "on"


def test_postgres_gives_up_the_unix_socket_on_a_long_path(tmp_path: Path) -> None:
    settings = ClusterSettings(home=tmp_path / ("x" * 120))
    arguments = server_arguments(settings, PostgresLayout.of(settings))
    assert "unix_socket_directories=" in arguments


def test_postgres_fallback_directory_is_stable_per_home(tmp_path: Path) -> None:
    first = fallback_directory(tmp_path / "a")
    assert first == fallback_directory(tmp_path / "a")
    assert first != fallback_directory(tmp_path / "b")
    assert first.parent == Path("/var/tmp")
    assert first.name.startswith("wattstream-pg-")


def test_postgres_preloads_timescaledb_when_it_is_there(
    settings: ClusterSettings, tmp_path: Path
) -> None:
    layout = PostgresLayout.of(settings)
    plain = dict(v.split("=", 1) for v in server_arguments(settings, layout)[1::2])
    assert "shared_preload_libraries" not in plain
    values = dict(
        v.split("=", 1) for v in server_arguments(settings, layout, timescaledb=True)[1::2]
    )
    assert values["shared_preload_libraries"] == "timescaledb"
    assert values["timescaledb.telemetry_level"] == "off"

    # Debian's layout, found relative to the programs (no pg_config next to them).
    bindir = tmp_path / "opt" / "lib" / "postgresql" / "15" / "bin"
    bindir.mkdir(parents=True)
    assert not has_timescaledb(bindir)
    (tmp_path / "opt" / "share" / "postgresql" / "15" / "extension").mkdir(parents=True)
    (tmp_path / "opt" / "share/postgresql/15/extension/timescaledb.control").write_text("")
    assert not has_timescaledb(bindir)  # the control file alone cannot be preloaded
    (bindir.parent / "lib").mkdir()
    (bindir.parent / "lib" / "timescaledb.so").write_bytes(b"")
    assert has_timescaledb(bindir)


def test_pg_bindir_is_a_cluster_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WATTSTREAM_CLUSTER_PG_BINDIR", str(tmp_path / "bin"))
    assert ClusterSettings().pg_bindir == tmp_path / "bin"
    assert ClusterSettings.model_fields["pg_bindir"].default is None


def test_services_env_points_every_kafka_client_at_the_cluster(settings: ClusterSettings) -> None:
    secrets = LocalSecrets(
        mqtt_bridge_password="b", mqtt_api_password="a", device_root_key="k", api_key="r",
        api_admin_key="w", mqtt_operator_password="o", api_read_key="q",
    )  # fmt: skip
    env = service_environment(endpoints(settings), secrets)
    kafka = {key: value for key, value in env.items() if key.endswith("_KAFKA_BOOTSTRAP")}
    assert kafka == {
        f"WATTSTREAM_{service}_KAFKA_BOOTSTRAP": "127.0.0.1:29092"
        for service in ("BRIDGE", "STREAM", "API")
    }
