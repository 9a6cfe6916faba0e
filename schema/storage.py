"""The storage layer's two modes, chosen once at migrate time.

``timescaledb``: the extension is present (the compose image), so the time-series tables are
hypertables and the rollups are continuous aggregates with refresh, compression and retention
policies. ``postgresql``: no extension, so the rollups are ordinary tables kept current by
statement-level triggers on ``readings`` that recompute only the touched groups.

The migrations carry their own frozen copy of what they need (a revision imports no live
module); this module serves the live code: options, policies on re-runs, refreshes, Alembic's
filter. Both modes expose the same relations with the same columns and give the same answers
(:data:`ROLLUP_COLUMNS`); the mode is recorded in ``storage_info`` and nothing outside the
storage layer (the migrations and this module) branches on it.

In TimescaleDB mode the continuous aggregates are refreshed over their whole history, in order,
never the open bucket, by ``wattstream_settle_rollups()`` (migration 0005): the stream worker
calls it right after committing readings below the open bucket, and a job runs it every 30
seconds for every other writer (docs/storage-timescaledb.md).

Options come from ``wattstream migrate`` flags (``--storage-mode``, ``--compress-after``,
``--retention``, each with a ``WATTSTREAM_MIGRATE_*`` variable), or from
``alembic -x storage_mode=... -x compress_after=...`` when Alembic is run by hand.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import Connection, text

log = logging.getLogger(__name__)

StorageMode = Literal["timescaledb", "postgresql"]
ModeChoice = Literal["auto", "timescaledb", "postgresql"]
MODE_CHOICES: tuple[ModeChoice, ...] = ("auto", "timescaledb", "postgresql")

# Relation -> (column, PostgreSQL type) in order; identical in both modes. production_units
# (0007) is the sum of the readings' production, NULL where none reported any.
ROLLUP_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "readings_15m": (
        ("device_id", "text"),
        ("bucket", "timestamp with time zone"),
        ("energy_kwh", "double precision"),
        ("reading_count", "bigint"),
        ("power_mean_kw", "double precision"),
        ("power_min_kw", "double precision"),
        ("power_max_kw", "double precision"),
        ("tz", "text"),
        ("production_units", "double precision"),
    ),
    "readings_hourly_utc": (
        ("device_id", "text"),
        ("bucket", "timestamp with time zone"),
        ("energy_kwh", "double precision"),
        ("reading_count", "bigint"),
        ("power_mean_kw", "double precision"),
        ("power_min_kw", "double precision"),
        ("power_max_kw", "double precision"),
        ("production_units", "double precision"),
    ),
    "daily_local": (
        ("device_id", "text"),
        ("local_date", "date"),
        ("tz", "text"),
        ("day_start", "timestamp with time zone"),
        ("day_end", "timestamp with time zone"),
        ("energy_kwh", "double precision"),
        ("reading_count", "bigint"),
        ("hours", "double precision"),
        ("production_units", "double precision"),
    ),
    "fleet_hourly": (
        ("bucket", "timestamp with time zone"),
        ("energy_kwh", "double precision"),
        ("reading_count", "bigint"),
        ("devices", "bigint"),
        ("production_units", "double precision"),
    ),
}
ROLLUPS = tuple(ROLLUP_COLUMNS)
# Continuous aggregates in TimescaleDB mode, in refresh order (each builds on the one before).
CONTINUOUS_AGGREGATES = ("readings_15m", "readings_hourly_utc", "fleet_hourly")

_INTERVAL = re.compile(r"^\s*(\d+)\s*(minute|hour|day|week)s?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}
_OFF = {"off", "none", "never", "0", ""}


def parse_interval(value: str, *, allow_off: bool = True) -> timedelta | None:
    """``"7 days"`` -> ``timedelta(days=7)``; ``"off"`` -> ``None`` (when allowed)."""
    if allow_off and value.strip().lower() in _OFF:
        return None
    match = _INTERVAL.match(value)
    if not match:
        allowed = "'N minutes|hours|days|weeks'" + (" or 'off'" if allow_off else "")
        raise ValueError(f"not an interval: {value!r} (use {allowed})")
    count, unit = int(match[1]), match[2].lower()
    if count <= 0:
        raise ValueError(f"interval must be positive: {value!r}")
    return timedelta(seconds=count * _UNIT_SECONDS[unit])


def sql_interval(value: timedelta) -> str:
    """A timedelta as a PostgreSQL interval literal in the largest whole unit."""
    seconds = int(value.total_seconds())
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds % size == 0:
            return f"INTERVAL '{seconds // size} {unit}'"
    return f"INTERVAL '{seconds} seconds'"


def _describe(value: timedelta | None) -> str:
    return "off" if value is None else sql_interval(value).split("'")[1]


@dataclass(frozen=True)
class StorageOptions:
    """How the storage layer is set up; the policies apply in TimescaleDB mode only."""

    mode: ModeChoice = "auto"
    compress_after: timedelta | None = timedelta(days=7)
    """Compress raw readings chunks older than this (``None``: never)."""
    retention: timedelta | None = None
    """Drop raw readings chunks older than this (``None``: keep). Rollups are kept, but a
    reading written later into a dropped range replaces its buckets' rollups (the refresh
    recomputes an invalidated bucket from the raw rows that are left)."""

    def __post_init__(self) -> None:
        if self.mode not in MODE_CHOICES:
            raise ValueError(f"storage mode must be one of {MODE_CHOICES}, not {self.mode!r}")

    @classmethod
    def from_strings(cls, values: Mapping[str, str | None]) -> StorageOptions:
        """From flags, environment or ``-x`` arguments; missing or ``None`` keys keep defaults."""
        known = {"storage_mode", "compress_after", "retention"}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown storage options: {sorted(unknown)}")
        kwargs: dict[str, Any] = {}
        if (mode := values.get("storage_mode")) is not None:
            kwargs["mode"] = mode.strip().lower()
        if (compress := values.get("compress_after")) is not None:
            kwargs["compress_after"] = parse_interval(compress)
        if (retention := values.get("retention")) is not None:
            kwargs["retention"] = parse_interval(retention)
        return cls(**kwargs)

    def describe(self) -> dict[str, str]:
        """The settings as recorded in ``storage_info``."""
        return {
            "compress_after": _describe(self.compress_after),
            "retention": _describe(self.retention),
        }


# ----------------------------------------------------------------------------- recorded facts
def recorded_mode(bind: Connection) -> StorageMode | None:
    """The mode recorded by the migrations, or ``None`` before they ran."""
    exists = bind.execute(text("SELECT to_regclass('storage_info') IS NOT NULL")).scalar()
    if not exists:
        return None
    value = bind.execute(text("SELECT value FROM storage_info WHERE key = 'mode'")).scalar()
    if value not in ("timescaledb", "postgresql"):
        return None
    mode: StorageMode = value
    return mode


def record(bind: Connection, values: Mapping[str, str]) -> None:
    for key, value in values.items():
        bind.execute(
            text(
                "INSERT INTO storage_info (key, value) VALUES (:key, :value)"
                " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            ),
            {"key": key, "value": value},
        )


# ----------------------------------------------------------------------------- policies
def policy_statements(options: StorageOptions) -> list[str]:
    """SQL that (re)sets the compression and retention policies to ``options``; idempotent.

    The rollups have no refresh policies: ``wattstream_settle_rollups()`` refreshes them.
    """
    statements = [
        "SELECT remove_compression_policy('readings', if_exists => true)",
        "SELECT remove_retention_policy('readings', if_exists => true)",
    ]
    if options.compress_after is not None:
        statements.append(
            "SELECT add_compression_policy('readings', compress_after => "
            f"{sql_interval(options.compress_after)})"
        )
    if options.retention is not None:
        statements.append(
            f"SELECT add_retention_policy('readings', drop_after => "
            f"{sql_interval(options.retention)})"
        )
    return statements


def apply_policies(bind: Connection, options: StorageOptions) -> None:
    """Set the TimescaleDB policies to ``options`` and record them; nothing in plain mode."""
    if recorded_mode(bind) != "timescaledb":
        return
    for statement in policy_statements(options):
        bind.execute(text(statement))
    record(bind, options.describe())
    log.info("storage policies: %s", options.describe())


SETTLE_ROLLUPS = "CALL wattstream_settle_rollups()"
"""Refresh every continuous aggregate, in order, up to its open bucket (outside a transaction)."""


def refresh_statements(mode: StorageMode | None) -> list[str]:
    """SQL that brings every rollup up to date now (each outside a transaction).

    Plain PostgreSQL is always current (nothing to do). In TimescaleDB mode the stream worker
    and a 30-second job run the same statement; call it after writing readings some other way
    to see them at once instead of at the job's next run.
    """
    return [SETTLE_ROLLUPS] if mode == "timescaledb" else []


# ----------------------------------------------------------------------------- alembic
def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Alembic filter: the rollups are mode-specific objects outside the table metadata."""
    del obj, reflected, compare_to
    return not (type_ == "table" and name in ROLLUP_COLUMNS)
