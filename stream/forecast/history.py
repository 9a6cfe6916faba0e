"""Hourly history for training and evaluation: the simulator's export, read into series.

``stream`` never imports ``simulator``: the history comes from the simulator's own command
(``python -m simulator history ...``) run as a subprocess, which writes one
:class:`schema.history.HourlyEnergy` JSON line per (device, UTC hour). Every line is validated;
a bad one stops the run with its line number.
"""

from __future__ import annotations

import hashlib
import logging
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from schema.history import HourlyEnergy
from stream.forecast.errors import HistoryError
from stream.forecast.features import DeviceSeries, epoch_hour

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportRequest:
    """Arguments of the simulator's history export."""

    devices: int
    days: float
    seed: int
    start: datetime
    interval_s: int = 900

    def arguments(self, out: Path) -> list[str]:
        return [
            "--devices",
            str(self.devices),
            "--days",
            f"{self.days:g}",
            "--seed",
            str(self.seed),
            "--start",
            self.start.isoformat(),
            "--interval-s",
            str(self.interval_s),
            "--out",
            str(out),
        ]


def default_export_command() -> list[str]:
    return [sys.executable, "-m", "simulator", "history"]


def as_typed(argv: Sequence[str]) -> str:
    """``argv`` as a user would type it: this interpreter's absolute path shows as ``python``
    (a model card says how to reproduce the history, not where it was made)."""
    shown = ["python" if i == 0 and arg == sys.executable else arg for i, arg in enumerate(argv)]
    return shlex.join(shown)


def export_command(command: str | None) -> list[str]:
    """The export command as argv: ``command`` (a shell-quoted string) or the simulator's own."""
    return shlex.split(command) if command else default_export_command()


def run_export(command: Sequence[str], request: ExportRequest, out: Path) -> None:
    """Run the simulator's history export into ``out``; raise :class:`HistoryError` if it fails."""
    argv = [*command, *request.arguments(out)]
    log.info("exporting history: %s", shlex.join(argv))
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
    except OSError as exc:
        raise HistoryError(f"cannot run the history export {argv[0]!r}: {exc}") from exc
    if done.returncode != 0:
        raise HistoryError(
            f"history export exited {done.returncode}: {shlex.join(argv)}\n{done.stderr[-2000:]}"
        )
    if not out.exists():
        raise HistoryError(f"history export wrote no file {out}")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_history(path: Path) -> list[DeviceSeries]:
    """Read an export into one gap-aware hourly series per device, ordered by device id."""
    rows: dict[str, list[HourlyEnergy]] = {}
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = HourlyEnergy.model_validate_json(line)
            except ValidationError as exc:
                raise HistoryError(f"{path}:{number}: not an HourlyEnergy line: {exc}") from exc
            if row.hour_start.minute or row.hour_start.second or row.hour_start.microsecond:
                raise HistoryError(f"{path}:{number}: hour_start is not on a UTC hour")
            rows.setdefault(row.device_id, []).append(row)
    if not rows:
        raise HistoryError(f"{path} holds no history")
    return [_series(device, rows[device], path) for device in sorted(rows)]


def _series(device: str, rows: list[HourlyEnergy], path: Path) -> DeviceSeries:
    first = rows[0]
    if any(r.kind != first.kind or r.tz != first.tz for r in rows):
        raise HistoryError(f"{path}: {device} changes kind or zone within the history")
    hours = np.array([epoch_hour(r.hour_start) for r in rows], dtype=np.int64)
    start = int(hours.min())
    values = np.full(int(hours.max()) - start + 1, np.nan)
    offsets = hours - start
    if np.unique(offsets).size != offsets.size:
        raise HistoryError(f"{path}: {device} has the same hour twice")
    values[offsets] = [r.energy_kwh for r in rows]
    first_hour = min(r.hour_start for r in rows).astimezone(UTC)
    if (gaps := int(np.isnan(values).sum())) > 0:
        log.info("%s: %d missing hours in the history", device, gaps)
    return DeviceSeries(device, first.kind, first.tz, first_hour, values)
