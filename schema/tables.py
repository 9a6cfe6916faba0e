"""Table definitions (SQLAlchemy Core), the target metadata of the Alembic migrations.

These describe storage, not messages: a column here may differ from a field of the wire model
in :mod:`schema.wire`, and each can change without the other.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Double,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

readings = Table(
    "readings",
    metadata,
    Column("device_id", Text, nullable=False),
    Column("ts", DateTime(timezone=True), nullable=False, comment="event time, stored in UTC"),
    Column("seq", BigInteger, nullable=False),
    Column("tz", Text, nullable=False, comment="the device's IANA zone at the time"),
    Column("interval_s", Integer, nullable=False),
    Column("energy_kwh", Double, nullable=False),
    Column("power_kw", Double, nullable=False),
    Column(
        "ingested_at",
        DateTime(timezone=True),
        nullable=False,
        server_default=func.now(),
    ),
    # (device_id, ts) makes every sink write idempotent (ON CONFLICT DO NOTHING) and, holding
    # the time column, is also a valid unique key for a TimescaleDB hypertable.
    PrimaryKeyConstraint("device_id", "ts"),
    comment="Raw device readings, one row per (device, event time).",
)
