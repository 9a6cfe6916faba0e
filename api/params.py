"""Path and query parameters shared by the routes, with their OpenAPI descriptions."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import AwareDatetime

from schema.wire import DEVICE_ID_PATTERN

DevicePath = Annotated[
    str, Path(pattern=DEVICE_ID_PATTERN, description="Device id, e.g. `dev-00000`")
]
Start = Annotated[
    AwareDatetime | None,
    Query(
        description="Inclusive, ISO-8601 with a UTC offset (e.g. `2026-03-29T00:00:00+01:00`); "
        "a naive time is refused"
    ),
]
End = Annotated[
    AwareDatetime | None,
    Query(description="Exclusive, ISO-8601 with a UTC offset; default: now"),
]
Cursor = Annotated[
    str | None,
    Query(max_length=512, description="`next_cursor` of the previous page"),
]
