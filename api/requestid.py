"""Every HTTP request and websocket gets an id: the client's ``X-Request-ID`` when it is a sane
one (1-128 letters, digits, ``.``, ``_``, ``-``), else a new one. It is set as
:data:`schema.logformat.request_id` while the request is served (so every event logged for it
carries it in JSON logs) and sent back in the ``X-Request-ID`` header."""

from __future__ import annotations

import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schema.logformat import request_id

HEADER = b"x-request-id"
_SANE = re.compile(rb"[A-Za-z0-9._-]{1,128}")


def request_id_of(scope: Scope) -> str:
    given: bytes | None = dict(scope.get("headers", [])).get(HEADER)
    if given is not None and _SANE.fullmatch(given):
        return given.decode()
    return uuid.uuid4().hex


class RequestId:
    """Pure ASGI middleware; outermost, so every other layer logs with the id."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"}:
            await self._app(scope, receive, send)
            return
        current = request_id_of(scope)

        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != HEADER]
                message = {**message, "headers": [*headers, (HEADER, current.encode())]}
            await send(message)

        token = request_id.set(current)
        try:
            await self._app(scope, receive, tagged)
        finally:
            request_id.reset(token)
