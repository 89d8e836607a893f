"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 17:29:48.067173
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import notiflow.db.types

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", notiflow.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "clients",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("phone", sa.String(length=11), nullable=False),
        sa.Column("operator_code", sa.String(length=3), nullable=False),
        sa.Column("tag", sa.String(length=255), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("created_at", notiflow.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", notiflow.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clients")),
        sa.UniqueConstraint("phone", name=op.f("uq_clients_phone")),
    )
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.create_index(
            "ix_clients_operator_code_tag", ["operator_code", "tag"], unique=False
        )
        batch_op.create_index("ix_clients_tag", ["tag"], unique=False)

    op.create_table(
        "mailings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("start_time", notiflow.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("end_time", notiflow.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("operator_codes", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("window_start", sa.Time(), nullable=True),
        sa.Column("window_end", sa.Time(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("materialized_at", notiflow.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("started_at", notiflow.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", notiflow.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", notiflow.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", notiflow.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('scheduled', 'running', 'completed', 'cancelled')",
            name=op.f("ck_mailings_status"),
        ),
        sa.CheckConstraint(
            "(window_start IS NULL) = (window_end IS NULL)", name=op.f("ck_mailings_window_pair")
        ),
        sa.CheckConstraint("end_time > start_time", name=op.f("ck_mailings_end_after_start")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailings")),
    )
    with op.batch_alter_table("mailings", schema=None) as batch_op:
        batch_op.create_index(
            "ix_mailings_status_start_time", ["status", "start_time"], unique=False
        )

    op.create_table(
        "messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "mailing_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("client_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", notiflow.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("sent_at", notiflow.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", notiflow.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", notiflow.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", notiflow.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'sent', 'failed', 'expired', 'cancelled')",
            name=op.f("ck_messages_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint(
            "mailing_id", "client_id", name=op.f("uq_messages_mailing_id_client_id")
        ),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index("ix_messages_client_id", ["client_id"], unique=False)
        batch_op.create_index(
            "ix_messages_due",
            ["mailing_id", "next_attempt_at"],
            unique=False,
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        )
        batch_op.create_index(
            "ix_messages_lease",
            ["lease_expires_at"],
            unique=False,
            postgresql_where=sa.text("status = 'sending'"),
            sqlite_where=sa.text("status = 'sending'"),
        )

    op.create_table(
        "mailing_errors",
        sa.Column(
            "mailing_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("error", sa.String(length=100), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["mailing_id"],
            ["mailings.id"],
            name=op.f("fk_mailing_errors_mailing_id_mailings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("mailing_id", "error", name=op.f("pk_mailing_errors")),
    )
    op.create_table(
        "mailing_stats",
        sa.Column(
            "mailing_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("pending", sa.BigInteger(), nullable=False),
        sa.Column("sending", sa.BigInteger(), nullable=False),
        sa.Column("sent", sa.BigInteger(), nullable=False),
        sa.Column("failed", sa.BigInteger(), nullable=False),
        sa.Column("expired", sa.BigInteger(), nullable=False),
        sa.Column("cancelled", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.BigInteger(), nullable=False),
        sa.Column("retried_messages", sa.BigInteger(), nullable=False),
        sa.Column("first_sent_at", notiflow.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_sent_at", notiflow.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["mailing_id"],
            ["mailings.id"],
            name=op.f("fk_mailing_stats_mailing_id_mailings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("mailing_id", name=op.f("pk_mailing_stats")),
    )
    op.create_table(
        "mailing_timeline",
        sa.Column(
            "mailing_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("at", notiflow.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent", sa.BigInteger(), nullable=False),
        sa.Column("failed", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["mailing_id"],
            ["mailings.id"],
            name=op.f("fk_mailing_timeline_mailing_id_mailings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("mailing_id", "at", name=op.f("pk_mailing_timeline")),
    )


def downgrade() -> None:

    op.drop_table("mailing_timeline")
    op.drop_table("mailing_stats")
    op.drop_table("mailing_errors")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_messages_lease",
            postgresql_where=sa.text("status = 'sending'"),
            sqlite_where=sa.text("status = 'sending'"),
        )
        batch_op.drop_index(
            "ix_messages_due",
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        )
        batch_op.drop_index("ix_messages_client_id")

    op.drop_table("messages")
    with op.batch_alter_table("mailings", schema=None) as batch_op:
        batch_op.drop_index("ix_mailings_status_start_time")

    op.drop_table("mailings")
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_index("ix_clients_tag")
        batch_op.drop_index("ix_clients_operator_code_tag")

    op.drop_table("clients")
    op.drop_table("api_tokens")
