"""The binary COPY encoder: PostgreSQL's wire layout, checked by decoding it here (the sink's
integration test round-trips the same rows through a real PostgreSQL)."""

from __future__ import annotations

import struct
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import ARRAY, BigInteger, Column, Date, DateTime, Double, SmallInteger, Text

from stream.worker.copy_binary import HEADER, TRAILER, CopyEncoder

pytestmark = pytest.mark.unit

COLUMNS = [
    Column("name", Text),
    Column("at", DateTime(timezone=True)),
    Column("days", ARRAY(Date)),
    Column("hours", ARRAY(SmallInteger)),
    Column("values", ARRAY(Double)),
]
AT = datetime(2000, 1, 1, 0, 0, 1, tzinfo=UTC)


def fields(payload: bytes) -> list[list[bytes | None]]:
    """Rows of raw field values (None = NULL)."""
    assert payload.startswith(HEADER) and payload.endswith(TRAILER)
    body, rows = memoryview(payload)[len(HEADER) : -len(TRAILER)], []
    while body:
        (count,), body = struct.unpack(">h", body[:2]), body[2:]
        row: list[bytes | None] = []
        for _ in range(count):
            (size,), body = struct.unpack(">i", body[:4]), body[4:]
            row.append(None if size < 0 else bytes(body[:size]))
            body = body[max(size, 0) :]
        rows.append(row)
    return rows


def array(raw: bytes | None, item: str) -> tuple[int, list[object]]:
    """(element oid, elements) of a one-dimensional array without NULLs."""
    assert raw is not None
    ndim, nulls, oid, size, lower = struct.unpack(">iiiii", raw[:20])
    assert (ndim, nulls, lower) == (1, 0, 1)
    step = 4 + struct.calcsize(item)
    items = [raw[20 + k * step : 20 + (k + 1) * step] for k in range(size)]
    assert all(struct.unpack(">i", i[:4])[0] == step - 4 for i in items)
    return oid, [struct.unpack(item, i[4:])[0] for i in items]


def test_rows_of_mixed_array_lengths_and_nulls_encode_as_postgresql_reads_them() -> None:
    shared_days = (date(2000, 1, 2), date(1999, 12, 31))
    rows = [
        ("a", AT, shared_days, (5, -1), [1.5, 2.5]),
        ("bé", AT - timedelta(microseconds=2), shared_days, None, [0.25, 0.5, 0.75]),
        ("c", AT, (), (7, 8), [3.0, 4.0]),
    ]
    decoded = fields(CopyEncoder(COLUMNS).encode(rows))
    assert [r[0] for r in decoded] == [b"a", "bé".encode(), b"c"]
    assert [struct.unpack(">q", r[1] or b"")[0] for r in decoded] == [1_000_000, 999_998, 1_000_000]
    assert array(decoded[0][2], ">i") == (1082, [1, -1])  # days since 2000-01-01
    assert array(decoded[0][3], ">h") == (21, [5, -1])
    assert decoded[1][3] is None
    assert array(decoded[2][2], ">i") == (1082, [])
    assert [array(r[4], ">d") for r in decoded] == [
        (701, [1.5, 2.5]),
        (701, [0.25, 0.5, 0.75]),
        (701, [3.0, 4.0]),
    ]


def test_naive_times_null_elements_and_unknown_types_are_refused() -> None:
    encoder = CopyEncoder(COLUMNS[:3])
    with pytest.raises(ValueError, match="naive"):
        encoder.encode([("a", datetime(2026, 1, 1), ())])  # noqa: DTZ001 - the case under test
    with pytest.raises(ValueError, match="NULL"):
        encoder.encode([("a", AT, (None,))])
    with pytest.raises(TypeError, match="no binary COPY encoder"):
        CopyEncoder([Column("n", BigInteger)])
    with pytest.raises(TypeError, match="no binary COPY encoder"):
        CopyEncoder([Column("t", DateTime(timezone=False))])
