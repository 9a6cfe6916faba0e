"""``python -m stream.audit`` / ``wattstream audit``: flags (env defaults) -> settings -> run."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from schema.journal import JournalError
from stream.audit.app import run
from stream.audit.compare import AuditReport
from stream.audit.settings import AuditSettings


def parse_args(argv: Sequence[str] | None = None) -> AuditSettings:
    parser = argparse.ArgumentParser(
        prog="wattstream audit",
        description="Compare the simulator's delivery journal with the database: readings "
        "missing, duplicated or extra per device, and one hourly/forecast/health row per "
        "closed hour. Exit status 1 on any loss or duplicate. Every flag defaults to its "
        "WATTSTREAM_AUDIT_* environment variable.",
    )
    for name, info in AuditSettings.model_fields.items():
        about = " ".join((info.description or name).split()).replace("%", "%%")
        default = (
            ""
            if info.is_required() or info.default in (None, "")
            else (f" (default {info.default})")
        )
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, help=f"{about}{default}")
    parser.add_argument("--log-level", default="WARNING")
    args = vars(parser.parse_args(argv))
    logging.basicConfig(
        level=str(args.pop("log_level")).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return AuditSettings(**{k: v for k, v in args.items() if v is not None})


def show(report: AuditReport) -> None:
    print("\n".join(report.lines()), flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    try:
        settings = parse_args(argv)
    except ValidationError as exc:
        print(f"wattstream audit: {exc}", file=sys.stderr)
        sys.exit(2)
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
