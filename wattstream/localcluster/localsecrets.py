"""The local cluster's generated secrets: created once, random, one 0600 file each.

Under ``ClusterSettings.secrets_path`` (``home/secrets``, mode 0700)::

    mqtt-bridge-password   the bridge's MQTT password (user ``bridge``)
    mqtt-api-password      the API's MQTT password (user ``api``, publishes commands)
    mqtt-operator-password the MQTT password of user ``operator`` (the only one publishing the
                           ground-truth anomaly labels; the simulator's ``--labels-topic``)
    device-root-key        devices' and gateways' MQTT passwords derive from it
                           (:func:`schema.credentials.device_password`)
    api-key                X-API-Key for the API's write endpoints (device commands)
    api-admin-key          X-API-Key for the admin endpoints (and the write ones)
    api-read-key           X-API-Key of scope read (reads, the live feed) where reads need one

A missing file is generated; an existing one is kept, so the secrets survive restarts. To rotate
one, delete its file and run ``wattstream services up`` again (then restart the services that
use it).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, fields
from pathlib import Path

from wattstream.localcluster.errors import ServiceError

_TOKEN_BYTES = 32


@dataclass(frozen=True, repr=False)
class LocalSecrets:
    mqtt_bridge_password: str
    mqtt_api_password: str
    mqtt_operator_password: str
    device_root_key: str
    api_key: str
    api_admin_key: str
    api_read_key: str

    def __repr__(self) -> str:
        return "LocalSecrets(<redacted>)"


def _file_name(field: str) -> str:
    return field.replace("_", "-")


def ensure_secrets(directory: Path) -> LocalSecrets:
    """The secrets under ``directory``, generating the missing ones."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory.chmod(0o700)
    values: dict[str, str] = {}
    for field in fields(LocalSecrets):
        path = directory / _file_name(field.name)
        if not path.exists():
            # O_EXCL: two processes starting the cluster at once never overwrite each other.
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as out:
                    out.write(secrets.token_urlsafe(_TOKEN_BYTES) + "\n")
        values[field.name] = _read(path)
    return LocalSecrets(**values)


def load_secrets(directory: Path) -> LocalSecrets:
    """The secrets under ``directory``; :class:`ServiceError` if any is missing."""
    try:
        return LocalSecrets(
            **{
                field.name: _read(directory / _file_name(field.name))
                for field in fields(LocalSecrets)
            }
        )
    except OSError as exc:
        raise ServiceError(
            f"the local cluster's secrets are missing ({exc}); run `wattstream services up`"
        ) from exc


def _read(path: Path) -> str:
    value = path.read_text().strip()
    if not value:
        raise ServiceError(f"{path} is empty: delete it to have a new secret generated")
    return value
