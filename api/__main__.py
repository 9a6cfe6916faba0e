"""``python -m api`` / ``wattstream api``: flags (env defaults) -> settings -> uvicorn."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import uvicorn

from api.app import create_app
from api.settings import ApiSettings


def parse_args(argv: Sequence[str] | None = None) -> tuple[ApiSettings, str]:
    parser = argparse.ArgumentParser(
        prog="wattstream api",
        description="Serve the REST API and dashboard. "
        "Every flag defaults to its WATTSTREAM_API_* environment variable.",
    )
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--database-url")
    parser.add_argument("--log-level", default="info")
    args = vars(parser.parse_args(argv))
    log_level = str(args.pop("log_level")).lower()
    return ApiSettings(**{k: v for k, v in args.items() if v is not None}), log_level


def main(argv: Sequence[str] | None = None) -> None:
    settings, log_level = parse_args(argv)
    # uvicorn owns the event loop and turns SIGINT/SIGTERM into a graceful shutdown.
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        # HTTPS when both are set (the settings refuse one without the other).
        ssl_certfile=str(settings.ssl_certfile) if settings.ssl_certfile else None,
        ssl_keyfile=str(settings.ssl_keyfile) if settings.ssl_keyfile else None,
    )


if __name__ == "__main__":
    main()
