"""Typed state the lifespan yields, and the ``Depends`` aliases routes use to reach it.

Every dependency here is ``async``: FastAPI runs a plain ``def`` dependency in its thread pool,
and a request that hopped threads for each of them (resources, key check, caller, device)
waited for the GIL to come back as often (up to the 5 ms switch interval each, under load;
bench/api_load.py). Only work that may block leaves the loop: a JWKS fetch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, TypedDict

import asyncpg
from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from api.access import Grant, Scope, authorize, require_scope
from api.commands import CommandPublisher
from api.jwks import JwksKeys
from api.kpi.store import TariffStore
from api.live.feed import KafkaFeed
from api.live.hub import Hub
from api.metrics import Metrics
from api.params import DevicePath
from api.settings import ApiSettings
from api.tokens import token_grant
from api.training import TrainingRunner


@dataclass(frozen=True)
class Resources:
    settings: ApiSettings
    pool: asyncpg.Pool
    hub: Hub
    feed: KafkaFeed
    commands: CommandPublisher
    metrics: Metrics
    tariffs: TariffStore
    training: TrainingRunner
    keys: JwksKeys | None = None
    """The identity provider's public keys, where ``settings.jwt_jwks`` names them."""


class State(TypedDict):
    resources: Resources


async def _resources(connection: HTTPConnection) -> Resources:
    """The lifespan's resources, from a request or a websocket."""
    resources: Resources = connection.state.resources
    return resources


Deps = Annotated[Resources, Depends(_resources)]

_api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="A key of WATTSTREAM_API_READ_API_KEYS (scope read), WATTSTREAM_API_API_KEYS "
    "(write: also read) or WATTSTREAM_API_ADMIN_API_KEYS (admin: also write and read), or of "
    "WATTSTREAM_API_DEVICE_KEYS (any scope, limited to some devices).",
)


_bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="JWT",
    description="A JWT: HS256 signed with WATTSTREAM_API_JWT_SECRET, or RS256/ES256 signed with "
    "a key of the JWKS WATTSTREAM_API_JWT_JWKS; claims exp, scope (read, write, admin), "
    "optionally devices and device_prefixes (see docs/security.md).",
)
KeyHeader = Annotated[str | None, Security(_api_key_header)]
Bearer = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]


async def _check(
    connection: HTTPConnection,
    key: str | None,
    bearer: HTTPAuthorizationCredentials | None,
    needed: Scope,
) -> None:
    """Authorize by the bearer token if there is one, else the key; keep the grant for the
    routes (:data:`Caller`, :data:`AllowedDevice`)."""
    resources: Resources = connection.state.resources
    settings = resources.settings
    if bearer is None:
        connection.state.grant = authorize(settings, key, needed)
        return
    if resources.keys is None:  # HS256 with the shared secret: no I/O
        grant = token_grant(settings, bearer.credentials, None)
    else:  # the JWKS may be fetched (blocking I/O): in the thread pool
        grant = await run_in_threadpool(token_grant, settings, bearer.credentials, resources.keys)
    connection.state.grant = require_scope(grant, needed)


async def _require_read_key(request: Request, key: KeyHeader, bearer: Bearer) -> None:
    await _check(request, key, bearer, Scope.READ)


async def _require_api_key(request: Request, key: KeyHeader, bearer: Bearer) -> None:
    await _check(request, key, bearer, Scope.WRITE)


async def _require_admin_key(request: Request, key: KeyHeader, bearer: Bearer) -> None:
    await _check(request, key, bearer, Scope.ADMIN)


ReadKey = Depends(_require_read_key)
"""Dependency of every ``/api/v1`` router, which the app adds when ``settings.reads_need_key``
(outside development by default): scope ``read``."""
ApiKey = Depends(_require_api_key)
"""Route dependency of the write endpoints: ``dependencies=[ApiKey]``."""
AdminKey = Depends(_require_admin_key)
"""Route dependency of the admin endpoints: ``dependencies=[AdminKey]``."""


async def _caller(request: Request) -> Grant | None:
    """The grant a key dependency kept; ``None`` where no key was needed (open reads)."""
    grant: Grant | None = getattr(request.state, "grant", None)
    return grant


Caller = Annotated[Grant | None, Depends(_caller)]
"""The caller's rights, after the route's key dependencies ran."""


async def _allowed_device(caller: Caller, device_id: DevicePath) -> str:
    if caller is not None:
        caller.check_device(device_id)
    return device_id


AllowedDevice = Annotated[str, Depends(_allowed_device)]
"""The ``device_id`` path parameter, refused (403) outside the caller's devices."""


async def _fleet_wide(caller: Caller) -> None:
    if caller is not None:
        caller.check_fleet()


FleetWide = Depends(_fleet_wide)
"""Route dependency of the fleet-wide views: a key limited to some devices is refused (403)."""
