"""``/live`` (the process answers), ``/ready`` (its database and Kafka answer), ``/metrics``."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import Deps
from api.errors import problem
from api.responses import answers

router = APIRouter(tags=["operations"])

PROBE_TIMEOUT_S = 2.0


@router.get("/live")
async def live() -> dict[str, str]:
    return {"status": "live"}


async def _database(deps: Deps) -> str | None:
    try:
        async with deps.pool.acquire(timeout=PROBE_TIMEOUT_S) as conn:
            await conn.fetchval("SELECT 1", timeout=PROBE_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        return f"database unreachable: {exc!r}"
    return None


@router.get(
    "/ready",
    response_model=None,
    responses=answers(503, s503="The database or Kafka does not answer"),
)
async def ready(deps: Deps) -> dict[str, Any] | JSONResponse:
    """200 when the database and Kafka both answer within 2 s, else 503 saying which not.

    ``live_feed`` tells whether the live feed has found and positioned itself on every topic
    (``assigned``); topics that do not exist yet are listed and looked for again."""
    database, kafka = await asyncio.gather(_database(deps), deps.feed.probe(PROBE_TIMEOUT_S))
    failures = [f for f in (database, kafka) if f]
    if failures:
        retry_after = str(deps.settings.retry_after_s)
        return problem(503, "Not ready", "; ".join(failures), headers={"Retry-After": retry_after})
    feed = deps.feed
    return {
        "status": "ready",
        "live_feed": {
            "assigned": feed.assigned.is_set(),
            "partitions": feed.partitions,
            "missing_topics": feed.missing_topics,
        },
    }


@router.get("/metrics", response_class=Response)
async def metrics(deps: Deps) -> Response:
    """Prometheus text format."""
    return Response(generate_latest(deps.metrics.registry), media_type=CONTENT_TYPE_LATEST)
