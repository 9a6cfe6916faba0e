"""``python -m stream.worker`` / ``wattstream stream``: the Faust worker.

Faust's worker (mode) owns the event loop and the SIGINT/SIGTERM handling, so this entry point
hands it the app instead of calling ``asyncio.run``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import faust

from stream.settings import StreamSettings
from stream.worker.app import create_app


def parse_args(argv: Sequence[str] | None = None) -> tuple[StreamSettings, str]:
    parser = argparse.ArgumentParser(
        prog="wattstream stream",
        description="Run the Faust stream worker. "
        "Every flag defaults to its WATTSTREAM_STREAM_* environment variable.",
    )
    parser.add_argument("--kafka-bootstrap")
    parser.add_argument("--database-url")
    parser.add_argument("--app-id")
    parser.add_argument("--topic-namespace")
    parser.add_argument("--data-dir")
    parser.add_argument("--log-level", default="info")
    args = vars(parser.parse_args(argv))
    log_level = str(args.pop("log_level")).lower()
    return StreamSettings(**{k: v for k, v in args.items() if v is not None}), log_level


def main(argv: Sequence[str] | None = None) -> None:
    settings, log_level = parse_args(argv)
    app = create_app(settings)
    faust.Worker(app, loglevel=log_level, quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
