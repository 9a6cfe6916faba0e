"""``/api/v1/ws/live``: the live event feed over a websocket.

Connect with optional query parameters ``kinds`` (comma-separated: readings, hourly, forecasts,
health, alerts, status; default all), ``devices`` (comma-separated ids; default all),
``last_event_id`` (resume after this event, from the replay buffer). Where reads need a key
(``ApiSettings.reads_need_key``), give one of scope ``read`` or wider in the ``X-API-Key``
header or, from a browser (which cannot set headers on a websocket), as the first message,
``{"type": "auth", "api_key": "..."}``, within ``ws_auth_timeout_s``; never in the URL, where
proxies and logs would keep it. The server answers with a ``hello`` frame, then ``event``
frames and, while nothing happens, ``heartbeat`` frames (protocol: :mod:`api.live.events`). The
client may change its filter with ``{"type": "subscribe", "kinds": [...], "devices": [...]}``.

Close codes: 1008 (bad filter, or no valid key where one is needed), 1013 (server full: try
again later), 4008 (the client fell too far behind; reconnect with ``last_event_id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect

from api.deps import Deps, Scope, scope_of
from api.live.hub import BadFilter, Filter, Subscriber

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["live"])

CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN = 1013
CLOSE_TOO_SLOW = 4008
CLOSE_TIMEOUT_S = 2.0
MAX_KEY_LENGTH = 256


class _Kicked(Exception):
    """The hub gave up on this client; the reason goes into the close frame."""


def _split(value: str | None) -> list[str] | None:
    return [part for part in value.split(",") if part.strip()] if value else None


async def _send_loop(websocket: WebSocket, subscriber: Subscriber, deps: Deps) -> None:
    sent = deps.metrics.sent
    heartbeat_s = deps.settings.ws_heartbeat_s
    while True:
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


async def _receive_loop(websocket: WebSocket, subscriber: Subscriber, deps: Deps) -> None:
    while True:
        text = await websocket.receive_text()
        try:
            message: Any = json.loads(text)
            if isinstance(message, dict) and message.get("type") == "auth":
                continue  # a key sent where reads need none (a page with a write key): fine
            if not isinstance(message, dict) or message.get("type") != "subscribe":
                raise BadFilter('expected {"type": "subscribe", "kinds": [...], "devices": [...]}')
            deps.hub.refilter(
                subscriber, Filter.parse(message.get("kinds"), message.get("devices"))
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


async def _first_message_key(websocket: WebSocket, timeout_s: float) -> str | None:
    """The key of a first message ``{"type": "auth", "api_key": ...}`` within ``timeout_s``;
    ``None`` for anything else, nothing in time, or a client that left."""
    try:
        async with asyncio.timeout(timeout_s):
            text = await websocket.receive_text()
        message: Any = json.loads(text)
    except (TimeoutError, ValueError, KeyError, WebSocketDisconnect):
        return None  # KeyError: a binary frame (no "text")
    if not isinstance(message, dict) or message.get("type") != "auth":
        return None
    key = message.get("api_key")
    return key if isinstance(key, str) and len(key) <= MAX_KEY_LENGTH else None


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
    if settings.reads_need_key:
        header = websocket.headers.get("x-api-key")
        if header is None:
            await websocket.accept()
            accepted = True
            header = await _first_message_key(websocket, settings.ws_auth_timeout_s)
        scope = scope_of(settings, header)
        if scope is None or scope < Scope.READ:
            detail = (
                "this feed needs an API key of scope read: the X-API-Key header, or the first "
                'message {"type": "auth", "api_key": "..."}'
            )
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                await _refuse(websocket, CLOSE_POLICY, detail, accepted=accepted)
            return
    try:
        filter_ = Filter.parse(_split(kinds), _split(devices))
        subscriber, resume = deps.hub.subscribe(filter_, last_event_id)
    except BadFilter as exc:
        full = deps.hub.clients >= deps.hub.max_clients
        code = CLOSE_TRY_AGAIN if full else CLOSE_POLICY
        await _refuse(websocket, code, str(exc), accepted=accepted)
        return
    try:
        if not accepted:
            await websocket.accept()
        await websocket.send_text(
            json.dumps(
                {
                    "type": "hello",
                    "stream": deps.hub.stream_id,
                    "heartbeat_s": settings.ws_heartbeat_s,
                    **filter_.describe(),
                    "resume": resume.describe(),
                }
            )
        )
        async with asyncio.TaskGroup() as group:
            group.create_task(_send_loop(websocket, subscriber, deps), name="ws-send")
            group.create_task(_receive_loop(websocket, subscriber, deps), name="ws-receive")
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
