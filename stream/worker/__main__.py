"""``python -m stream.worker`` / ``wattstream stream``: the Faust worker.

Faust's worker (mode) owns the event loop and the SIGINT/SIGTERM handling, so this entry point
hands it the app (through :func:`stream.worker.lifetime.run`, which creates the topics first)
instead of calling ``asyncio.run``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from stream.settings import StreamSettings
from stream.worker import lifetime
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
    lifetime.run(settings, log_level, create_app)


if __name__ == "__main__":
    main()
