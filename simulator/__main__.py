"""``python -m simulator`` / ``wattstream simulate``: flags (env defaults) -> settings -> run.

``python -m simulator history ...`` writes the fleet's hourly energy history instead;
``python -m simulator identities ...`` (the flags of a run) prints, as JSON, the broker
identities that run would connect with, for ``wattstream services provision``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from simulator.durations import duration_seconds
from simulator.errors import SimulatorError
from simulator.scenarios import Scenario
from simulator.settings import SimulatorSettings


def _aware(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset (e.g. +00:00)")
    return value


def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wattstream simulate",
        description="Publish a simulated device fleet over MQTT. Every flag defaults to its "
        "WATTSTREAM_SIM_* environment variable (e.g. --mqtt-port: WATTSTREAM_SIM_MQTT_PORT). "
        "'wattstream simulate history --help': the hourly history export.",
    )
    broker = parser.add_argument_group("broker")
    broker.add_argument("--mqtt-host")
    broker.add_argument("--mqtt-port", type=int)
    broker.add_argument("--mqtt-username")
    broker.add_argument(
        "--mqtt-password", help="prefer WATTSTREAM_SIM_MQTT_PASSWORD (flags show in ps)"
    )
    broker.add_argument("--mqtt-tls", action="store_true", default=None)
    broker.add_argument("--mqtt-ca-file", type=Path, help="CA bundle for the broker's certificate")
    broker.add_argument("--mqtt-cert-file", type=Path, help="client certificate")
    broker.add_argument("--mqtt-key-file", type=Path, help="client certificate's key")
    broker.add_argument("--mqtt-tls-insecure", action="store_true", default=None)
    broker.add_argument("--topic-namespace")
    broker.add_argument("--client-id-prefix")
    broker.add_argument(
        "--connections", help="per-device (default: a connection and last will each) or pooled:N"
    )
    broker.add_argument("--backlog", type=int, help="most messages awaiting PUBACK (20000)")
    broker.add_argument("--max-inflight", type=int, help="unacknowledged per connection (100)")
    broker.add_argument(
        "--resend-window-s",
        type=float,
        help="after a reconnect, publish again what was acknowledged this long before (3)",
    )

    fleet = parser.add_argument_group("fleet")
    fleet.add_argument("--fleet", dest="fleet_file", type=Path, help="TOML fleet definition")
    fleet.add_argument("--devices", type=int)
    fleet.add_argument("--interval-s", type=int, help="seconds between readings (60)")
    fleet.add_argument("--interval", dest="interval", help="the same as a duration: 60s, 15m, 1h")
    fleet.add_argument("--seed", type=int)
    fleet.add_argument(
        "--scenario",
        dest="scenarios",
        action="append",
        choices=[s.value for s in Scenario],
        help="repeatable; see simulator.scenarios",
    )
    fleet.add_argument(
        "--anomaly",
        dest="anomalies",
        action="append",
        metavar="SPEC",
        help="planned anomaly, e.g. device=dev-00003,kind=spike,after=2h,duration=15m,"
        "magnitude=3 (repeatable)",
    )
    fleet.add_argument("--labels", dest="labels_file", type=Path, help="JSON lines of labels")
    fleet.add_argument(
        "--journal",
        dest="journal_file",
        type=Path,
        help="append every reading the broker acknowledged (seq ranges) for 'wattstream audit'",
    )
    fleet.add_argument("--journal-flush-s", type=float, help="journal flush period (0.5)")
    fleet.add_argument(
        "--labels-topic", action="store_true", default=None, help="also publish on {root}/labels"
    )

    clock = parser.add_argument_group("time")
    clock.add_argument("--speed", type=float, help="simulated seconds per wall second")
    clock.add_argument("--backfill", help="live mode: publish this much past first (14d, PT6H)")
    clock.add_argument("--start", type=_aware, help="ISO-8601 with offset")
    clock.add_argument("--max-ticks", type=int, help="stop after this many readings per device")
    clock.add_argument("--progress-s", type=float, help="progress line every N s (10; 0: off)")
    parser.add_argument("--log-level", default="INFO")
    return parser


def _history_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wattstream simulate history",
        description="Write the fleet's hourly energy (one schema.history.HourlyEnergy JSON line "
        "per device and UTC hour), from the same device models as the live readings.",
    )
    parser.add_argument("--devices", type=int, required=True)
    parser.add_argument("--days", type=int, required=True)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--start", type=_aware, help="ISO-8601 with offset (default: 00:00 UTC, --days ago)"
    )
    parser.add_argument("--interval-s", type=int, help="seconds between readings (900)")
    parser.add_argument("--interval", help="the same as a duration: 15m")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--log-level", default="INFO")
    return parser


def _logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _interval(args: dict[str, Any]) -> None:
    text = args.pop("interval", None)
    if text is not None:
        if args.get("interval_s") is not None:
            raise SystemExit("give --interval or --interval-s, not both")
        try:
            args["interval_s"] = duration_seconds(text)
        except ValueError as exc:
            raise SystemExit(f"--interval: {exc}") from None


def parse_args(argv: Sequence[str] | None = None) -> SimulatorSettings:
    args = vars(_run_parser().parse_args(argv))
    _logging(args.pop("log_level"))
    _interval(args)
    return SimulatorSettings(**{k: v for k, v in args.items() if v is not None})


def history_main(argv: Sequence[str]) -> None:
    from simulator.history import export_history  # noqa: PLC0415 - only this command needs it

    args = vars(_history_parser().parse_args(argv))
    _logging(args.pop("log_level"))
    _interval(args)
    days = args["days"]
    start = args["start"]
    if start is None:
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        start = today - timedelta(days=days)
    export_history(
        args["out"],
        devices=args["devices"],
        days=days,
        seed=args["seed"],
        start=start,
        interval_s=args["interval_s"] or 900,
    )


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["history"]:
            history_main(argv[1:])
            return
        if argv[:1] == ["identities"]:
            from simulator.app import identities  # noqa: PLC0415

            # The same flags as a run; prints what `wattstream services provision` reads.
            print(identities(parse_args(argv[1:])).model_dump_json(indent=1))
            return
        settings = parse_args(argv)
        with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
            from simulator.app import run  # noqa: PLC0415 - keep `history` free of MQTT imports

            asyncio.run(run(settings))
    except (SimulatorError, ValidationError) as exc:
        print(f"wattstream simulate: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
