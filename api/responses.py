"""The error answers of the OpenAPI document, in one place: which statuses an operation can
answer besides its success, each a problem+json body (:class:`Problem`) with the headers it
always carries.

Who can answer what:

* a route: ``422`` (its own validation), ``400`` (a body that is not even text), ``404`` (an
  unknown device or model), ``409`` (an ``Idempotency-Key`` still running) - declared by the
  route with :func:`answers`;
* a key check (:mod:`api.deps`): ``401`` (no valid key), ``403`` (too narrow a scope, or a
  device outside the key's restriction) - added where the route needs a key;
* the middlewares (:mod:`api.limits`), in front of every route: ``413`` (body too long),
  ``503`` (no answer within the deadline, a dependency away), ``429`` (rate limit; not on the
  operations endpoints) - added by :func:`middleware_answers` from the settings in force, so
  the document says ``429`` exactly when a rate limit is configured.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

from api.errors import PROBLEM_JSON

Answers = dict[int | str, dict[str, Any]]


class Problem(BaseModel):
    """RFC 9457 problem details; ``errors`` lists every invalid field of a 422."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": 'How to authenticate: `ApiKey header="X-API-Key"`',
            "required": True,
            "schema": {"type": "string"},
        }
    },
    429: _RETRY_AFTER,
    503: _RETRY_AFTER,
}
DESCRIPTIONS: dict[int, str] = {
    400: "The body could not be read at all (not UTF-8)",
    401: "No API key, or one this server does not know (`X-API-Key` header)",
    403: "The key's scope is too narrow, or the device is outside the key's restriction",
    404: "No such device or model",
    409: "A request with this Idempotency-Key is still running; retry later",
    413: "The request body is longer than the server accepts",
    422: "Invalid request; `detail` says what to change (`errors` lists the fields)",
    429: "Too many requests from this client; retry after `Retry-After` seconds",
    503: "A dependency (database, MQTT broker) did not answer in time; retry after "
    "`Retry-After` seconds",
}


def answers(*statuses: int, **descriptions: str) -> Answers:
    """OpenAPI ``responses`` for these error statuses; ``descriptions`` (``s404="..."``)
    replace the generic ones."""
    documented: Answers = {}
    for status in statuses:
        entry: dict[str, Any] = {
            "description": descriptions.get(f"s{status}", DESCRIPTIONS[status]),
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
        documented[status] = entry
    return documented


KEY_ANSWERS = answers(401, 403)
"""Of a route that needs a key."""


def middleware_answers(*, rate_limited: bool) -> Answers:
    """What the middlewares answer in front of a route: 413 and 503 always, 429 where the
    rate limit applies."""
    return answers(413, 429, 503) if rate_limited else answers(413, 503)


def document_problem(app: FastAPI) -> None:
    """Add :class:`Problem` to the app's OpenAPI components (the answers refer to it)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        document = generate()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas.setdefault("Problem", Problem.model_json_schema())
        return document

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented extension point
