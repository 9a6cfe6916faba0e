"""Typed state the lifespan yields, and the ``Depends`` aliases routes use to reach it."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
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
    description="One of the keys in WATTSTREAM_API_API_KEYS (write endpoints) or "
    "WATTSTREAM_API_ADMIN_API_KEYS (admin and write endpoints).",
)


def _matches(presented: str, keys: tuple[SecretStr, ...]) -> bool:
    """Constant-time comparison against every key (no early exit on a match)."""
    candidate = presented.encode()
    found = False
    for key in keys:
        found |= secrets.compare_digest(candidate, key.get_secret_value().encode())
    return found


def key_is_valid(settings: ApiSettings, presented: str | None) -> bool:
    """Whether ``presented`` is a write or an admin key."""
    if not presented:
        return False
    return _matches(presented, (*settings.api_keys, *settings.admin_api_keys))


def _require_api_key(
    request: Request, presented: Annotated[str | None, Security(_api_key_header)]
) -> None:
    settings = _resources(request).settings
    if not settings.api_keys and not settings.admin_api_keys:
        raise Unauthorized("no API keys are configured on this server (WATTSTREAM_API_API_KEYS)")
    if not presented:
        raise Unauthorized("this endpoint needs an API key in the X-API-Key header")
    if not key_is_valid(settings, presented):
        raise Unauthorized("the X-API-Key is not valid")


def _require_admin_key(
    request: Request,
    presented: Annotated[str | None, Security(_api_key_header)],
    _valid: Annotated[None, Depends(_require_api_key)],
) -> None:
    """A valid key first (the write check, run once per request however many routes and
    routers ask for it), then an admin one."""
    assert presented is not None  # checked by _require_api_key
    if not _matches(presented, _resources(request).settings.admin_api_keys):
        raise Forbidden(
            "this endpoint needs an admin key (WATTSTREAM_API_ADMIN_API_KEYS); "
            "the key given is a write key"
        )


ApiKey = Depends(_require_api_key)
"""Route dependency of the write endpoints: ``dependencies=[ApiKey]``."""
AdminKey = Depends(_require_admin_key)
"""Route dependency of the admin endpoints: ``dependencies=[AdminKey]``."""
