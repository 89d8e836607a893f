"""mailing_timeline: an index on the minute, for messages per minute over every mailing

The dashboard's chart (GET /api/v1/stats/timeline) and its "today" counts read the last hours
of every mailing's per-minute counters; the primary key (mailing_id, at) serves one mailing's
timeline only. One index entry per mailing and minute: the engine's write-back, which mostly
updates counters of an existing minute, changes no indexed column.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 20:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_mailing_timeline_at"), "mailing_timeline", ["at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_mailing_timeline_at"), table_name="mailing_timeline")
