"""PostgreSQL's binary COPY format for many rows at once, encoded column by column.

asyncpg's ``copy_records_to_table`` encodes every value of every row on its own, and its array
encoder checks each element against ``collections.abc`` classes: for an hour close of 10,000
devices (12,500 ``forecast_trajectories`` rows of 25 instants, 24 dates, 24 hours and 72 floats)
that is most of the commit's time. :class:`CopyEncoder` builds the same bytes once per column
instead: a float array column is one numpy array for all rows (lengths interleaved by a
structured dtype), a value shared by many rows (the targets of one zone and issue hour, the
model id) is encoded once, and the rows are joined in one call. The encoders come from the
table's column types (:mod:`schema.tables`), so they cannot disagree with the table.

Format (PostgreSQL docs, "COPY", binary format): a header, then per row an int16 field count
and per field an int32 length (-1 = NULL) and the value's binary send form; an int16 -1 ends
it. An array is int32 ndim, int32 has-nulls, int32 element type oid, per dimension int32 size
and int32 lower bound (1), then per element an int32 length and the element.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from itertools import chain
from typing import Any

import numpy as np
from sqlalchemy import ARRAY, Column, Date, DateTime, Double, SmallInteger, Text
from sqlalchemy.types import TypeEngine

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
TRAILER = struct.pack(">h", -1)
NULL = struct.pack(">i", -1)
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_PG_EPOCH_DATE = date(2000, 1, 1)
_MICROSECOND = timedelta(microseconds=1)

Value = Callable[[Any], bytes]
"""A value's binary send form (no length)."""
ColumnEncoder = Callable[[Sequence[Any]], list[bytes]]
"""A column's values -> each field with its length prefix."""


def _timestamptz(value: datetime) -> bytes:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()}: times must be aware")
    return struct.pack(">q", (value - _PG_EPOCH) // _MICROSECOND)


def _date(value: date) -> bytes:
    return struct.pack(">i", (value - _PG_EPOCH_DATE).days)


def _text(value: str) -> bytes:
    return value.encode()


# Scalar types: (sqlalchemy type, send form, element oid, numpy dtype for vectorised arrays).
_SCALARS: tuple[tuple[type[TypeEngine[Any]], Value, int, str | None], ...] = (
    (Text, _text, 25, None),
    (DateTime, _timestamptz, 1184, None),
    (Date, _date, 1082, None),
    (SmallInteger, struct.Struct(">h").pack, 21, ">i2"),
    (Double, struct.Struct(">d").pack, 701, ">f8"),
)


def _scalar(kind: TypeEngine[Any]) -> tuple[Value, int, str | None]:
    for base, send, oid, dtype in _SCALARS:
        if isinstance(kind, base):
            if isinstance(kind, DateTime) and not kind.timezone:
                break
            return send, oid, dtype
    raise TypeError(f"no binary COPY encoder for {kind!r}")


def _field(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def _array(send: Value, oid: int) -> Value:
    def encode(values: Sequence[Any]) -> bytes:
        if any(v is None for v in values):
            raise ValueError("array elements may not be NULL")
        parts = [_field(send(v)) for v in values]
        return struct.pack(">iiiii", 1, 0, oid, len(values), 1) + b"".join(parts)

    return encode


def _shared(send: Value) -> ColumnEncoder:
    """Each distinct value encoded once (by identity: rows share the objects)."""

    def encode(values: Sequence[Any]) -> list[bytes]:
        seen: dict[int, bytes] = {}
        out = []
        for value in values:
            field = seen.get(id(value))
            if field is None:
                field = seen[id(value)] = NULL if value is None else _field(send(value))
            out.append(field)
        return out

    return encode


def _numeric_arrays(dtype: str, oid: int, fallback: ColumnEncoder) -> ColumnEncoder:
    """Arrays of numbers: the rows whose arrays have one length are one numpy array."""
    width = np.dtype(dtype).itemsize
    numbers = np.float64 if dtype.endswith(("f4", "f8")) else np.int64

    def same_length(values: Sequence[Sequence[Any]], count: int) -> list[bytes]:
        layout = np.dtype(
            [("field", ">i4"), ("head", ">i4", 5), ("items", [("len", ">i4"), ("v", dtype)], count)]
        )
        block = np.empty(len(values), dtype=layout)
        block["field"] = 20 + count * (4 + width)
        block["head"] = (1, 0, oid, count, 1)
        block["items"]["len"] = width
        block["items"]["v"] = np.asarray(values, dtype=numbers)
        raw, size = block.tobytes(), layout.itemsize
        return [raw[i * size : (i + 1) * size] for i in range(len(values))]

    def encode(values: Sequence[Any]) -> list[bytes]:
        by_length: dict[int, list[int]] = {}
        for index, value in enumerate(values):
            by_length.setdefault(-1 if value is None else len(value), []).append(index)
        out: list[bytes] = [b""] * len(values)
        for count, indices in by_length.items():
            group = [values[i] for i in indices]
            fields = same_length(group, count) if count > 0 else fallback(group)
            for index, field in zip(indices, fields, strict=True):
                out[index] = field
        return out

    return encode


def column_encoder(column: Column[Any]) -> ColumnEncoder:
    """The encoder of one table column, from its type."""
    kind = column.type
    if isinstance(kind, ARRAY):
        send, oid, dtype = _scalar(kind.item_type)
        by_value = _shared(_array(send, oid))
        return by_value if dtype is None else _numeric_arrays(dtype, oid, by_value)
    send, _, _ = _scalar(kind)
    return _shared(send)


class CopyEncoder:
    """Rows (tuples in ``columns`` order) -> one binary COPY payload."""

    def __init__(self, columns: Sequence[Column[Any]]) -> None:
        self.names = tuple(c.name for c in columns)
        self._encoders = [column_encoder(c) for c in columns]
        self._count = struct.pack(">h", len(columns))

    def encode(self, rows: Sequence[Sequence[Any]]) -> bytes:
        fields = [encode([row[i] for row in rows]) for i, encode in enumerate(self._encoders)]
        counts = [self._count] * len(rows)
        return b"".join((HEADER, *chain.from_iterable(zip(counts, *fields, strict=True)), TRAILER))
