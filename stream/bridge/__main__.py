"""``python -m stream.bridge`` / ``wattstream bridge``: flags (env defaults) -> settings -> run."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import Sequence

from stream.bridge.app import run
from stream.settings import BridgeSettings


def parse_args(argv: Sequence[str] | None = None) -> BridgeSettings:
    parser = argparse.ArgumentParser(
        prog="wattstream bridge",
        description="Forward device messages from MQTT to Kafka (at-least-once). "
        "Every flag defaults to its WATTSTREAM_BRIDGE_* environment variable.",
    )
    parser.add_argument("--mqtt-host")
    parser.add_argument("--mqtt-port", type=int)
    parser.add_argument("--mqtt-client-id")
    parser.add_argument("--kafka-bootstrap")
    parser.add_argument("--topic-namespace")
    parser.add_argument("--max-in-flight", type=int)
    parser.add_argument("--metrics-port", type=int)
    parser.add_argument("--log-level", default="INFO")
    args = vars(parser.parse_args(argv))
    logging.basicConfig(
        level=str(args.pop("log_level")).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return BridgeSettings(**{k: v for k, v in args.items() if v is not None})


def main(argv: Sequence[str] | None = None) -> None:
    settings = parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(run(settings))


if __name__ == "__main__":
    main()
