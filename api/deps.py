"""Typed state the lifespan yields, and the ``Depends`` aliases routes use to reach it."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import IntEnum
from typing import Annotated, TypedDict

import asyncpg
from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from pydantic import SecretStr
from starlette.requests import HTTPConnection

from api.commands import CommandPublisher
from api.errors import Forbidden, Unauthorized
from api.kpi.store import TariffStore
from api.live.feed import KafkaFeed
from api.live.hub import Hub
from api.metrics import Metrics
from api.settings import ApiSettings


@dataclass(frozen=True)
class Resources:
    settings: ApiSettings
    pool: asyncpg.Pool
    hub: Hub
    feed: KafkaFeed
    commands: CommandPublisher
    metrics: Metrics
    tariffs: TariffStore


class State(TypedDict):
    resources: Resources


def _resources(connection: HTTPConnection) -> Resources:
    """The lifespan's resources, from a request or a websocket."""
    resources: Resources = connection.state.resources
    return resources


Deps = Annotated[Resources, Depends(_resources)]

_api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="A key of WATTSTREAM_API_READ_API_KEYS (scope read), WATTSTREAM_API_API_KEYS "
    "(write: also read) or WATTSTREAM_API_ADMIN_API_KEYS (admin: also write and read).",
)


class Scope(IntEnum):
    """What a key may do; each scope includes the ones below it."""

    READ = 1
    WRITE = 2
    ADMIN = 3


_KEY_SETTINGS = {
    Scope.READ: "WATTSTREAM_API_READ_API_KEYS",
    Scope.WRITE: "WATTSTREAM_API_API_KEYS",
    Scope.ADMIN: "WATTSTREAM_API_ADMIN_API_KEYS",
}


def _matches(presented: str, keys: tuple[SecretStr, ...]) -> bool:
    """Constant-time comparison against every key (no early exit on a match)."""
    candidate = presented.encode()
    found = False
    for key in keys:
        found |= secrets.compare_digest(candidate, key.get_secret_value().encode())
    return found


def scope_of(settings: ApiSettings, presented: str | None) -> Scope | None:
    """The widest scope ``presented`` carries; ``None`` for no key or an unknown one. Every
    configured key is compared, whatever matched first (no timing hint)."""
    if not presented:
        return None
    admin = _matches(presented, settings.admin_api_keys)
    write = _matches(presented, settings.api_keys)
    read = _matches(presented, settings.read_api_keys)
    return Scope.ADMIN if admin else Scope.WRITE if write else Scope.READ if read else None


def authorize(settings: ApiSettings, presented: str | None, needed: Scope) -> None:
    """:class:`Unauthorized` without a valid key, :class:`Forbidden` when its scope is too
    narrow for ``needed``."""
    if not (settings.read_api_keys or settings.api_keys or settings.admin_api_keys):
        raise Unauthorized("no API keys are configured on this server (WATTSTREAM_API_API_KEYS)")
    if not presented:
        raise Unauthorized("this endpoint needs an API key in the X-API-Key header")
    scope = scope_of(settings, presented)
    if scope is None:
        raise Unauthorized("the X-API-Key is not valid")
    if scope < needed:
        raise Forbidden(
            f"this endpoint needs a key with scope {needed.name.lower()} "
            f"({_KEY_SETTINGS[needed]}); the key given has scope {scope.name.lower()}"
        )


def _require_read_key(
    request: Request, presented: Annotated[str | None, Security(_api_key_header)]
) -> None:
    authorize(_resources(request).settings, presented, Scope.READ)


def _require_api_key(
    request: Request, presented: Annotated[str | None, Security(_api_key_header)]
) -> None:
    authorize(_resources(request).settings, presented, Scope.WRITE)


def _require_admin_key(
    request: Request, presented: Annotated[str | None, Security(_api_key_header)]
) -> None:
    authorize(_resources(request).settings, presented, Scope.ADMIN)


ReadKey = Depends(_require_read_key)
"""Dependency of every ``/api/v1`` router, which the app adds when ``settings.reads_need_key``
(outside development by default): scope ``read``."""
ApiKey = Depends(_require_api_key)
"""Route dependency of the write endpoints: ``dependencies=[ApiKey]``."""
AdminKey = Depends(_require_admin_key)
"""Route dependency of the admin endpoints: ``dependencies=[AdminKey]``."""
