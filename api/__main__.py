"""``python -m api`` / ``wattstream api``: flags (env defaults) -> settings -> uvicorn."""

from __future__ import annotations

import gc
from collections.abc import Sequence

import uvicorn

from api.app import create_app
from api.settings import ApiSettings
from schema.commandline import parse_settings


def parse_args(argv: Sequence[str] | None = None) -> ApiSettings:
    return parse_settings(ApiSettings, "wattstream api", "Serve the REST API and dashboard.", argv)


def main(argv: Sequence[str] | None = None) -> None:
    settings = parse_args(argv)
    app = create_app(settings)
    # What is imported and built by now (modules, routes, models, schemas: ~90k objects) lives
    # as long as the process: out of the collector's sight, a full collection scans only what
    # came later instead of stalling the event loop for ~50 ms (measured on the 2-core
    # development machine; every request waiting meanwhile: bench/api_load.py, p99).
    gc.collect()
    gc.freeze()
    # uvicorn owns the event loop and turns SIGINT/SIGTERM into a graceful shutdown; its
    # loggers keep the format configured above (log_config=None).
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        log_level=settings.log_level.lower(),
        # uvloop and httptools: most of a cheap request's time was the server's own loop and
        # HTTP parsing (bench/api_load.py: /live cost what the 1-hour aggregates did).
        loop="uvloop",
        http="httptools",
        # HTTPS when both are set (the settings refuse one without the other).
        ssl_certfile=str(settings.ssl_certfile) if settings.ssl_certfile else None,
        ssl_keyfile=str(settings.ssl_keyfile) if settings.ssl_keyfile else None,
    )


if __name__ == "__main__":
    main()
