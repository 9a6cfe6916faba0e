"""The local cluster's Mosquitto broker: configuration, start, health, stop.

Files under ``home/mosquitto``: ``mosquitto.conf`` (rendered from the committed template next to
this module), ``data/`` (persistence), ``mosquitto.log`` (the broker's log), ``console.log``
(its stdout/stderr) and ``mosquitto.pid``.
"""

from __future__ import annotations

import logging
import os
import pwd
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from schema.localcluster.config import ClusterSettings
from schema.localcluster.errors import ServiceError, ServiceStartError
from schema.localcluster.install import find_program
from schema.localcluster.process import ManagedProcess, ServiceStatus, port_open
from schema.localcluster.templates import render

logger = logging.getLogger(__name__)

NAME = "mosquitto"
_READY_TIMEOUT_S = 30


@dataclass(frozen=True)
class MosquittoLayout:
    directory: Path
    config: Path
    data: Path
    log: Path
    console: Path
    pidfile: Path

    @classmethod
    def of(cls, settings: ClusterSettings) -> MosquittoLayout:
        directory = settings.home / NAME
        return cls(
            directory=directory,
            config=directory / "mosquitto.conf",
            data=directory / "data",
            log=directory / "mosquitto.log",
            console=directory / "console.log",
            pidfile=directory / "mosquitto.pid",
        )


def render_config(settings: ClusterSettings, *, user: str | None = None) -> str:
    """``mosquitto.conf`` for ``settings``; ``user`` defaults to the user running this code."""
    layout = MosquittoLayout.of(settings)
    return render(
        "mosquitto.conf",
        user=user or pwd.getpwuid(os.geteuid()).pw_name,
        host=settings.host,
        port=settings.mqtt_port,
        persistence_dir=layout.data,
        log_file=layout.log,
    )


def required_packages() -> list[str]:
    """Debian packages to install before the broker can run."""
    programs = {"mosquitto": "mosquitto", "mosquitto_sub": "mosquitto-clients"}
    return [package for program, package in programs.items() if find_program(program) is None]


def managed_process(settings: ClusterSettings) -> ManagedProcess:
    layout = MosquittoLayout.of(settings)
    return ManagedProcess(
        name=NAME,
        pidfile=layout.pidfile,
        logs=(layout.console, layout.log),
        markers=("mosquitto", str(layout.config)),
    )


def mqtt_answers(host: str, port: int, timeout: float = 3.0) -> bool:
    """Whether an MQTT CONNECT to ``host:port`` is accepted within ``timeout`` seconds."""
    client = Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"wattstream-localcluster-probe-{uuid.uuid4().hex[:12]}",
    )
    answers: list[ReasonCode] = []
    client.on_connect = lambda _client, _userdata, _flags, reason, _props: answers.append(reason)
    try:
        client.connect(host, port, keepalive=10)
        deadline = time.monotonic() + timeout
        while not answers and time.monotonic() < deadline:
            client.loop(timeout=0.1)
        if answers and not answers[0].is_failure:
            client.disconnect()
            client.loop(timeout=0.1)
            return True
    except OSError:
        return False
    return False


def start(settings: ClusterSettings) -> None:
    """Start the broker unless it already runs; does not wait until it is ready."""
    process = managed_process(settings)
    pid = process.live_pid()
    if pid is not None:
        logger.info("mosquitto: already running (pid %d)", pid)
        return
    process.clear_stale_pidfile()
    if port_open(settings.host, settings.mqtt_port):
        raise ServiceError(
            f"mosquitto: {settings.host}:{settings.mqtt_port} is in use by a process this "
            f"cluster (home {settings.home}) did not start"
        )
    mosquitto = find_program("mosquitto")
    if mosquitto is None:
        raise ServiceStartError(NAME, "the mosquitto program is not installed", "")
    layout = MosquittoLayout.of(settings)
    layout.data.mkdir(parents=True, exist_ok=True)
    layout.config.write_text(render_config(settings))
    process.spawn([str(mosquitto), "-c", str(layout.config)], cwd=layout.directory)


def wait_ready(settings: ClusterSettings) -> None:
    """Wait until the broker accepts an MQTT connection."""
    managed_process(settings).wait_until(
        lambda: mqtt_answers(settings.host, settings.mqtt_port),
        timeout=_READY_TIMEOUT_S,
        what="accepting MQTT connections",
    )
    logger.info("mosquitto: ready on %s:%d", settings.host, settings.mqtt_port)


def stop(settings: ClusterSettings) -> None:
    managed_process(settings).stop()


def status(settings: ClusterSettings) -> ServiceStatus:
    return managed_process(settings).status(settings.host, settings.mqtt_port)
