"""daily reports: one row per report date, claimed by the engine that sends it

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-06 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import notiflow.db.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "daily_reports",
        sa.Column("report_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=False),
        sa.Column("claimed_at", notiflow.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", notiflow.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("message_id", sa.String(length=200), nullable=True),
        sa.Column("sent_at", notiflow.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("skipped_at", notiflow.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", notiflow.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('sending', 'retrying', 'sent', 'skipped')",
            name=op.f("ck_daily_reports_status"),
        ),
        sa.PrimaryKeyConstraint("report_date", name=op.f("pk_daily_reports")),
    )


def downgrade() -> None:
    op.drop_table("daily_reports")
