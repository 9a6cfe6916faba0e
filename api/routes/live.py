"""``/api/v1/ws/live``: the live event feed over a websocket.

Connect with optional query parameters ``kinds`` (comma-separated: readings, hourly, forecasts,
health, alerts, status; default all), ``devices`` (comma-separated ids; default all),
``last_event_id`` (resume after this event, from the replay buffer). Where reads need a key
(``ApiSettings.reads_need_key``), give one of scope ``read`` or wider in the ``X-API-Key``
header or, from a browser (which cannot set headers on a websocket), as the first message,
``{"type": "auth", "api_key": "..."}``, within ``ws_auth_timeout_s``; never in the URL, where
proxies and logs would keep it. A bearer JWT (:mod:`api.tokens`) does as well: the
``Authorization: Bearer`` header, or ``{"type": "auth", "token": "..."}``. The server answers
with a ``hello`` frame, then ``event`` frames and, while nothing happens, ``heartbeat`` frames
(protocol: :mod:`api.live.events`). The client may change its filter with
``{"type": "subscribe", "kinds": [...], "devices": [...]}``.

A key limited to some devices (``device_keys``) sees only their events; asking for another
device is refused. Close codes: 1008 (bad filter, or no valid key where one is needed), 1013
(the process has ``ws_max_clients`` clients, or the key ``ws_max_clients_per_key``: try again
later), 4008 (the client fell too far behind - its queue full for ``ws_max_behind_s``; it is
dropped without holding up the others; reconnect with ``last_event_id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect

from api.access import Grant, grant_of
from api.deps import Deps
from api.errors import ApiProblem
from api.live.hub import BadFilter, Filter, Full, Subscriber
from api.tokens import token_grant

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["live"])

CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN = 1013
CLOSE_TOO_SLOW = 4008
CLOSE_TIMEOUT_S = 2.0
MAX_CREDENTIAL_LENGTH = 4096


class _Kicked(Exception):
    """The hub gave up on this client; the reason goes into the close frame."""


def _split(value: str | None) -> list[str] | None:
    return [part for part in value.split(",") if part.strip()] if value else None


async def _send_loop(websocket: WebSocket, subscriber: Subscriber, deps: Deps) -> None:
    sent = deps.metrics.sent
    heartbeat_s = deps.settings.ws_heartbeat_s
    while True:
        frame = subscriber.upstream_frame(deps.hub.upstream)
        if frame is not None:  # Kafka went away or came back: before any further event
            await websocket.send_text(frame)
            continue
        item = subscriber.queue.pop()
        if item is None:
            subscriber.wakeup.clear()
            try:
                async with asyncio.timeout(heartbeat_s):
                    await subscriber.wakeup.wait()
            except TimeoutError:
                await websocket.send_text(
                    json.dumps(
                        {
                            "type": "heartbeat",
                            "ts": datetime.now(UTC).isoformat(),
                            "last_event_id": deps.hub.last_event_id,
                        }
                    )
                )
                sent.heartbeats += 1
            continue
        event, coalesced = item
        await websocket.send_text(event.with_coalesced(coalesced))
        sent.events += 1


def _filter(
    kinds: Iterable[str] | None, devices: Iterable[str] | None, grant: Grant | None
) -> Filter:
    """The client's filter, within its key's devices."""
    filter_ = Filter.parse(kinds, devices)
    return filter_.limited_to(grant.allows) if grant is not None and grant.restricted else filter_


async def _receive_loop(
    websocket: WebSocket, subscriber: Subscriber, deps: Deps, grant: Grant | None
) -> None:
    while True:
        text = await websocket.receive_text()
        try:
            message: Any = json.loads(text)
            if isinstance(message, dict) and message.get("type") == "auth":
                continue  # a key sent where reads need none (a page with a write key): fine
            if not isinstance(message, dict) or message.get("type") != "subscribe":
                raise BadFilter('expected {"type": "subscribe", "kinds": [...], "devices": [...]}')
            deps.hub.refilter(
                subscriber, _filter(message.get("kinds"), message.get("devices"), grant)
            )
        except (ValueError, TypeError, AttributeError) as exc:  # BadFilter, JSON errors
            await websocket.send_text(json.dumps({"type": "error", "detail": str(exc)}))
            continue
        await websocket.send_text(
            json.dumps({"type": "subscribed", **subscriber.filter.describe()})
        )


async def _watch(subscriber: Subscriber) -> None:
    await subscriber.kicked.wait()
    raise _Kicked(subscriber.kick_reason or "too slow")


async def _refuse(websocket: WebSocket, code: int, detail: str, *, accepted: bool = False) -> None:
    if not accepted:
        await websocket.accept()
    await websocket.send_text(json.dumps({"type": "error", "detail": detail}))
    await websocket.close(code=code, reason=detail[:120])


async def _first_message_credentials(
    websocket: WebSocket, timeout_s: float
) -> tuple[str | None, str | None]:
    """The key or bearer token of a first message ``{"type": "auth", "api_key": ...}`` or
    ``{"type": "auth", "token": ...}`` within ``timeout_s``; ``(None, None)`` for anything
    else, nothing in time, or a client that left."""
    try:
        async with asyncio.timeout(timeout_s):
            text = await websocket.receive_text()
        message: Any = json.loads(text)
    except (TimeoutError, ValueError, KeyError, WebSocketDisconnect):
        return None, None  # KeyError: a binary frame (no "text")
    if not isinstance(message, dict) or message.get("type") != "auth":
        return None, None
    key, token = message.get("api_key"), message.get("token")
    return _credential(key), _credential(token)


def _credential(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= MAX_CREDENTIAL_LENGTH else None


def _bearer(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    return _credential(token.strip()) if scheme.lower() == "bearer" else None


async def _grant(deps: Deps, key: str | None, token: str | None) -> Grant | None:
    """The client's rights (every valid grant has scope read); ``None``: refuse it."""
    if token is not None:
        try:  # off the event loop: verifying may fetch the identity provider's keys
            return await asyncio.to_thread(token_grant, deps.settings, token, deps.keys)
        except ApiProblem:  # 401, 403 or 503: the feed closes with 1008 either way
            return None
    return grant_of(deps.settings, key)


@router.websocket("/ws/live")
async def live_feed(
    *,
    websocket: WebSocket,
    deps: Deps,
    kinds: Annotated[str | None, Query()] = None,
    devices: Annotated[str | None, Query()] = None,
    last_event_id: Annotated[str | None, Query(max_length=64)] = None,
) -> None:
    settings = deps.settings
    accepted = False
    grant: Grant | None = None
    client: str | None = None
    if settings.reads_need_key:
        key = websocket.headers.get("x-api-key")
        token = _bearer(websocket.headers.get("authorization"))
        if key is None and token is None:
            await websocket.accept()
            accepted = True
            key, token = await _first_message_credentials(websocket, settings.ws_auth_timeout_s)
        grant = await _grant(deps, key, token)
        credential = token or key
        if grant is not None and credential:
            client = hashlib.sha256(credential.encode()).hexdigest()
        else:
            detail = (
                "this feed needs an API key of scope read or a bearer token: the X-API-Key or "
                'Authorization header, or the first message {"type": "auth", "api_key": "..."} '
                '(or "token": "...")'
            )
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                await _refuse(websocket, CLOSE_POLICY, detail, accepted=accepted)
            return
    try:
        filter_ = _filter(_split(kinds), _split(devices), grant)
        subscriber, resume = deps.hub.subscribe(filter_, last_event_id, client)
    except BadFilter as exc:
        code = CLOSE_TRY_AGAIN if isinstance(exc, Full) else CLOSE_POLICY
        await _refuse(websocket, code, str(exc), accepted=accepted)
        return
    try:
        if not accepted:
            await websocket.accept()
        upstream = deps.hub.upstream
        subscriber.upstream_sent = upstream.version  # the hello tells it
        await websocket.send_text(
            json.dumps(
                {
                    "type": "hello",
                    "stream": deps.hub.stream_id,
                    "heartbeat_s": settings.ws_heartbeat_s,
                    **filter_.describe(),
                    "resume": resume.describe(),
                    "upstream": upstream.describe(),
                }
            )
        )
        async with asyncio.TaskGroup() as group:
            group.create_task(_send_loop(websocket, subscriber, deps), name="ws-send")
            group.create_task(_receive_loop(websocket, subscriber, deps, grant), name="ws-receive")
            group.create_task(_watch(subscriber), name="ws-watch")
    except* WebSocketDisconnect:
        pass  # the client left
    except* _Kicked as kicked:
        reason = str(kicked.exceptions[0])
        # A client that reads nothing may never take the close frame: do not wait for it.
        with contextlib.suppress(TimeoutError, WebSocketDisconnect, RuntimeError):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await websocket.close(code=CLOSE_TOO_SLOW, reason=reason[:120])
    finally:
        deps.hub.unsubscribe(subscriber)
