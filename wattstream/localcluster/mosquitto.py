"""The local cluster's Mosquitto broker: configuration, start, health, stop.

Files under ``home/mosquitto``: ``mosquitto.conf`` (rendered from the committed template next to
this module), ``passwd`` and ``acl`` (rendered by :mod:`.mqttauth` from the local secrets and
``identities.json``, the devices and gateways provisioned so far), ``tls/`` (CA and server
certificate, with ``mqtt_tls``), ``data/`` (persistence), ``mosquitto.log`` (the broker's log),
``console.log`` (its stdout/stderr) and ``mosquitto.pid``.

Anonymous clients are refused. :func:`provision` adds devices and gateways at runtime: it
rewrites ``passwd`` and ``acl`` and sends the broker SIGHUP, which makes it re-read both.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import secrets
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from schema.credentials import DeviceIdentities
from wattstream.localcluster import mqttauth
from wattstream.localcluster.config import ClusterSettings
from wattstream.localcluster.errors import ServiceError, ServiceStartError
from wattstream.localcluster.install import find_program
from wattstream.localcluster.localsecrets import LocalSecrets, ensure_secrets
from wattstream.localcluster.process import ManagedProcess, ServiceStatus, file_lock
from wattstream.localcluster.templates import render
from wattstream.localcluster.tlscerts import ensure_server_certificate

logger = logging.getLogger(__name__)

NAME = "mosquitto"
_READY_TIMEOUT_S = 30
_RELOAD_TIMEOUT_S = 15


@dataclass(frozen=True)
class MosquittoLayout:
    directory: Path
    config: Path
    data: Path
    log: Path
    console: Path
    pidfile: Path
    password_file: Path
    acl_file: Path
    identities: Path
    tls: Path

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
            password_file=directory / "passwd",
            acl_file=directory / "acl",
            identities=directory / "identities.json",
            tls=directory / "tls",
        )


def render_config(settings: ClusterSettings, *, user: str | None = None) -> str:
    """``mosquitto.conf`` for ``settings``; ``user`` defaults to the user running this code."""
    layout = MosquittoLayout.of(settings)
    tls_listener = "# No TLS listener (WATTSTREAM_CLUSTER_MQTT_TLS=true adds one)."
    if settings.tls_port is not None:
        tls = layout.tls
        tls_listener = "\n".join(
            [
                "# TLS, with the CA and server certificate generated under the cluster's home.",
                f"listener {settings.tls_port} {settings.host}",
                f"cafile {tls / 'ca.crt'}",
                f"certfile {tls / 'server.crt'}",
                f"keyfile {tls / 'server.key'}",
            ]
        )
    return render(
        "mosquitto.conf",
        user=user or pwd.getpwuid(os.geteuid()).pw_name,
        host=settings.host,
        port=settings.mqtt_port,
        password_file=layout.password_file,
        acl_file=layout.acl_file,
        tls_listener=tls_listener,
        persistence_dir=layout.data,
        log_file=layout.log,
    )


def provisioned(settings: ClusterSettings) -> DeviceIdentities:
    """The devices and gateways provisioned so far (none before the first :func:`provision`)."""
    path = MosquittoLayout.of(settings).identities
    if not path.exists():
        return DeviceIdentities()
    return DeviceIdentities.model_validate_json(path.read_bytes())


def _write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with a 0600 file holding ``text``."""
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    temporary.replace(path)


def _write_auth_files(
    settings: ClusterSettings, local: LocalSecrets, identities: DeviceIdentities
) -> str:
    """Write ``passwd`` and ``acl``; return the reload user's new password."""
    layout = MosquittoLayout.of(settings)
    reload_password = secrets.token_urlsafe(16)
    _write_private(
        layout.password_file,
        mqttauth.render_password_file(
            bridge_password=local.mqtt_bridge_password,
            api_password=local.mqtt_api_password,
            operator_password=local.mqtt_operator_password,
            device_key=local.device_root_key,
            identities=identities,
            reload_password=reload_password,
        ),
    )
    _write_private(layout.acl_file, mqttauth.render_acl(identities))
    return reload_password


def provision(settings: ClusterSettings, identities: DeviceIdentities) -> DeviceIdentities:
    """Let ``identities`` connect (merged with those provisioned before); return them all.

    A running broker re-reads its password file and ACL (SIGHUP); this returns once it has.
    """
    layout = MosquittoLayout.of(settings)
    layout.directory.mkdir(parents=True, exist_ok=True)
    local = ensure_secrets(settings.secrets_path)
    with file_lock(layout.directory / ".provision.lock"):
        merged = provisioned(settings).merged(identities)
        _write_private(layout.identities, merged.model_dump_json(indent=1))
        reload_password = _write_auth_files(settings, local, merged)
        _reload(settings, reload_password)
    logger.info(
        "mosquitto: %d devices and %d gateways provisioned",
        len(merged.devices),
        len(merged.gateways),
    )
    return merged


def _reload(settings: ClusterSettings, reload_password: str) -> None:
    """SIGHUP a running broker and wait until it accepts ``reload_password`` (no-op if down)."""
    pid = managed_process(settings).live_pid()
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + _RELOAD_TIMEOUT_S
    while not mqtt_answers(
        settings.host,
        settings.mqtt_port,
        username=mqttauth.RELOAD_USER,
        password=reload_password,
    ):
        if time.monotonic() > deadline:
            raise ServiceError(
                f"mosquitto (pid {pid}) did not reload its password file within "
                f"{_RELOAD_TIMEOUT_S} s; see {MosquittoLayout.of(settings).log}"
            )
        time.sleep(0.1)


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


def mqtt_answers(
    host: str,
    port: int,
    timeout: float = 3.0,
    *,
    username: str | None = None,
    password: str | None = None,
) -> bool:
    """Whether an MQTT CONNECT to ``host:port`` is accepted within ``timeout`` seconds."""
    client = Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"wattstream-localcluster-probe-{uuid.uuid4().hex[:12]}",
    )
    if username is not None:
        client.username_pw_set(username, password)
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
    layout = MosquittoLayout.of(settings)
    local = ensure_secrets(settings.secrets_path)
    if process.running_pid(settings.host, [settings.mqtt_port], home=settings.home) is not None:
        provision(settings, DeviceIdentities())  # the current secrets, in case they changed
        return
    mosquitto = find_program("mosquitto")
    if mosquitto is None:
        raise ServiceStartError(NAME, "the mosquitto program is not installed", "")
    layout.data.mkdir(parents=True, exist_ok=True)
    if settings.mqtt_tls:
        ensure_server_certificate(layout.tls, [settings.host])
    _write_auth_files(settings, local, provisioned(settings))
    layout.config.write_text(render_config(settings))
    process.spawn([str(mosquitto), "-c", str(layout.config)], cwd=layout.directory)


def wait_ready(settings: ClusterSettings) -> None:
    """Wait until the broker accepts an MQTT connection."""
    local = ensure_secrets(settings.secrets_path)
    managed_process(settings).wait_until(
        lambda: mqtt_answers(
            settings.host,
            settings.mqtt_port,
            username=mqttauth.BRIDGE_USER,
            password=local.mqtt_bridge_password,
        ),
        timeout=_READY_TIMEOUT_S,
        what="accepting MQTT connections",
    )
    logger.info("mosquitto: ready on %s:%d", settings.host, settings.mqtt_port)


def stop(settings: ClusterSettings) -> None:
    managed_process(settings).stop()


def status(settings: ClusterSettings) -> ServiceStatus:
    return managed_process(settings).status(settings.host, settings.mqtt_port)
