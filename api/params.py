"""Path and query parameters shared by the routes, with their OpenAPI descriptions."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator, AwareDatetime, BeforeValidator

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


_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]")


def _iso_8601(value: object) -> object:
    """Only an ISO-8601 date-time, as the description says: pydantic alone would take a bare
    number (``at=0.5``, a query parameter's text) as seconds since 1970."""
    if isinstance(value, str | bytes) and not _DATE_TIME.match(
        value.decode("latin-1") if isinstance(value, bytes) else value
    ):
        raise ValueError("not an ISO-8601 date-time (such as 2026-03-29T00:00:00+01:00)")
    return value


TEXT = r"^[^\x00]*$"
"""Pattern of free text the API stores or looks up: anything but NUL, which a PostgreSQL text
value cannot hold (it was a 500)."""

Instant = Annotated[AwareDatetime, BeforeValidator(_iso_8601), AfterValidator(_supported)]
"""An aware ISO-8601 instant in the range the API can compute with; otherwise a 422 that says
so."""

DevicePath = Annotated[
    str, Path(pattern=DEVICE_ID_PATTERN, description="Device id, e.g. `dev-00000`")
]
Start = Annotated[
    Instant | None,
    Query(
        description="Inclusive, ISO-8601 with a UTC offset (e.g. `2026-03-29T00:00:00+01:00`); "
        "a naive time or a bare number is refused; within [1970-01-01, 9000-01-01); "
        "before `end`"
    ),
]
End = Annotated[
    Instant | None,
    Query(
        description="Exclusive, ISO-8601 with a UTC offset; default: now; after `start`, "
        "within the operation's longest range"
    ),
]
Cursor = Annotated[
    str | None,
    Query(max_length=512, description="`next_cursor` of the previous page"),
]
