"""``/live`` (the process answers) and ``/ready`` (its database answers)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import Deps
from api.errors import problem

router = APIRouter(tags=["health"])


@router.get("/live")
async def live() -> dict[str, str]:
    return {"status": "live"}


@router.get("/ready", response_model=None)
async def ready(deps: Deps) -> dict[str, str] | JSONResponse:
    try:
        async with deps.pool.acquire(timeout=2) as conn:
            await conn.fetchval("SELECT 1")
    except (OSError, TimeoutError) as exc:
        return problem(503, "Not ready", f"database unreachable: {exc}")
    return {"status": "ready"}
