"""Raw readings table.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "readings",
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column(
            "ts", sa.DateTime(timezone=True), nullable=False, comment="event time, stored in UTC"
        ),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("tz", sa.Text(), nullable=False, comment="the device's IANA zone at the time"),
        sa.Column("interval_s", sa.Integer(), nullable=False),
        sa.Column("energy_kwh", sa.Double(), nullable=False),
        sa.Column("power_kw", sa.Double(), nullable=False),
        sa.Column(
            "ingested_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("device_id", "ts", name=op.f("pk_readings")),
        comment="Raw device readings, one row per (device, event time).",
    )


def downgrade() -> None:
    op.drop_table("readings")
