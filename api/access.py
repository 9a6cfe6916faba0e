"""What a key may do: its scope, and the devices it may reach.

A key of ``read_api_keys``, ``api_keys`` or ``admin_api_keys`` reaches every device; a key of
``device_keys`` (:class:`~api.settings.DeviceKey`) only the devices it names and those whose id
starts with one of its prefixes (a site). Outside them a request is a 403 that does not say
whether the device exists: the check comes before any lookup, so a restricted key cannot probe
for other devices' ids. Fleet-wide views (the fleet summary and KPIs, the tariff book, model
activation) need an unrestricted key; the device list, the alerts and the live feed are
filtered to the key's devices.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from pydantic import SecretStr

from api.errors import Forbidden, Unauthorized
from api.settings import ApiSettings


class Scope(IntEnum):
    """What a key may do; each scope includes the ones below it."""

    READ = 1
    WRITE = 2
    ADMIN = 3


KEY_SETTINGS = {
    Scope.READ: "WATTSTREAM_API_READ_API_KEYS",
    Scope.WRITE: "WATTSTREAM_API_API_KEYS",
    Scope.ADMIN: "WATTSTREAM_API_ADMIN_API_KEYS",
}


@dataclass(frozen=True, slots=True)
class Grant:
    """A valid key's rights; ``devices`` ``None``: every device."""

    scope: Scope
    devices: frozenset[str] | None = None
    prefixes: tuple[str, ...] = ()

    @property
    def restricted(self) -> bool:
        return self.devices is not None

    def allows(self, device_id: str) -> bool:
        if self.devices is None:
            return True
        return device_id in self.devices or device_id.startswith(self.prefixes)

    def check_device(self, device_id: str) -> None:
        if not self.allows(device_id):
            raise Forbidden(f"this key does not reach device {device_id!r}")

    def check_fleet(self) -> None:
        if self.restricted:
            raise Forbidden("this key is limited to some devices; fleet-wide views need another")

    def sql_filter(self) -> tuple[list[str] | None, list[str] | None]:
        """The device ids and ``LIKE`` patterns of a restricted key (``None`` for neither when
        it is not): ``device_id = ANY($ids) OR device_id LIKE ANY($patterns)``."""
        if self.devices is None:
            return None, None
        return sorted(self.devices), [like_prefix(p) for p in self.prefixes]


def like_prefix(prefix: str) -> str:
    """A ``LIKE`` pattern matching the ids that start with ``prefix`` (its ``_`` and ``%``
    taken literally)."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _matches(presented: bytes, keys: Iterable[SecretStr]) -> bool:
    """Constant-time comparison against every key (no early exit on a match)."""
    found = False
    for key in keys:
        found |= secrets.compare_digest(presented, key.get_secret_value().encode())
    return found


def grant_of(settings: ApiSettings, presented: str | None) -> Grant | None:
    """The rights ``presented`` carries (an unrestricted key's widest scope first); ``None``
    for no key or an unknown one. Every configured key is compared, whatever matched first
    (no timing hint)."""
    if not presented:
        return None
    candidate = presented.encode()
    admin = _matches(candidate, settings.admin_api_keys)
    write = _matches(candidate, settings.api_keys)
    read = _matches(candidate, settings.read_api_keys)
    limited = [k for k in settings.device_keys if _matches(candidate, (k.key,))]
    if admin or write or read:
        return Grant(Scope.ADMIN if admin else Scope.WRITE if write else Scope.READ)
    if limited:
        key = limited[0]
        return Grant(Scope[key.scope.upper()], frozenset(key.devices), key.prefixes)
    return None


def any_keys(settings: ApiSettings) -> bool:
    """Whether any key (or bearer token) can be valid here."""
    return bool(
        settings.read_api_keys
        or settings.api_keys
        or settings.admin_api_keys
        or settings.device_keys
        or settings.jwt_secret
        or settings.jwt_jwks
    )


def require_scope(grant: Grant, needed: Scope) -> Grant:
    """``grant``, or :class:`Forbidden` when its scope is too narrow for ``needed``."""
    if grant.scope < needed:
        raise Forbidden(
            f"this endpoint needs a key with scope {needed.name.lower()} "
            f"({KEY_SETTINGS[needed]}); the key given has scope {grant.scope.name.lower()}"
        )
    return grant


def authorize(settings: ApiSettings, presented: str | None, needed: Scope) -> Grant:
    """The key's :class:`Grant`; :class:`Unauthorized` without a valid key,
    :class:`Forbidden` when its scope is too narrow for ``needed``."""
    if not any_keys(settings):
        raise Unauthorized("no API keys are configured on this server (WATTSTREAM_API_API_KEYS)")
    if not presented:
        raise Unauthorized(
            "this endpoint needs an API key in the X-API-Key header (or a bearer token)"
        )
    grant = grant_of(settings, presented)
    if grant is None:
        raise Unauthorized("the X-API-Key is not valid")
    return require_scope(grant, needed)
