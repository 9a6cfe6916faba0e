"""Alerts a person resolves (who, with what note), and the simulator's ground-truth anomaly
labels the alerts are scored against.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30

Frozen: everything is inlined here; nothing is imported from live modules.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ALERTS_COMMENT = (
    "Alerts per device and kind, one row from the hour each opened until resolved (by "
    "the worker once the condition cleared, or by a person through the API); acknowledged "
    "through the API."
)
_ALERTS_COMMENT_0009 = (
    "Alerts per device and kind, one row from the hour each opened until resolved; "
    "acknowledged through the API."
)


def _required(name: str, kind: sa.types.TypeEngine[object], **kwargs: object) -> sa.Column[object]:
    return sa.Column(name, kind, nullable=False, **kwargs)  # type: ignore[arg-type]


def upgrade() -> None:
    op.add_column(
        "alerts",
        sa.Column("resolved_by", sa.Text(), nullable=True, comment="who resolved it by hand (API)"),
    )
    op.add_column("alerts", sa.Column("resolution_note", sa.Text(), nullable=True))
    op.alter_column("alerts", "note", existing_type=sa.Text(), comment="the acknowledgement's note")
    op.create_table_comment("alerts", _ALERTS_COMMENT, existing_comment=_ALERTS_COMMENT_0009)
    op.create_table(
        "anomaly_labels",
        *(_required(name, sa.Text()) for name in ("label_id", "device_id", "anomaly")),
        _required(
            "start", sa.DateTime(timezone=True), comment="event time of the first affected reading"
        ),
        _required("end", sa.DateTime(timezone=True), comment="exclusive"),
        _required("first_seq", sa.BigInteger()),
        sa.Column("magnitude", sa.Double(), nullable=True),
        _required("nominal_kw", sa.Double()),
        *(_required(name, sa.Text()) for name in ("source", "command_id")),
        _required("received_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("label_id", name=op.f("pk_anomaly_labels")),
        sa.CheckConstraint(
            "anomaly IN ('spike', 'drift', 'stuck', 'dropout')",
            name=op.f("ck_anomaly_labels_anomaly"),
        ),
        sa.CheckConstraint(
            "source IN ('command', 'schedule')", name=op.f("ck_anomaly_labels_source")
        ),
        comment="Ground truth of the anomalies the simulator injected (its labels topic), "
        "upserted by label id: what the alerts are scored against.",
    )
    op.create_index(op.f("ix_anomaly_labels_start"), "anomaly_labels", ["start"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_anomaly_labels_start"), table_name="anomaly_labels")
    op.drop_table("anomaly_labels")
    op.create_table_comment("alerts", _ALERTS_COMMENT_0009, existing_comment=_ALERTS_COMMENT)
    op.alter_column(
        "alerts",
        "note",
        existing_type=sa.Text(),
        comment=None,
        existing_comment="the acknowledgement's note",
    )
    # A manually resolved alert stays resolved (resolved_hour and resolved_at remain); only who
    # and why are lost, which 0009 cannot hold.
    op.drop_column("alerts", "resolution_note")
    op.drop_column("alerts", "resolved_by")
