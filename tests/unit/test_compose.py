"""docker-compose.yml renders, and the rendered stack has the shape the pipeline relies on.

The file is rendered by the compose tool itself (``config`` resolves anchors, ``x-`` fields and
``${VAR}`` interpolation, and validates the schema), so these tests see what ``up`` would run.
Debian's docker-compose 1.29 and Docker Compose v2 are both accepted; neither needs an engine
for ``config``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
PASSWORD = "unit-test-secret"  # URL-safe, as the compose file requires
SECRETS = {
    "WATTSTREAM_DB_PASSWORD": PASSWORD,
    "WATTSTREAM_MQTT_BRIDGE_PASSWORD": "unit-bridge-password",
    "WATTSTREAM_MQTT_API_PASSWORD": "unit-api-mqtt-password",
    "WATTSTREAM_DEVICE_KEY": "unit-device-root-key",
    "WATTSTREAM_MQTT_OPERATOR_PASSWORD": "unit-operator-password",
    "WATTSTREAM_API_KEY": "unit-api-write-key",
    "WATTSTREAM_API_ADMIN_KEY": "unit-api-admin-key",
}

INFRASTRUCTURE = {"mosquitto", "kafka", "timescaledb"}
APP_SERVICES = {
    "migrate",
    "mqtt-auth",
    "topics",
    "bridge-session",
    "bridge",
    "stream",
    "api",
    "simulator",
}
ONE_SHOT = {"migrate", "mqtt-auth", "topics", "bridge-session"}
HEALTHCHECKED = INFRASTRUCTURE | {"bridge", "stream", "api"}
"""Long-running services others wait for with ``condition: service_healthy``."""

DEPENDENCIES = {
    "mosquitto": {"mqtt-auth": "service_completed_successfully"},
    "migrate": {"timescaledb": "service_healthy"},
    "topics": {"kafka": "service_healthy"},
    "bridge": {
        "mosquitto": "service_healthy",
        "kafka": "service_healthy",
        "topics": "service_completed_successfully",
    },
    "stream": {
        "kafka": "service_healthy",
        "topics": "service_completed_successfully",
        "migrate": "service_completed_successfully",
    },
    "api": {
        "migrate": "service_completed_successfully",
        "topics": "service_completed_successfully",
    },
    "bridge-session": {
        "mosquitto": "service_healthy",
        "topics": "service_completed_successfully",
    },
    # The bridge's session exists: what the simulator publishes is queued until the bridge runs.
    "simulator": {
        "mosquitto": "service_healthy",
        "bridge-session": "service_completed_successfully",
    },
}


def compose_command() -> list[str]:
    """The compose CLI: Debian's ``docker-compose`` (what the Makefile installs) or v2."""
    if standalone := shutil.which("docker-compose"):
        return [standalone]
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    pytest.fail(
        "no compose CLI: neither `docker-compose` nor `docker compose` is on PATH. "
        "Install Debian's docker-compose (apt-get install docker-compose), as the Makefile does."
    )


def render(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``compose config`` of the repo's file, with no WATTSTREAM_* variable but ``env``.

    An empty ``--env-file`` keeps a developer's ``.env`` out of the result.
    """
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.touch()
    clean_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("WATTSTREAM_", "COMPOSE_"))
    }
    return subprocess.run(
        [
            *compose_command(),
            "--env-file",
            str(empty_env_file),
            "-f",
            str(COMPOSE_FILE),
            "config",
        ],
        cwd=REPO_ROOT,
        env=clean_env | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    result = render(tmp_path_factory.mktemp("compose"), **SECRETS)
    assert result.returncode == 0, f"compose config failed:\n{result.stderr}"
    rendered = yaml.safe_load(result.stdout)
    return rendered["services"]


def image_tag(image: str) -> str | None:
    """The tag of ``[registry[:port]/]name[:tag]``, or None when there is none."""
    _, colon, tag = image.rpartition(":")
    return tag if colon and "/" not in tag else None


def test_every_service_is_defined(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == INFRASTRUCTURE | APP_SERVICES


@pytest.mark.parametrize("name", sorted(HEALTHCHECKED))
def test_long_running_service_has_a_healthcheck(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    healthcheck = services[name].get("healthcheck", {})
    assert not healthcheck.get("disable", False)
    test = healthcheck.get("test")
    assert test, f"{name} has no healthcheck test"
    assert test[0] in {"CMD", "CMD-SHELL"}


@pytest.mark.parametrize("name", sorted(DEPENDENCIES))
def test_service_waits_for_its_dependencies(services: dict[str, dict[str, Any]], name: str) -> None:
    depends_on = services[name].get("depends_on", {})
    conditions = {dependency: spec.get("condition") for dependency, spec in depends_on.items()}
    assert conditions == DEPENDENCIES[name]


def test_third_party_images_are_pinned_to_a_version(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in INFRASTRUCTURE:
        image = services[name]["image"]
        tag = image_tag(image)
        assert tag, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image}"
        assert re.match(r"\d+\.\d+\.\d+", tag), f"{name}: {image} is not pinned to x.y.z"
        assert "build" not in services[name]


def test_app_services_share_the_locally_built_image(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in APP_SERVICES:
        assert services[name]["image"] == "wattstream:local", name
        assert services[name]["build"]["context"] == str(REPO_ROOT), name
    assert {name: services[name]["command"] for name in APP_SERVICES - {"mqtt-auth"}} == {
        "migrate": ["migrate"],
        "topics": ["topics", "create"],
        "bridge-session": ["bridge", "--prepare-only"],
        "bridge": ["bridge"],
        "stream": ["stream"],
        "api": ["api"],
        "simulator": ["simulate"],
    }


def test_migrate_runs_once_and_the_rest_restart(services: dict[str, dict[str, Any]]) -> None:
    for name in ONE_SHOT:
        assert services[name]["restart"] == "no", name
    for name in (INFRASTRUCTURE | APP_SERVICES) - ONE_SHOT:
        assert services[name]["restart"] == "unless-stopped", name


def test_database_password_comes_from_the_environment(
    services: dict[str, dict[str, Any]],
) -> None:
    assert services["timescaledb"]["environment"]["POSTGRES_PASSWORD"] == PASSWORD
    database_urls = {
        name: value
        for name, service in services.items()
        for key, value in service.get("environment", {}).items()
        if key.endswith("_DATABASE_URL")
    }
    assert set(database_urls) == {"migrate", "stream", "api"}
    for name, url in database_urls.items():
        assert url == f"postgresql://wattstream:{PASSWORD}@timescaledb:5432/wattstream", name


def test_only_mqtt_and_the_api_are_published_to_the_host(
    services: dict[str, dict[str, Any]],
) -> None:
    published = {
        name: sorted(int(port["published"]) for port in service.get("ports", []))
        for name, service in services.items()
        if service.get("ports")
    }
    assert published == {"mosquitto": [1883], "api": [8000]}


def test_rendering_without_the_database_password_fails(tmp_path: Path) -> None:
    result = render(tmp_path, **{k: v for k, v in SECRETS.items() if k != "WATTSTREAM_DB_PASSWORD"})
    assert result.returncode != 0
    assert "set WATTSTREAM_DB_PASSWORD" in result.stderr


@pytest.mark.parametrize("missing", sorted(set(SECRETS) - {"WATTSTREAM_DB_PASSWORD"}))
def test_rendering_without_any_mqtt_or_api_secret_fails(tmp_path: Path, missing: str) -> None:
    result = render(tmp_path, **{k: v for k, v in SECRETS.items() if k != missing})
    assert result.returncode != 0
    assert f"set {missing}" in result.stderr


def test_mqtt_is_authenticated_with_the_given_secrets(
    services: dict[str, dict[str, Any]],
) -> None:
    env = {name: service.get("environment", {}) for name, service in services.items()}
    bridge_password = SECRETS["WATTSTREAM_MQTT_BRIDGE_PASSWORD"]
    assert env["bridge"]["WATTSTREAM_BRIDGE_MQTT_USERNAME"] == "bridge"
    assert env["bridge"]["WATTSTREAM_BRIDGE_MQTT_PASSWORD"] == bridge_password
    assert env["api"]["WATTSTREAM_API_MQTT_USERNAME"] == "api"
    assert env["api"]["WATTSTREAM_API_MQTT_PASSWORD"] == SECRETS["WATTSTREAM_MQTT_API_PASSWORD"]
    assert env["api"]["WATTSTREAM_API_API_KEYS"] == SECRETS["WATTSTREAM_API_KEY"]
    assert env["api"]["WATTSTREAM_API_ADMIN_API_KEYS"] == SECRETS["WATTSTREAM_API_ADMIN_KEY"]
    assert env["api"]["WATTSTREAM_API_ENVIRONMENT"] == "production"
    device_key = SECRETS["WATTSTREAM_DEVICE_KEY"]
    assert env["simulator"]["WATTSTREAM_SIM_DEVICE_KEY"] == device_key
    auth = env["mqtt-auth"]
    assert auth["WATTSTREAM_SIM_DEVICE_KEY"] == device_key
    assert auth["WATTSTREAM_SIM_DEVICES"] == env["simulator"]["WATTSTREAM_SIM_DEVICES"]
    assert "provision --compose /mosquitto/auth" in " ".join(services["mqtt-auth"]["command"])
    # The broker reads the generated files from the volume the one-shot service wrote.
    # docker-compose 1.29 renders volumes as "source:target:mode", Compose v2 as mappings.
    mounts = {
        (v["source"], v["target"], bool(v.get("read_only")))
        if isinstance(v, dict)
        else (v.split(":")[0], v.split(":")[1], v.endswith(":ro"))
        for v in services["mosquitto"]["volumes"]
    }
    assert ("mosquitto-auth", "/mosquitto/auth", True) in mounts
    conf = (REPO_ROOT / "deploy/compose/mosquitto.conf").read_text().splitlines()
    assert "allow_anonymous false" in conf
    assert {"password_file /mosquitto/auth/passwd", "acl_file /mosquitto/auth/acl"} <= set(conf)
