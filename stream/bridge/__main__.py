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
        description="Forward device messages from MQTT to Kafka (at-least-once), dead-lettering "
        "invalid ones. Every flag defaults to its WATTSTREAM_BRIDGE_* environment variable.",
    )
    # One flag per setting, so nothing is reachable only through the environment.
    for name, info in BridgeSettings.model_fields.items():
        flag = f"--{name.replace('_', '-')}"
        default = "" if info.default in (None, "") else f" (default {info.default})"
        about = " ".join((info.description or name).split()).replace("%", "%%")
        parser.add_argument(
            flag, dest=name, metavar=name.split("_")[-1].upper(), help=f"{about}{default}"
        )
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
