"""Domain errors of the API and their mapping to RFC 9457 problem+json responses, in one place.

Exceptions::

    Exception
     └── ApiProblem                 carries its HTTP status, title and detail
          ├── InvalidRequest   422  the request can never succeed as sent (poison)
          ├── NotFound         404
          ├── Unauthorized     401  missing or wrong API key
          ├── Forbidden        403  a valid key without the right (a write key on admin)
          └── Unavailable      503  a dependency (MQTT, Kafka) did not answer: retry later

The database being away surfaces as asyncpg's or the socket's errors (a connect or query
timeout, a refused or lost connection): those are a 503 with ``Retry-After`` too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"


class ApiProblem(Exception):
    """A domain error with its HTTP status, raised by routes and queries."""

    status = 500
    title = "Internal error"

    def __init__(self, detail: str, *, title: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if title is not None:
            self.title = title
        self.extra = extra


class InvalidRequest(ApiProblem):
    status = 422
    title = "Invalid request"


class NotFound(ApiProblem):
    status = 404
    title = "Not found"


class Conflict(ApiProblem):
    status = 409
    title = "Conflict"


class Unauthorized(ApiProblem):
    status = 401
    title = "Unauthorized"


class Forbidden(ApiProblem):
    status = 403
    title = "Forbidden"


class Unavailable(ApiProblem):
    status = 503
    title = "Service unavailable"


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    sent = dict(headers or {})
    if status == 401:
        sent["WWW-Authenticate"] = 'ApiKey header="X-API-Key"'
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=sent or None)


async def _on_validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
    return problem(422, "Invalid request", detail, errors=errors)


def _allowed_methods(request: Request) -> set[str]:
    """Every method the API documents for the request's path. Starlette's 405 names only the
    first route that matched the path, so ``PUT /api/v1/tariffs`` went missing from the
    ``Allow`` of an ``OPTIONS`` there (``GET`` is another route)."""
    allowed: set[str] = set()
    for template, operations in request.app.openapi()["paths"].items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, request.url.path):
            allowed |= {method.upper() for method in operations}
    return allowed | ({"HEAD"} if "GET" in allowed else set())


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    # Its headers too: a 405 names the allowed methods (``Allow``), all of them.
    headers = exc.headers
    if exc.status_code == 405 and (allowed := _allowed_methods(request)):
        headers = {**(headers or {}), "Allow": ", ".join(sorted(allowed))}
    return problem(exc.status_code, str(exc.detail), str(exc.detail), headers=headers)


DATABASE_AWAY: tuple[type[Exception], ...] = (
    TimeoutError,  # asyncpg's connect and command timeouts
    OSError,  # refused, reset
    asyncpg.PostgresConnectionError,
    asyncpg.ConnectionDoesNotExistError,  # lost while in use
    asyncpg.CannotConnectNowError,  # starting or shutting down
)


def install(app: FastAPI, *, retry_after_s: int = 5) -> None:
    async def on_database_away(_request: Request, exc: Exception) -> JSONResponse:
        return problem(
            503,
            "Service unavailable",
            f"the database does not answer ({type(exc).__name__}); retry later",
            headers={"Retry-After": str(retry_after_s)},
        )

    async def on_problem(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiProblem)
        headers = {"Retry-After": str(retry_after_s)} if exc.status == 503 else None
        return problem(exc.status, exc.title, exc.detail, headers=headers, **exc.extra)

    for error in DATABASE_AWAY:
        app.add_exception_handler(error, on_database_away)
    app.add_exception_handler(ApiProblem, on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
