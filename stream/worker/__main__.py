"""``python -m stream.worker`` / ``wattstream stream``: the Faust worker.

Faust's worker (mode) owns the event loop and the SIGINT/SIGTERM handling, so this entry point
hands it the app (through :func:`stream.worker.lifetime.run`, which creates the topics first)
instead of calling ``asyncio.run``.
"""

from __future__ import annotations

from collections.abc import Sequence

from schema.commandline import parse_settings
from stream.settings import StreamSettings
from stream.worker import lifetime
from stream.worker.app import create_app


def parse_args(argv: Sequence[str] | None = None) -> StreamSettings:
    return parse_settings(StreamSettings, "wattstream stream", "Run the Faust stream worker.", argv)


def main(argv: Sequence[str] | None = None) -> None:
    settings = parse_args(argv)
    # Logging is already configured (schema.commandline), in the format every service uses.
    lifetime.run(settings, create_app)


if __name__ == "__main__":
    main()
