"""Mosquitto's password file and ACL for docker-compose (``wattstream services provision
--compose DIR``), written by a one-shot service into the volume the broker reads them from.

The secrets come from the same variables the services read, which compose requires
(``${VAR:?}``): ``WATTSTREAM_BRIDGE_MQTT_PASSWORD``, ``WATTSTREAM_API_MQTT_PASSWORD``, the
operator's ``WATTSTREAM_SIM_OPERATOR_PASSWORD`` (the labels) and the device root key
``WATTSTREAM_SIM_DEVICE_KEY``. The identities come from ``--identities`` (what
``python -m simulator identities`` prints for the compose fleet).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from schema.credentials import DeviceIdentities
from wattstream.localcluster import mqttauth
from wattstream.localcluster.errors import ServiceError

REQUIRED = (
    "WATTSTREAM_BRIDGE_MQTT_PASSWORD",
    "WATTSTREAM_API_MQTT_PASSWORD",
    "WATTSTREAM_SIM_OPERATOR_PASSWORD",
    "WATTSTREAM_SIM_DEVICE_KEY",
)


def write_compose_auth(
    directory: str | Path, env: Mapping[str, str], identities: DeviceIdentities
) -> None:
    """Write ``passwd`` and ``acl`` into ``directory``; refuse missing or short secrets."""
    missing = [name for name in REQUIRED if len(env.get(name, "")) < mqttauth.MIN_SECRET_LENGTH]
    if missing:
        raise ServiceError(
            f"set {', '.join(missing)} (at least {mqttauth.MIN_SECRET_LENGTH} characters each)"
        )
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    files = {
        "passwd": mqttauth.render_password_file(
            bridge_password=env["WATTSTREAM_BRIDGE_MQTT_PASSWORD"],
            api_password=env["WATTSTREAM_API_MQTT_PASSWORD"],
            operator_password=env["WATTSTREAM_SIM_OPERATOR_PASSWORD"],
            device_key=env["WATTSTREAM_SIM_DEVICE_KEY"],
            identities=identities,
            reload_password=secrets.token_urlsafe(16),
        ),
        "acl": mqttauth.render_acl(identities),
    }
    for name, text in files.items():
        temporary = target / f".{name}.tmp"
        temporary.write_text(text)
        # Readable by the broker's own user in its container (a different uid): the volume is
        # mounted only into this one-shot service and, read-only, into mosquitto.
        os.chmod(temporary, 0o644)  # noqa: PTH101
        temporary.replace(target / name)
