"""Path and query parameters shared by the routes, with their OpenAPI descriptions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator, AwareDatetime

from schema.wire import DEVICE_ID_PATTERN, EARLIEST_TS, LATEST_TS


def _supported(at: datetime) -> datetime:
    """Instants near the ends of ``datetime`` overflow in range arithmetic and time-zone
    conversions (a 500); no reading can lie there anyway (see ``schema.wire``)."""
    if not EARLIEST_TS <= at < LATEST_TS:
        raise ValueError(
            f"must lie in [{EARLIEST_TS.isoformat()}, {LATEST_TS.isoformat()}), the range "
            "readings can have"
        )
    return at


Instant = Annotated[AwareDatetime, AfterValidator(_supported)]
"""An aware instant in the range the API can compute with; otherwise a 422 that says so."""

DevicePath = Annotated[
    str, Path(pattern=DEVICE_ID_PATTERN, description="Device id, e.g. `dev-00000`")
]
Start = Annotated[
    Instant | None,
    Query(
        description="Inclusive, ISO-8601 with a UTC offset (e.g. `2026-03-29T00:00:00+01:00`); "
        "a naive time is refused"
    ),
]
End = Annotated[
    Instant | None,
    Query(description="Exclusive, ISO-8601 with a UTC offset; default: now"),
]
Cursor = Annotated[
    str | None,
    Query(max_length=512, description="`next_cursor` of the previous page"),
]
