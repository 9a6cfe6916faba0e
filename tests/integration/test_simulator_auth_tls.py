"""The simulator against a broker that wants TLS and a password (a private Mosquitto)."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from schema.connections import MqttConnection
from simulator.app import Simulator, make_plan
from simulator.errors import BrokerRefused
from simulator.settings import SimulatorSettings

from ..conftest import free_port
from ..fixtures.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@dataclass(frozen=True)
class SecureBroker:
    port: int
    ca_file: Path


def _run(*argv: str, cwd: Path) -> None:
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def secure_broker(tmp_path: Path) -> Iterator[SecureBroker]:
    if not (shutil.which("openssl") and shutil.which("mosquitto_passwd")):
        pytest.skip("needs openssl and mosquitto_passwd (Debian mosquitto)")
    # A CA and a server certificate for 127.0.0.1, both made here for the test.
    _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
         "-out", "ca.crt", "-days", "2", "-subj", "/CN=test-ca", cwd=tmp_path)  # fmt: skip
    _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
         "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=tmp_path)  # fmt: skip
    (tmp_path / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext",
         cwd=tmp_path)  # fmt: skip
    _run("mosquitto_passwd", "-b", "-c", "passwd", "meter", "s3cret", cwd=tmp_path)
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(
        f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous false\n"
        f"password_file {tmp_path / 'passwd'}\n"
        f"cafile {tmp_path / 'ca.crt'}\n"
        f"certfile {tmp_path / 'server.crt'}\n"
        f"keyfile {tmp_path / 'server.key'}\n"
        "persistence false\nlog_dest stderr\n"
    )
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with (tmp_path / "broker.log").open("wb") as log:
        process = subprocess.Popen([mosquitto, "-c", str(config)], stderr=log)
    try:

        def listening() -> bool:
            assert process.poll() is None, (tmp_path / "broker.log").read_text()
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0

        wait_until(
            "mosquitto listening",
            listening,
            10,
            interval_s=0.05,
            detail=(tmp_path / "broker.log").read_text,
        )
        yield SecureBroker(port, tmp_path / "ca.crt")
    finally:
        process.terminate()
        process.wait(timeout=10)


def config(broker: SecureBroker, namespace: str, password: str) -> SimulatorSettings:
    return SimulatorSettings(
        mqtt=MqttConnection(
            port=broker.port,
            username="meter",
            password=SecretStr(password),
            tls=True,
            ca_file=broker.ca_file,
        ),
        topic_namespace=namespace,
        devices=3,
        interval_s=60,
        speed=6000,
        start=datetime(2026, 3, 29, 0, 0, tzinfo=UTC),
        max_ticks=4,
        progress_s=0,
    )


async def test_tls_and_password(secure_broker: SecureBroker, namespace: str) -> None:
    settings = config(secure_broker, namespace, "s3cret")
    sim = Simulator(settings, make_plan(settings))
    await sim.run()
    assert sim.transport.published == 3 * 4
    assert sim.transport.backlog.count == 0  # every message acknowledged
    assert sim.transport.backlog.acked >= 3 * 4 + 3 * 2  # readings, births, statuses


async def test_a_wrong_password_is_refused_at_once(
    secure_broker: SecureBroker, namespace: str
) -> None:
    settings = config(secure_broker, namespace, "wrong")
    sim = Simulator(settings, make_plan(settings))
    began = time.monotonic()
    with pytest.raises(BrokerRefused, match=r"[Nn]ot authori[sz]ed"):
        await sim.run()
    assert time.monotonic() - began < 10
