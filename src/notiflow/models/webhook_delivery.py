from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from notiflow.core.clock import utcnow
from notiflow.db.base import Base
from notiflow.db.types import BigId, UTCDateTime


class DeliveryStatus(StrEnum):
    pending = "pending"  # due at next_attempt_at
    sending = "sending"  # held by a worker (claimed_by) until next_attempt_at, its lease
    delivered = "delivered"
    failed = "failed"  # every attempt failed


class WebhookDelivery(Base):
    """One event for one webhook: the outbox of webhook deliveries, and their history.

    Rows are written in the same transaction as the event they tell of, and only for active
    webhooks subscribed to it; the engine's dispatcher sends them and records each attempt.
    """

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    webhook_id: Mapped[int] = mapped_column(BigId, ForeignKey("webhooks.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(32))
    # The event's data, as the JSON text that goes out in the body's "data" (written once; every
    # attempt sends the same bytes).
    data: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.pending.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # When the next attempt is due; while ``sending``, when the worker's lease ends (a worker
    # that died leaves the delivery due again then). NULL once delivered or failed.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sending', 'delivered', 'failed')", name="status"),
        # Due deliveries (and the leases of a dead worker): partial, only the live ones.
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status IN ('pending', 'sending')"),
            sqlite_where=text("status IN ('pending', 'sending')"),
        ),
        # A webhook's deliveries, newest first; also the foreign key's ON DELETE CASCADE.
        Index("ix_webhook_deliveries_webhook_id_id", "webhook_id", "id"),
    )
