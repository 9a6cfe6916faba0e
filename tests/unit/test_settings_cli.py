"""One settings-and-CLI pattern for every service: each setting is a flag and a variable, the
variable names stay what compose and the launcher set, invalid settings exit 2 with one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from api.settings import ApiSettings
from schema.commandline import settings_parser, variables
from simulator.settings import HistorySettings, SimulatorSettings
from stream.audit.settings import AuditSettings
from stream.forecast.settings import TrainSettings
from stream.settings import BridgeSettings, StreamSettings

pytestmark = pytest.mark.unit

SERVICES: list[type[BaseModel]] = [
    BridgeSettings,
    StreamSettings,
    SimulatorSettings,
    HistorySettings,
    AuditSettings,
    ApiSettings,
    TrainSettings,
]
BLOCKS = ("mqtt", "kafka", "database")


def _leaves(model: type[BaseModel], path: str = "") -> list[str]:
    names = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names.extend(_leaves(annotation, f"{path}{name}_"))
        else:
            names.append(f"{path}{name}")
    return names


@pytest.fixture(autouse=True)
def _no_service_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("WATTSTREAM_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize("settings_cls", SERVICES, ids=lambda c: c.__name__)
def test_every_setting_has_a_flag_and_a_variable(
    settings_cls: type[BaseModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    parser = settings_parser(settings_cls, "prog", "")
    flags = {opt for action in parser._actions for opt in action.option_strings}
    leaves = _leaves(settings_cls)
    assert {"environment", "log_level"} <= set(leaves)
    for leaf in leaves:
        assert f"--{leaf.replace('_', '-')}" in flags, leaf
    # No plain setting may start like a block: its variable would be read into the block.
    blocks = tuple(f"{name}_" for name in BLOCKS if name in settings_cls.model_fields)
    plain = [n for n, i in settings_cls.model_fields.items() if n not in BLOCKS]
    assert not [name for name in plain if name.startswith(blocks)] if blocks else True
    prefix = str(settings_cls.model_config.get("env_prefix"))
    monkeypatch.setenv(f"{prefix}LOG_LEVEL", "debug")
    assert parser.parse_args([]) is not None
    required = {"journal": "j", "devices": "3", "days": "1", "out": "o"}
    values = {n: required[n] for n, i in settings_cls.model_fields.items() if i.is_required()}
    assert settings_cls(**values).log_level == "DEBUG"  # type: ignore[attr-defined]


def test_the_variables_compose_and_the_launcher_set_keep_their_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WATTSTREAM_BRIDGE_MQTT_HOST", "broker")
    monkeypatch.setenv("WATTSTREAM_BRIDGE_MQTT_CA_FILE", "/ca.pem")
    monkeypatch.setenv("WATTSTREAM_BRIDGE_MQTT_TLS_INSECURE", "true")
    monkeypatch.setenv("WATTSTREAM_BRIDGE_MQTT_CLIENT_ID", "b-2")
    monkeypatch.setenv("WATTSTREAM_BRIDGE_KAFKA_BOOTSTRAP", "k:9092")
    monkeypatch.setenv("WATTSTREAM_BRIDGE_KAFKA_LINGER_MS", "9")
    monkeypatch.setenv("WATTSTREAM_STREAM_DATABASE_URL", "postgresql://u:p@db/w")
    monkeypatch.setenv("WATTSTREAM_API_API_KEYS", "a" * 20)
    bridge = BridgeSettings()
    assert (bridge.mqtt.host, bridge.mqtt.ca_file, bridge.mqtt.tls_insecure) == (
        "broker",
        Path("/ca.pem"),
        True,
    )
    assert (bridge.mqtt.client_id, bridge.kafka.bootstrap, bridge.kafka.linger_ms) == (
        "b-2",
        "k:9092",
        9,
    )
    assert StreamSettings().database.dsn() == "postgresql://u:p@db/w"
    assert [k.get_secret_value() for k in ApiSettings().api_keys] == ["a" * 20]
    # A flag beats the variable; the rest of the block still comes from the environment.
    from stream.bridge.__main__ import parse_args  # noqa: PLC0415

    flagged = parse_args(["--mqtt-host", "other", "--log-level", "warning"])
    assert (flagged.mqtt.host, flagged.mqtt.client_id, flagged.log_level) == (
        "other",
        "b-2",
        "WARNING",
    )


def test_variables_spells_them_from_the_settings() -> None:
    assert variables(BridgeSettings, {"mqtt": {"host": "h", "port": 1}, "metrics_port": 0}) == {
        "WATTSTREAM_BRIDGE_MQTT_HOST": "h",
        "WATTSTREAM_BRIDGE_MQTT_PORT": "1",
        "WATTSTREAM_BRIDGE_METRICS_PORT": "0",
    }
    with pytest.raises(KeyError, match="mqtt_hostname"):
        variables(ApiSettings, {"mqtt": {"hostname": "h"}})


INVALID = [
    ("stream.bridge", ["--mqtt-port", "70000"], "mqtt.port"),
    ("stream.worker", ["--batch-size", "0"], "batch_size"),
    ("simulator", ["--mqtt-port", "abc"], "mqtt.port"),
    ("simulator", ["history", "--devices", "0", "--days", "1", "--out", "o"], "devices"),
    ("stream.audit", ["--journal", "j", "--metrics-port", "-1"], "metrics_port"),
    ("api", ["--port", "0"], "port"),
    ("stream.forecast", ["--devices", "0"], "devices"),
]


@pytest.mark.parametrize(("module", "argv", "field"), INVALID, ids=[i[0] for i in INVALID])
def test_invalid_settings_exit_2_with_one_line(module: str, argv: list[str], field: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", module, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"{field}: " in lines[0]
    assert "Traceback" not in done.stderr


def test_the_worker_refuses_the_default_database_outside_development() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATTSTREAM_")}
    done = subprocess.run(
        [sys.executable, "-m", "stream.worker", "--environment", "production"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "wattstream stream: invalid settings: Value error, environment=production refuses the "
        "well-known database password (set WATTSTREAM_STREAM_DATABASE_URL)"
    ]
