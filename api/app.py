"""``create_app(settings)``: the FastAPI application and the lifespan owning its resources.

The app fails at start-up, not on the first request, when the database cannot be reached.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from fastapi import FastAPI
from fastapi.responses import FileResponse

from api import errors
from api.deps import Resources, State
from api.routes import health, readings
from api.settings import ApiSettings

STATIC = Path(__file__).parent / "static"


def create_app(settings: ApiSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[State]:
        pool = await asyncpg.create_pool(
            settings.database_url.get_secret_value(), min_size=1, max_size=10
        )
        try:
            yield {"resources": Resources(settings=settings, pool=pool)}
        finally:
            await pool.close()

    app = FastAPI(
        title="WattStream",
        version="0.1.0",
        description="Readings, aggregates and forecasts of a fleet of energy devices.",
        lifespan=lifespan,
    )
    errors.install(app)
    app.include_router(health.router)
    app.include_router(readings.router)

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    return app
