"""``python -m stream.bridge`` / ``wattstream bridge``: flags (env defaults) -> settings -> run."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import uvloop

from schema.commandline import parse_settings
from stream.bridge.app import run
from stream.settings import BridgeSettings

DESCRIPTION = (
    "Forward device messages from MQTT to Kafka (at-least-once), dead-lettering invalid ones."
)


def parse_args(argv: Sequence[str] | None = None) -> BridgeSettings:
    return parse_settings(BridgeSettings, "wattstream bridge", DESCRIPTION, argv)


def main(argv: Sequence[str] | None = None) -> None:
    settings = parse_args(argv)
    with (
        contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError),
        # uvloop: the bridge turns its loop over a few times per message.
        asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
    ):
        runner.run(run(settings))


if __name__ == "__main__":
    main()
