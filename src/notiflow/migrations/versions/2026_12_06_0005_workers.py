"""workers: a heartbeat row per delivery engine

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 16:41:44.018883
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import notiflow.db.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("started_at", notiflow.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_beat_at", notiflow.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", notiflow.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("in_flight", sa.Integer(), nullable=False),
        sa.Column("sent", sa.BigInteger(), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("provider_error", sa.String(length=500), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_workers")),
    )
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.create_index("ix_workers_last_beat_at", ["last_beat_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.drop_index("ix_workers_last_beat_at")

    op.drop_table("workers")
