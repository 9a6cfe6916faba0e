"""Opaque keyset cursors for long lists: pure, no I/O.

A cursor is the sort key of the last item of a page, as URL-safe base64 of compact JSON with the
list's name, so a cursor of one list is refused by another. The next page starts strictly after
that key, which stays correct while rows are inserted (unlike an offset).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from api.errors import InvalidRequest


def encode(kind: str, key: list[Any]) -> str:
    raw = json.dumps({"k": kind, "v": key}, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(kind: str, cursor: str, arity: int) -> list[Any]:
    """The key in ``cursor``; a cursor that was not made by :func:`encode` for ``kind`` is a 422."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        body = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest("cursor: not a cursor this API returned", title="Bad cursor") from exc
    if (
        not isinstance(body, dict)
        or body.get("k") != kind
        or not isinstance(body.get("v"), list)
        or len(body["v"]) != arity
    ):
        raise InvalidRequest(f"cursor: not a cursor of the {kind} list", title="Bad cursor")
    key: list[Any] = body["v"]
    return key
