"""The sink's SQL and rows, derived from the table definitions in :mod:`schema.tables`.

Nothing here retypes a column: names, key columns and the PostgreSQL type of each column (for
``unnest``'s arrays) come from the SQLAlchemy tables, compiled with the PostgreSQL dialect, and
each row is built by column name from its record, so the statement's column order and the
row's can never disagree. A record that lacks a written column fails with a ``KeyError`` naming
it; ``tests/unit/stream/test_sink_statements.py`` checks that every record fills exactly the
columns its table is written with, and ``tests/integration/test_stream_sink.py`` round-trips
every column.

Writes are idempotent: raw readings are merged with ``ON CONFLICT DO NOTHING``, everything else
is an upsert on the table's primary key, optionally only when the new row is not older by one
column (``hourly.revision``, ``device_status.changed_at``), or only over a row nobody else has
claimed (``alerts.resolved_by``: an alert a person resolved).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Table
from sqlalchemy.dialects import postgresql

from schema import tables
from schema.device_messages import AnomalyLabel, DeviceBirth, DeviceStatus
from schema.wire import Reading
from stream.worker.copy_binary import CopyEncoder

Row = Mapping[str, Any]
"""Column name -> value."""

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]  # untyped in SQLAlchemy
_ENVELOPE = frozenset({"schema_version", "kind"})
"""Fields of a result message that say what the message is, not what the row holds."""


def _quote(name: str) -> str:
    return str(_DIALECT.identifier_preparer.quote(name))


def _names(names: Iterable[str]) -> str:
    return ", ".join(_quote(n) for n in names)


@dataclass(frozen=True, slots=True)
class Target:
    """One table as the sink writes it: every column except those the database fills."""

    table: Table
    left_to_database: tuple[str, ...] = ()
    """Columns the sink never writes (server defaults, or kept by something else)."""
    not_older_by: str | None = None
    """Replace an existing row only if the new one's value of this column is not smaller."""
    unless_set: str | None = None
    """Never replace an existing row whose value of this column is set (someone else's)."""

    def __post_init__(self) -> None:
        unknown = {*self.left_to_database, *filter(None, (self.not_older_by, self.unless_set))}
        unknown -= set(self.table.columns.keys())
        if unknown:
            raise ValueError(f"{self.table.name} has no columns {sorted(unknown)}")

    @property
    def columns(self) -> tuple[str, ...]:
        """The written columns, in table order."""
        return tuple(c.name for c in self.table.columns if c.name not in self.left_to_database)

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.table.primary_key.columns)

    def array_types(self) -> tuple[str, ...]:
        """PostgreSQL array type of each written column, e.g. ``TIMESTAMP WITH TIME ZONE[]``."""
        return tuple(
            f"{self.table.columns[name].type.compile(dialect=_DIALECT)}[]" for name in self.columns
        )

    @property
    def upsert_sql(self) -> str:
        """``INSERT ... SELECT * FROM unnest($1::type[], ...) ON CONFLICT (key) DO UPDATE``."""
        name = _quote(self.table.name)
        arrays = ", ".join(f"${i}::{kind}" for i, kind in enumerate(self.array_types(), start=1))
        updates = ", ".join(
            f"{_quote(n)} = EXCLUDED.{_quote(n)}" for n in self.columns if n not in self.key
        )
        conditions = []
        if self.not_older_by is not None:
            column = _quote(self.not_older_by)
            conditions.append(f"EXCLUDED.{column} >= {name}.{column}")
        if self.unless_set is not None:
            conditions.append(f"{name}.{_quote(self.unless_set)} IS NULL")
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        # Identifiers come from the table definitions (quoted); values are parameters.
        return (
            f"INSERT INTO {name} ({_names(self.columns)}) SELECT * FROM unnest({arrays}) "  # noqa: S608
            f"ON CONFLICT ({_names(self.key)}) DO UPDATE SET {updates}{where}"
        )

    def rows(self, values: Iterable[Row]) -> list[tuple[Any, ...]]:
        """Rows in column order."""
        columns = self.columns
        return [tuple(value[c] for c in columns) for value in values]

    def last_by_key(self, values: Iterable[Row]) -> list[tuple[Any, ...]]:
        """Rows in column order, the last one per key only (an upsert may touch a key once)."""
        columns, key = self.columns, self.key
        last: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        for value in values:
            last[tuple(value[k] for k in key)] = tuple(value[c] for c in columns)
        return list(last.values())

    def last_of_ordered(self, rows: Iterable[Sequence[Any]]) -> list[Sequence[Any]]:
        """Like :meth:`last_by_key` for rows already in column order (e.g. named tuples of the
        table's columns): no mapping per row, so a quarter million rows stay cheap."""
        key = operator.itemgetter(*(self.columns.index(name) for name in self.key))
        return list({key(row): row for row in rows}.values())

    def arrays(self, rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
        """The upsert's arguments: one array per column."""
        return [list(column) for column in zip(*rows, strict=True)]


@dataclass(frozen=True, slots=True)
class Merge:
    """Raw rows: COPY into a session-local staging table, then ``INSERT ... SELECT ... ON
    CONFLICT DO NOTHING`` (COPY itself cannot skip duplicates); with ``update``, ``ON CONFLICT
    DO UPDATE`` instead (an upsert of many rows: the staging rows must be one per key)."""

    target: Target
    update: bool = False
    encoder: CopyEncoder | None = None
    """Rows encoded to binary COPY here, column by column (else asyncpg encodes each value)."""

    @classmethod
    def binary(cls, target: Target, *, update: bool = False) -> Merge:
        """A merge whose COPY payload :class:`CopyEncoder` builds from the table's columns."""
        columns = [target.table.columns[name] for name in target.columns]
        return cls(target, update, CopyEncoder(columns))

    @property
    def staging(self) -> str:
        return f"{self.target.table.name}_staging"

    @property
    def create_staging_sql(self) -> str:
        return (
            f"CREATE TEMP TABLE IF NOT EXISTS {_quote(self.staging)} "
            f"(LIKE {_quote(self.target.table.name)} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )

    @property
    def merge_sql(self) -> str:
        columns = _names(self.target.columns)
        action = "DO NOTHING"
        if self.update:
            key = self.target.key
            updates = ", ".join(
                f"{_quote(n)} = EXCLUDED.{_quote(n)}" for n in self.target.columns if n not in key
            )
            action = f"DO UPDATE SET {updates}"
        return (
            f"INSERT INTO {_quote(self.target.table.name)} ({columns}) "  # noqa: S608 - see upsert_sql
            f"SELECT {columns} FROM {_quote(self.staging)} "
            f"ON CONFLICT ({_names(self.target.key)}) {action}"
        )


# ----------------------------------------------------------------------------- record -> row
@lru_cache(maxsize=64)
def _row_fields(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(name for name in model.model_fields if name not in _ENVELOPE)


def result_row(record: BaseModel, renames: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A result message's fields as a row: the envelope dropped, ``renames`` applied."""
    values = record.__dict__  # the fields' values (an hour's close makes thousands of rows)
    fields = _row_fields(type(record))
    if renames is None:
        return {name: values[name] for name in fields}
    return {renames.get(name, name): values[name] for name in fields}


READING_COLUMNS = (
    "device_id",
    "ts",
    "seq",
    "tz",
    "interval_s",
    "energy_kwh",
    "power_kw",
    "production_units",
)
"""The columns of :func:`reading_record`: those the sink writes of ``readings``, in order."""


def reading_record(reading: Reading) -> tuple[Any, ...]:
    """A reading's row in :data:`READING_COLUMNS` order (no mapping: one per raw reading)."""
    production = reading.production
    return (
        reading.device_id,
        reading.ts_utc,
        reading.seq,
        reading.tz,
        reading.interval_s,
        reading.energy.value,
        reading.power.value,
        None if production is None else production.value,
    )


def reading_row(reading: Reading) -> dict[str, Any]:
    """:func:`reading_record` by column name."""
    return dict(zip(READING_COLUMNS, reading_record(reading), strict=True))


def device_row(birth: DeviceBirth) -> dict[str, Any]:
    return {
        "device_id": birth.device_id,
        "kind": birth.kind,
        "tz": birth.tz,
        "latitude": birth.location.latitude,
        "longitude": birth.location.longitude,
        "location_name": birth.location.name,
        "nominal_kw": birth.nominal_kw,
        "firmware": birth.firmware,
        "interval_s": birth.interval_s,
        "first_seen": birth.ts,
        "updated_at": birth.ts,
    }


def status_row(status: tuple[DeviceStatus, datetime]) -> dict[str, Any]:
    message, changed_at = status
    return {
        "device_id": message.device_id,
        "status": message.status.value,
        "changed_at": changed_at,
    }


def alert_row(alert: BaseModel) -> dict[str, Any]:
    return result_row(alert, {"alert_kind": "kind"})


def label_row(label: AnomalyLabel) -> dict[str, Any]:
    row = label.model_dump(exclude={"schema_version"})
    return {**row, "anomaly": label.anomaly.value, "source": label.source.value}


READINGS = Merge(Target(tables.readings, left_to_database=("ingested_at",)))
DEVICES = Target(tables.devices)
# last_seen is not the sink's: presence changes carry no reading time.
DEVICE_STATUS = Target(
    tables.device_status, left_to_database=("last_seen",), not_older_by="changed_at"
)
# A replayed batch never undoes a restatement.
HOURLY = Target(tables.hourly, not_older_by="revision")
FORECASTS = Target(tables.forecasts)
# A row per device and closed hour (its targets as arrays): COPY, then one upsert.
FORECAST_TRAJECTORIES = Merge.binary(Target(tables.forecast_trajectories), update=True)
HEALTH = Target(tables.health)
# Acknowledging and resolving by hand are a person's acts through the API: the worker's upserts
# leave them alone, and never touch an alert a person resolved (the sink reports those rows, see
# ALERTS_UPSERT; the worker then opens a new alert if the condition still holds).
ALERTS = Target(
    tables.alerts,
    left_to_database=(
        "acknowledged_at", "acknowledged_by", "note", "resolved_by", "resolution_note"
    ),
    unless_set="resolved_by",
)  # fmt: skip
ALERTS_UPSERT = f"{ALERTS.upsert_sql} RETURNING alert_id"
"""The alerts upsert, answering the ids it wrote: the batch's others were resolved by a person."""
# A label is the same truth however often the simulator's QoS 1 delivery repeats it.
LABELS = Target(tables.anomaly_labels, left_to_database=("received_at",))


OFFSETS = """
INSERT INTO stream_offsets (group_id, topic, partition, next_offset, updated_at)
SELECT $1, * FROM unnest($2::text[], $3::int[], $4::bigint[]), now()
ON CONFLICT (group_id, topic, partition) DO UPDATE
SET next_offset = GREATEST(stream_offsets.next_offset, EXCLUDED.next_offset),
    updated_at = EXCLUDED.updated_at
"""
STORED_OFFSETS = "SELECT topic, partition, next_offset FROM stream_offsets WHERE group_id = $1"
