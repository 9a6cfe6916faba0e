"""What ``wattstream run`` shows first: accelerated history, then live time, and its progress.

The forecaster needs ``history_hours`` (24) closed hours of a device before its first forecast,
and a device's health leaves ``unknown`` once :data:`stream.core.health.MIN_SCORED` (6) hours
have both a forecast and a seasonal-naive baseline (same local hour a day before). So a device
shows a forecast after about a day of data and a coloured health status after about 31 hours;
residual alerts need six scored residuals before the anomalous hour. The run therefore starts
the simulator ``history`` (3 days) in the past: it publishes that history as fast as the broker
takes it (its ``backfill``), then goes live. A few devices get a planned anomaly late in the
history, where alerts can fire.

:class:`FirstRun` is the plan (pure); :func:`read_progress` polls the database for how far
the pipeline got, and :class:`Progress` says whether the dashboard is complete: every device
with a forecast and a coloured (not ``unknown``) health status, and the history processed.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from schema.device_messages import AnomalyKind
from simulator.scenarios import Scenario

HOUR = timedelta(hours=1)
FORECAST_HOURS = 24
"""Closed hours before a device's first forecast (the served model's ``history_hours``)."""
SCORED_HOURS = 6
"""Scored hours before health is coloured (``stream.core.health.MIN_SCORED``)."""
ANOMALY_NOT_BEFORE = timedelta(hours=FORECAST_HOURS + SCORED_HOURS + 2)
"""An anomaly this far into the history has a forecast, a baseline and enough scored residuals
before it for a residual alert (sigma needs ``SCORED_HOURS`` earlier residuals)."""
ANOMALY_BEFORE_LIVE = timedelta(hours=12)
"""Where the planned anomalies go: this long before live time (when the history allows)."""
ANOMALY_SHAPES: dict[AnomalyKind, tuple[timedelta, float | None]] = {
    # A whole hour at three times nominal power on top: far beyond the residuals' spread.
    AnomalyKind.SPIKE: (timedelta(hours=1), 3.0),
    AnomalyKind.DRIFT: (timedelta(hours=3), 2.0),
    AnomalyKind.STUCK: (timedelta(hours=3), None),
    AnomalyKind.DROPOUT: (timedelta(hours=2), None),
}
"""Duration and magnitude of each planned anomaly kind."""


@dataclass(frozen=True, slots=True)
class FirstRun:
    """The fleet ``wattstream run`` starts: ``history`` published first, then live."""

    devices: int = 20
    history: timedelta = timedelta(days=3)
    interval_s: int = 300
    """Seconds between two readings of a device. 300: 20 devices x 3 days are 17,280 readings,
    published and processed in well under a minute on two cores (at 60 s it would be 86,400)."""
    anomalies: tuple[AnomalyKind, ...] = (AnomalyKind.SPIKE,)
    """One planned anomaly per entry, on ``dev-00001``, ``dev-00002``, ... in this order."""
    scenarios: tuple[Scenario, ...] = ()
    """The simulator's delivery scenarios for the whole fleet (duplicates, late-bursts, ...)."""
    journal: Path | None = None
    """The simulator's delivery journal (for ``wattstream audit``)."""
    labels: Path | None = None
    """The simulator's ground truth of the anomalies it injected (to score the alerts with,
    ``api.alertscore``)."""

    def __post_init__(self) -> None:
        if self.devices < 1:
            raise ValueError("devices must be at least 1")
        if len(self.anomalies) >= self.devices:
            raise ValueError(
                f"{len(self.anomalies)} anomalies need more than {self.devices} devices"
            )
        if self.history < timedelta(0) or self.history % timedelta(seconds=self.interval_s):
            raise ValueError("history must be a non-negative multiple of the interval")

    @property
    def history_readings(self) -> int:
        """Readings published before live time (all devices)."""
        return self.devices * (self.history // timedelta(seconds=self.interval_s))

    @property
    def history_hours(self) -> int:
        """Hours per device that close from the history alone: the last whole hour before
        live time closes only once live readings move the watermark past it."""
        return max(0, math.ceil(self.history / HOUR) - 2)

    @property
    def completes_in_history(self) -> bool:
        """Whether every device gets forecasts and coloured health from the history alone."""
        return self.history_hours >= FORECAST_HOURS + SCORED_HOURS + 1

    def anomaly_after(self) -> timedelta:
        """How long after the start the planned anomalies begin (a whole hour, so one hour
        holds the whole of a one-hour anomaly)."""
        wanted = max(ANOMALY_NOT_BEFORE, self.history - ANOMALY_BEFORE_LIVE)
        return math.ceil(wanted / HOUR) * HOUR

    def anomaly_devices(self) -> list[str]:
        return [f"dev-{n:05d}" for n in range(1, len(self.anomalies) + 1)]

    def anomaly_specs(self, start: datetime) -> list[str]:
        """The simulator's ``--anomaly`` values: each at an absolute instant, on an hour
        boundary after ``start`` (the simulator's first reading)."""
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        first_hour = start.replace(minute=0, second=0, microsecond=0)
        at = first_hour + self.anomaly_after()
        specs = []
        for device, kind in zip(self.anomaly_devices(), self.anomalies, strict=True):
            duration, magnitude = ANOMALY_SHAPES[kind]
            spec = f"device={device},kind={kind.value},at={at.isoformat()},"
            spec += f"duration={int(duration.total_seconds())}s"
            if magnitude is not None:
                spec += f",magnitude={magnitude:g}"
            specs.append(spec)
        return specs

    def start(self, now: datetime) -> datetime:
        """The simulator's first reading: ``history`` before ``now``, on the interval grid."""
        begin = int((now - self.history).timestamp())
        return datetime.fromtimestamp(begin - begin % self.interval_s, tz=UTC)

    def simulator_values(self, now: datetime) -> dict[str, Any]:
        """The simulator's settings for this run (``schema.commandline.variables`` input)."""
        start = self.start(now)
        values: dict[str, Any] = {
            "devices": self.devices,
            "interval_s": self.interval_s,
            "start": start.isoformat(),
            "anomalies": json.dumps(self.anomaly_specs(start)),
            "scenarios": json.dumps([s.value for s in self.scenarios]),
            # The labels also go to the pipeline (bridge -> worker -> anomaly_labels), where the
            # API scores the alerts against them (GET /api/v1/alerts/quality).
            "labels_topic": True,
        }
        if self.journal is not None:
            values["journal_file"] = str(self.journal)
        if self.labels is not None:
            values["labels_file"] = str(self.labels)
        return values


@dataclass(frozen=True, slots=True)
class Progress:
    """How far the pipeline got with a run's fleet, from the database."""

    devices: int
    readings: int
    expected_readings: int
    hours: int
    expected_hours: int
    forecasted: int
    """Devices with at least one forecast."""
    coloured: int
    """Devices whose latest health status is green, amber or red."""
    alerts: int

    @property
    def complete(self) -> bool:
        """Every device forecast and coloured, and the history's hours processed (so the
        planned anomalies' alerts, late in the history, are in too)."""
        return (
            self.forecasted >= self.devices
            and self.coloured >= self.devices
            and self.hours >= self.expected_hours
        )

    def line(self, elapsed_s: float) -> str:
        done = min(1.0, self.readings / self.expected_readings) if self.expected_readings else 1.0
        hours = min(1.0, self.hours / self.expected_hours) if self.expected_hours else 1.0
        results = (self.forecasted + self.coloured) / (2 * self.devices)
        fraction = (done + hours + 2 * results) / 4
        filled = round(20 * fraction)
        return (
            f"[{'#' * filled}{'.' * (20 - filled)}] {elapsed_s:5.0f}s  "
            f"readings {self.readings:,}/{self.expected_readings:,}  "
            f"hours {self.hours:,}/{self.expected_hours:,}  "
            f"forecasts {self.forecasted}/{self.devices}  "
            f"health {self.coloured}/{self.devices}  alerts {self.alerts}"
        )


PROGRESS_SQL = """
SELECT
  (SELECT count(*) FROM readings WHERE device_id = ANY($1) AND ts >= $2) AS readings,
  (SELECT count(*) FROM hourly WHERE device_id = ANY($1) AND hour_start >= $2) AS hours,
  (SELECT count(DISTINCT device_id) FROM forecasts
   WHERE device_id = ANY($1) AND hour_start >= $2) AS forecasted,
  (SELECT count(*) FROM (
     SELECT DISTINCT ON (device_id) status FROM health
     WHERE device_id = ANY($1) AND hour_start >= $2 ORDER BY device_id, hour_start DESC
   ) AS latest WHERE status <> 'unknown') AS coloured,
  (SELECT count(*) FROM alerts WHERE device_id = ANY($1) AND hour_start >= $2) AS alerts
"""


def fleet_ids(devices: int) -> list[str]:
    """The simulator's device ids (``simulator.fleet``: ``dev-00000`` onwards)."""
    return [f"dev-{n:05d}" for n in range(devices)]


async def read_progress_async(dsn: str, plan: FirstRun, start: datetime) -> Progress:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        row = await conn.fetchrow(PROGRESS_SQL, fleet_ids(plan.devices), start)
    finally:
        await conn.close()
    assert row is not None  # one row of scalar sub-queries
    return Progress(
        devices=plan.devices,
        readings=row["readings"],
        expected_readings=plan.history_readings,
        hours=row["hours"],
        expected_hours=plan.devices * plan.history_hours,
        forecasted=row["forecasted"],
        coloured=row["coloured"],
        alerts=row["alerts"],
    )


def read_progress(dsn: str, plan: FirstRun, start: datetime) -> Progress:
    """:func:`read_progress_async` for the launcher's synchronous watch loop."""
    return asyncio.run(read_progress_async(dsn, plan, start))


def split_scenarios(names: Sequence[str]) -> tuple[tuple[AnomalyKind, ...], tuple[Scenario, ...]]:
    """``--scenario`` values: anomaly kinds (planned on one device each) and the simulator's
    delivery scenarios (the whole fleet); anything else is a ValueError naming the choices."""
    anomalies: list[AnomalyKind] = []
    scenarios: list[Scenario] = []
    for name in names:
        if name in AnomalyKind.__members__.values():
            anomalies.append(AnomalyKind(name))
        elif name in Scenario.__members__.values():
            scenarios.append(Scenario(name))
        else:
            choices = [*(k.value for k in AnomalyKind), *(s.value for s in Scenario)]
            raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(choices)}")
    return tuple(anomalies), tuple(scenarios)


class ProgressWatch:
    """Called by the launcher's watch loop: every ``every_s`` a progress line, and once every
    device has a forecast and a coloured health status, "dashboard complete" (then it is done)."""

    def __init__(
        self,
        dsn: str,
        plan: FirstRun,
        start: datetime,
        url: str,
        announce: Callable[[str], None],
        *,
        every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        began: float | None = None,
    ) -> None:
        """``began``: the ``clock`` reading elapsed times count from (default: now)."""
        self._dsn, self._plan, self._start, self._url = dsn, plan, start, url
        self._announce, self._every_s, self._clock = announce, every_s, clock
        self._began = clock() if began is None else began
        self._next = clock()
        self.completed_after_s: float | None = None

    def __call__(self) -> bool:
        """Poll when due; True once the dashboard is complete (no need to call again)."""
        now = self._clock()
        if now < self._next:
            return False
        self._next = now + self._every_s
        try:
            progress = read_progress(self._dsn, self._plan, self._start)
        except (OSError, asyncpg.PostgresError) as exc:  # not migrated or not up yet: next time
            self._announce(f"progress: database not answering yet ({exc})")
            return False
        elapsed = now - self._began
        self._announce(progress.line(elapsed))
        if not progress.complete:
            return False
        self.completed_after_s = elapsed
        self._announce(
            f"dashboard complete: {self._url} ({elapsed:.0f} s after the services were up; "
            f"{progress.alerts} alerts)"
        )
        return True
