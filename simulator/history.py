"""Hourly energy history of a fleet, for training forecasters (``python -m simulator history``).

Each :class:`schema.history.HourlyEnergy` is the sum of the energy of every reading whose
interval starts in that UTC hour, computed by the same :meth:`DeviceModel.energy_kwh` the live
readings report, so the history equals what the fleet would have published over that span
with that seed, reading for reading. Anomalies and delivery scenarios are not part of it: this
is the fleet's normal behaviour.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from schema.history import HourlyEnergy
from simulator.fleet import build_fleet

log = logging.getLogger(__name__)

HOUR_S = 3600


def hourly_history(
    devices: int, days: int, seed: int, start: datetime, interval_s: int
) -> Iterator[HourlyEnergy]:
    """Per device (in fleet order), per UTC hour from ``start`` for ``days`` days: energy sums.

    ``start`` should be on a whole UTC hour and ``interval_s`` divide an hour; otherwise the
    first and last hours hold fewer readings (their ``readings`` field says how many).
    """
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    if interval_s <= 0 or days <= 0:
        raise ValueError("days and interval_s must be positive")
    t0 = int(start.timestamp())
    t_end = t0 + days * 86_400
    for model in build_fleet(devices, seed):
        spec = model.spec
        energy = model.energy_kwh
        hour = t0 - t0 % HOUR_S
        total, count = 0.0, 0
        for t in range(t0, t_end, interval_s):
            if t - hour >= HOUR_S:
                yield _row(spec.device_id, spec.kind, spec.tz, hour=hour, total=total, count=count)
                hour = t - t % HOUR_S
                total, count = 0.0, 0
            total += energy(t, interval_s)
            count += 1
        if count:
            yield _row(spec.device_id, spec.kind, spec.tz, hour=hour, total=total, count=count)


def _row(
    device_id: str, kind: str, tz: str, *, hour: int, total: float, count: int
) -> HourlyEnergy:
    return HourlyEnergy(
        device_id=device_id,
        kind=kind,
        tz=tz,
        hour_start=datetime.fromtimestamp(hour, UTC),
        energy_kwh=round(total, 6),
        readings=count,
    )


def export_history(
    out: Path, *, devices: int, days: int, seed: int, start: datetime, interval_s: int
) -> int:
    """Write :func:`hourly_history` to ``out`` as JSON lines (atomically); return the row count."""
    began = time.perf_counter()
    partial = out.with_name(out.name + ".partial")
    rows = 0
    with partial.open("w", encoding="utf-8") as sink:
        for row in hourly_history(devices, days, seed, start, interval_s):
            sink.write(row.model_dump_json())
            sink.write("\n")
            rows += 1
    partial.replace(out)
    log.info(
        "wrote %d hourly rows (%d devices x %d days, every %ds) to %s in %.1fs",
        rows,
        devices,
        days,
        interval_s,
        out,
        time.perf_counter() - began,
    )
    return rows


def read_history(path: Path) -> Iterator[HourlyEnergy]:
    """Read back an exported file, validating every line."""
    with path.open(encoding="utf-8") as source:
        for number, line in enumerate(source, start=1):
            if line.strip():
                try:
                    yield HourlyEnergy.model_validate_json(line)
                except ValueError as exc:
                    raise ValueError(f"{path}:{number}: {exc}") from exc


__all__ = ["export_history", "hourly_history", "read_history"]
