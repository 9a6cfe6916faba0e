"""Who may connect to the MQTT broker: device identities and the passwords derived for them.

A device (or a gateway: one connection carrying several devices) authenticates with its own
identity as the MQTT username. Its password is not stored anywhere a device could read another
device's: it is derived from one *device root key* known only to the provisioning side (the
broker's password file is written from it) and to whoever plays the devices (the simulator)::

    password = base64url(HMAC-SHA256(root_key, identity))   (no padding)

Identities are MQTT usernames that the broker's ACL substitutes into topic patterns (``%u``),
so they must be valid topic levels: no ``/``, ``+``, ``#`` and not empty. Pure: no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator

IDENTITY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
"""Letters, digits and ``. _ : -``: a valid topic level, a valid password-file username."""

RESERVED_USERS = frozenset({"bridge", "api", "wattstream-reload"})
"""Service users of the broker; no device or gateway may take these names."""

Identity = Annotated[str, StringConstraints(pattern=IDENTITY_PATTERN)]


def device_password(root_key: str, identity: str) -> str:
    """The MQTT password of ``identity`` (a device or gateway id) under ``root_key``."""
    if not root_key:
        raise ValueError("the device root key is empty")
    digest = hmac.new(root_key.encode(), identity.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def valid_identity(identity: str) -> bool:
    return re.fullmatch(IDENTITY_PATTERN, identity) is not None and identity not in RESERVED_USERS


class DeviceIdentities(BaseModel):
    """The MQTT identities a fleet connects with (``python -m simulator identities``).

    ``devices`` connect as themselves (one connection each); ``gateways`` maps a pooled
    connection's identity to the devices it carries, which it may publish for.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    devices: tuple[Identity, ...] = ()
    gateways: dict[Identity, tuple[Identity, ...]] = {}

    @model_validator(mode="after")
    def _not_reserved(self) -> DeviceIdentities:
        names = {*self.devices, *self.gateways}
        for members in self.gateways.values():
            names.update(members)
        taken = sorted(names & RESERVED_USERS)
        if taken:
            raise ValueError(f"identities may not use the service users' names: {taken}")
        return self

    def merged(self, other: DeviceIdentities) -> DeviceIdentities:
        """Both sets of identities; a gateway in both carries the union of its devices."""
        gateways = {name: set(members) for name, members in self.gateways.items()}
        for name, members in other.gateways.items():
            gateways.setdefault(name, set()).update(members)
        return DeviceIdentities(
            devices=tuple(sorted({*self.devices, *other.devices})),
            gateways={name: tuple(sorted(m)) for name, m in sorted(gateways.items())},
        )

    def usernames(self) -> list[str]:
        """Every identity that connects (devices and gateways), sorted."""
        return sorted({*self.devices, *self.gateways})


@dataclass(frozen=True, slots=True)
class BrokerAuth:
    """How a service's MQTT client authenticates to the broker and checks it (all optional)."""

    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: Path | None = None
    """CA bundle to verify the broker with (default: the system's)."""
    cert_file: Path | None = None
    """Client certificate (with ``key_file``), for brokers that authenticate clients by it."""
    key_file: Path | None = None
    tls_insecure: bool = False
    """Skip the host name check (self-signed test brokers only)."""

    def ssl_context(self) -> ssl.SSLContext | None:
        """The client's TLS context (``None`` without ``tls``): the broker's certificate is
        required and checked against ``ca_file``, its host name unless ``tls_insecure``."""
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file is not None:
            context.load_cert_chain(self.cert_file, self.key_file)
        context.check_hostname = not self.tls_insecure
        return context
