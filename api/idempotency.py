"""``Idempotency-Key`` on device commands: a retry with the same key answers the first answer
and publishes nothing new.

A key belongs to the caller (the SHA-256 of its API key), so two clients never share one. The
first request reserves the key (``command_requests``, a row without a response), publishes,
then stores its answer; a retry within ``ttl`` gets that answer back. A retry while the first
is still running is a 409; the same key with a different device or body a 422. A request that
fails (unknown device, broker away) releases its key, so the client's retry can succeed. Keys
older than ``ttl`` are deleted whenever a new one is reserved.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg

from api.errors import ApiProblem, InvalidRequest

MAX_KEY_LENGTH = 255


class KeyInUse(ApiProblem):
    status = 409
    title = "Conflict"


@dataclass(frozen=True)
class Reservation:
    """A key reserved by this request (``replay`` is ``None``), or the stored first answer."""

    client: str
    key: str
    replay: dict[str, Any] | None


def digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


async def reserve(
    conn: asyncpg.Connection, *, api_key: str, key: str, request: str, ttl: timedelta
) -> Reservation:
    """Reserve ``key`` for ``request`` (device id and body, canonical), or the first answer."""
    client, request_hash = digest(api_key), digest(request)
    async with conn.transaction():
        await conn.execute(
            "DELETE FROM command_requests WHERE created_at < now() - $1::interval", ttl
        )
        inserted = await conn.fetchval(
            "INSERT INTO command_requests (client, idempotency_key, request_hash)"
            " VALUES ($1, $2, $3) ON CONFLICT (client, idempotency_key) DO NOTHING"
            " RETURNING true",
            client,
            key,
            request_hash,
        )
        if inserted:
            return Reservation(client, key, None)
        row = await conn.fetchrow(
            "SELECT request_hash, response FROM command_requests"
            " WHERE client = $1 AND idempotency_key = $2",
            client,
            key,
        )
    if row is None:  # deleted between the two statements (expired): a new request after all
        return await reserve(conn, api_key=api_key, key=key, request=request, ttl=ttl)
    if row["request_hash"] != request_hash:
        raise InvalidRequest("this Idempotency-Key was used for a different command; use a new key")
    if row["response"] is None:
        raise KeyInUse("a request with this Idempotency-Key is still running; retry later")
    response = row["response"]
    return Reservation(client, key, json.loads(response) if isinstance(response, str) else response)


async def complete(
    conn: asyncpg.Connection, reservation: Reservation, status: int, response: dict[str, Any]
) -> None:
    await conn.execute(
        "UPDATE command_requests SET status_code = $3, response = $4"
        " WHERE client = $1 AND idempotency_key = $2",
        reservation.client,
        reservation.key,
        status,
        response,
    )


async def release(conn: asyncpg.Connection, reservation: Reservation) -> None:
    await conn.execute(
        "DELETE FROM command_requests WHERE client = $1 AND idempotency_key = $2",
        reservation.client,
        reservation.key,
    )
