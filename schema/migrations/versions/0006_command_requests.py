"""Idempotency keys of device commands.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29

Frozen: everything is inlined here; nothing is imported from live modules.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "command_requests",
        sa.Column(
            "client", sa.Text(), nullable=False, comment="SHA-256 of the caller's API key (hex)."
        ),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column(
            "request_hash",
            sa.Text(),
            nullable=False,
            comment="SHA-256 of device id and body.",
        ),
        sa.Column("status_code", sa.SmallInteger(), nullable=True),
        sa.Column(
            "response",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=True,
            comment="NULL while the first request runs.",
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("client", "idempotency_key", name=op.f("pk_command_requests")),
        comment="Device commands sent with an Idempotency-Key: a retry with the same key (within "
        "the API's idempotency_ttl) answers the first answer and publishes nothing.",
    )
    op.create_index(
        op.f("ix_command_requests_created_at"), "command_requests", ["created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_command_requests_created_at"), table_name="command_requests")
    op.drop_table("command_requests")
