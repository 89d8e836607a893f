from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from notiflow.core.clock import utcnow
from notiflow.db.base import Base
from notiflow.db.types import BigId, UTCDateTime


class MessageStatus(StrEnum):
    pending = "pending"
    sending = "sending"
    sent = "sent"
    failed = "failed"
    expired = "expired"
    cancelled = "cancelled"


FINAL_STATUSES = frozenset(
    {MessageStatus.sent, MessageStatus.failed, MessageStatus.expired, MessageStatus.cancelled}
)


class Message(Base):
    """One message of one mailing to one client. The table is the delivery queue itself."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # No foreign keys here, on purpose: checking two of them per row made writing a
    # 1,000,000-message audience take 11 s instead of 4.5 s on PostgreSQL. The repositories do
    # what ON DELETE would: deleting a mailing deletes its messages, deleting a client nulls them.
    mailing_id: Mapped[int] = mapped_column(BigId)
    # NULL once the client is deleted: the sent history stays, the person is gone.
    client_id: Mapped[int | None] = mapped_column(BigId)
    status: Mapped[str] = mapped_column(String(16), default=MessageStatus.pending.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    # The lease: which worker holds the message while it is ``sending``, and until when.
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("mailing_id", "client_id"),
        CheckConstraint(
            "status IN ('pending', 'sending', 'sent', 'failed', 'expired', 'cancelled')",
            name="status",
        ),
        # "Due pending messages of a mailing": partial, so it only holds the live queue.
        Index(
            "ix_messages_due",
            "mailing_id",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        # Expired leases of crashed workers.
        Index(
            "ix_messages_lease",
            "lease_expires_at",
            postgresql_where=text("status = 'sending'"),
            sqlite_where=text("status = 'sending'"),
        ),
        Index("ix_messages_client_id", "client_id"),
    )
