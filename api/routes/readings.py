"""``GET /api/v1/devices/{device_id}/readings``: raw readings of one device in a time range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Query
from pydantic import AwareDatetime

from api import queries
from api.deps import Deps
from api.errors import ApiProblem
from api.models import ReadingOut, ReadingsPage
from schema.wire import DEVICE_ID_PATTERN

router = APIRouter(prefix="/api/v1", tags=["readings"])

DEFAULT_WINDOW = timedelta(hours=24)


@router.get("/devices/{device_id}/readings", response_model=ReadingsPage)
async def device_readings(
    deps: Deps,
    device_id: Annotated[str, Path(pattern=DEVICE_ID_PATTERN)],
    start: Annotated[
        AwareDatetime | None, Query(description="Inclusive, ISO-8601 with offset; default end-24h")
    ] = None,
    end: Annotated[
        AwareDatetime | None, Query(description="Exclusive, ISO-8601 with offset; default now")
    ] = None,
) -> ReadingsPage:
    end = end or datetime.now(UTC)
    start = start or end - DEFAULT_WINDOW
    if end <= start:
        raise ApiProblem(422, "Invalid range", f"end ({end}) must be after start ({start})")
    if end - start > deps.settings.max_range:
        raise ApiProblem(
            422,
            "Range too long",
            f"{end - start} is longer than the maximum of {deps.settings.max_range}",
        )
    async with deps.pool.acquire() as conn:
        rows = await queries.readings_in_range(conn, device_id, start, end, deps.settings.max_rows)
    items = [ReadingOut(**{**row, "ts": row["ts"].astimezone(ZoneInfo(row["tz"]))}) for row in rows]
    return ReadingsPage(device_id=device_id, start=start, end=end, count=len(items), items=items)
