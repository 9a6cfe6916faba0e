"""``python -m stream.worker`` / ``wattstream stream``: the Faust worker.

Faust's worker (mode) owns the event loop and the SIGINT/SIGTERM handling, so this entry point
hands it the app instead of calling ``asyncio.run``.
"""

from __future__ import annotations

from collections.abc import Sequence

import faust

from schema.commandline import parse_settings
from stream.settings import StreamSettings
from stream.worker.app import create_app


def parse_args(argv: Sequence[str] | None = None) -> StreamSettings:
    return parse_settings(StreamSettings, "wattstream stream", "Run the Faust stream worker.", argv)


def main(argv: Sequence[str] | None = None) -> None:
    settings = parse_args(argv)
    app = create_app(settings)
    # Logging is already configured (schema.commandline), in the format every service uses.
    faust.Worker(
        app, loglevel=settings.log_level, quiet=True, override_logging=False
    ).execute_from_commandline()


if __name__ == "__main__":
    main()
