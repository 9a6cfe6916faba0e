"""``python -m simulator`` / ``wattstream simulate``: flags (env defaults) -> settings -> run.

``python -m simulator history ...`` writes the fleet's hourly energy history instead;
``python -m simulator identities ...`` (the flags of a run) prints, as JSON, the broker
identities that run would connect with, for ``wattstream services provision``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from schema.commandline import fail, parse_settings
from simulator.errors import SimulatorError
from simulator.settings import HistorySettings, SimulatorSettings

RUN = (
    "Publish a simulated device fleet over MQTT. "
    "'wattstream simulate history --help': the hourly history export."
)
HISTORY = (
    "Write the fleet's hourly energy (one schema.history.HourlyEnergy JSON line per device and "
    "UTC hour), from the same device models as the live readings."
)


def parse_args(argv: Sequence[str] | None = None) -> SimulatorSettings:
    return parse_settings(SimulatorSettings, "wattstream simulate", RUN, argv)


def history_main(argv: Sequence[str]) -> None:
    from simulator.history import export_history  # noqa: PLC0415 - only this command needs it

    settings = parse_settings(HistorySettings, "wattstream simulate history", HISTORY, argv)
    start = settings.start
    if start is None:
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        start = today - timedelta(days=settings.days)
    export_history(
        settings.out,
        devices=settings.devices,
        days=settings.days,
        seed=settings.seed,
        start=start,
        interval_s=settings.interval_s,
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
    except SimulatorError as exc:
        fail("wattstream simulate", str(exc))


if __name__ == "__main__":
    main()
