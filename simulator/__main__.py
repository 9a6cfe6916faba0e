"""``python -m simulator`` / ``wattstream simulate``: flags (env defaults) -> settings -> run."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import datetime

from simulator.app import run
from simulator.settings import SimulatorSettings


def parse_args(argv: Sequence[str] | None = None) -> SimulatorSettings:
    parser = argparse.ArgumentParser(
        prog="wattstream simulate",
        description="Publish a simulated device fleet's readings over MQTT. "
        "Every flag defaults to its WATTSTREAM_SIM_* environment variable.",
    )
    parser.add_argument("--mqtt-host")
    parser.add_argument("--mqtt-port", type=int)
    parser.add_argument("--topic-namespace")
    parser.add_argument("--devices", type=int)
    parser.add_argument("--interval-s", type=int)
    parser.add_argument("--speed", type=float)
    parser.add_argument("--backfill", help="live mode: start this far back, e.g. PT6H or 3600")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--start", type=datetime.fromisoformat, help="ISO-8601 with offset")
    parser.add_argument("--max-ticks", type=int)
    parser.add_argument("--log-level", default="INFO")
    args = vars(parser.parse_args(argv))
    logging.basicConfig(
        level=args.pop("log_level"), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return SimulatorSettings(**{k: v for k, v in args.items() if v is not None})


def main(argv: Sequence[str] | None = None) -> None:
    settings = parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(run(settings))


if __name__ == "__main__":
    main()
