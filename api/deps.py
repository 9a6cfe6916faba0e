"""Typed state the lifespan yields, and the ``Depends`` aliases routes use to reach it."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated, TypedDict

import asyncpg
from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from starlette.requests import HTTPConnection

from api.commands import CommandPublisher
from api.errors import Unauthorized
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
    description="One of the keys in WATTSTREAM_API_API_KEYS.",
)


def key_is_valid(settings: ApiSettings, presented: str | None) -> bool:
    """Constant-time comparison against every configured key."""
    if not presented:
        return False
    candidate = presented.encode()
    return any(
        secrets.compare_digest(candidate, key.get_secret_value().encode())
        for key in settings.api_keys
    )


def _require_api_key(
    request: Request, presented: Annotated[str | None, Security(_api_key_header)]
) -> None:
    settings = _resources(request).settings
    if not settings.api_keys:
        raise Unauthorized("no API keys are configured on this server (WATTSTREAM_API_API_KEYS)")
    if not presented:
        raise Unauthorized("this endpoint needs an API key in the X-API-Key header")
    if not key_is_valid(settings, presented):
        raise Unauthorized("the X-API-Key is not valid")


ApiKey = Depends(_require_api_key)
"""Route dependency: ``dependencies=[ApiKey]``."""
