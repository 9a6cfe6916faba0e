"""``python -m stream.audit`` / ``wattstream audit``: flags (env defaults) -> settings -> run."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Sequence

from schema.commandline import parse_settings
from schema.journal import JournalError
from stream.audit.app import run
from stream.audit.compare import AuditReport
from stream.audit.settings import AuditSettings


def parse_args(argv: Sequence[str] | None = None) -> AuditSettings:
    return parse_settings(
        AuditSettings,
        "wattstream audit",
        "Compare the simulator's delivery journal with the database: readings missing, "
        "duplicated or extra per device, and one hourly/forecast/health row per closed hour. "
        "Exit status 1 on any loss or duplicate.",
        argv,
    )


def show(report: AuditReport) -> None:
    print("\n".join(report.lines()), flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    settings = parse_args(argv)
    status = 0
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        try:
            status = asyncio.run(run(settings, show))
        except (OSError, JournalError) as exc:
            print(f"wattstream audit: {exc}", file=sys.stderr)
            status = 2
    sys.exit(status)


if __name__ == "__main__":
    main()
