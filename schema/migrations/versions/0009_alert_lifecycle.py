"""Alert lifecycle: one row per alert from the hour it opened until it resolves, acknowledged
through the API; more kinds than residuals.

Existing rows (one per residual hour) become alerts that opened and resolved within their hour.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30

Frozen: everything is inlined here; nothing is imported from live modules.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NEW_COLUMNS = (
    "alert_id",
    "last_hour_start",
    "hours",
    "updated_at",
    "resolved_hour",
    "resolved_at",
    "acknowledged_at",
    "acknowledged_by",
    "note",
)


def _tstz(name: str, *, nullable: bool, comment: str | None = None) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, comment=comment)


def upgrade() -> None:
    for name in ("residual_kwh", "sigma", "z"):
        op.alter_column("alerts", name, existing_type=sa.Double(), nullable=True)
    op.add_column(
        "alerts", sa.Column("alert_id", sa.Text(), comment="device.kind.unix time it opened")
    )
    op.add_column("alerts", _tstz("last_hour_start", nullable=True))
    op.add_column(
        "alerts", sa.Column("hours", sa.Integer(), server_default=sa.text("1"), nullable=False)
    )
    op.add_column("alerts", _tstz("updated_at", nullable=True))
    op.add_column(
        "alerts",
        _tstz("resolved_hour", nullable=True, comment="the first hour without the condition"),
    )
    op.add_column("alerts", _tstz("resolved_at", nullable=True))
    op.add_column("alerts", _tstz("acknowledged_at", nullable=True))
    op.add_column("alerts", sa.Column("acknowledged_by", sa.Text(), nullable=True))
    op.add_column("alerts", sa.Column("note", sa.Text(), nullable=True))
    op.execute(
        "UPDATE alerts SET alert_id = device_id || '.' || kind || '.' ||"
        " extract(epoch FROM hour_start)::bigint,"
        " last_hour_start = hour_start, updated_at = raised_at,"
        " resolved_hour = hour_start + interval '1 hour', resolved_at = raised_at"
    )
    op.alter_column("alerts", "alert_id", existing_type=sa.Text(), nullable=False)
    op.alter_column(
        "alerts",
        "last_hour_start",
        existing_type=sa.DateTime(timezone=True),
        nullable=False,
        comment="the last hour the condition held",
    )
    op.alter_column(
        "alerts",
        "updated_at",
        existing_type=sa.DateTime(timezone=True),
        nullable=False,
        server_default=sa.func.now(),
    )
    op.alter_column(
        "alerts",
        "kind",
        existing_type=sa.Text(),
        comment=None,
        existing_comment="e.g. 'residual'",
    )
    op.alter_column(
        "alerts",
        "hour_start",
        existing_type=sa.DateTime(timezone=True),
        comment="the hour the alert opened",
    )
    op.alter_column(
        "alerts",
        "severity",
        existing_type=sa.Text(),
        comment="the worst severity while open",
    )
    op.create_check_constraint(
        op.f("ck_alerts_kind"), "alerts", "kind IN ('residual', 'level_shift', 'silent', 'stuck')"
    )
    op.create_index("uq_alerts_alert_id", "alerts", ["alert_id"], unique=True)
    op.create_index(
        "ix_alerts_open",
        "alerts",
        ["raised_at"],
        postgresql_where=sa.text("resolved_hour IS NULL"),
    )
    op.create_table_comment(
        "alerts",
        "Alerts per device and kind, one row from the hour each opened until resolved; "
        "acknowledged through the API.",
        existing_comment="Alerts raised per device, hour and kind (at most one of each).",
    )


def downgrade() -> None:
    op.create_table_comment(
        "alerts", "Alerts raised per device, hour and kind (at most one of each)."
    )
    op.drop_index("ix_alerts_open", table_name="alerts")
    op.drop_index("uq_alerts_alert_id", table_name="alerts")
    op.drop_constraint(op.f("ck_alerts_kind"), "alerts", type_="check")
    op.alter_column("alerts", "severity", existing_type=sa.Text(), comment=None)
    op.alter_column("alerts", "hour_start", existing_type=sa.DateTime(timezone=True), comment=None)
    op.alter_column("alerts", "kind", existing_type=sa.Text(), comment="e.g. 'residual'")
    for name in _NEW_COLUMNS:
        op.drop_column("alerts", name)
    # Alerts the old table cannot hold (no residual figures) go; the rest keep theirs.
    op.execute("DELETE FROM alerts WHERE residual_kwh IS NULL OR sigma IS NULL OR z IS NULL")
    for name in ("residual_kwh", "sigma", "z"):
        op.alter_column("alerts", name, existing_type=sa.Double(), nullable=False)
