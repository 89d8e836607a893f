"""Per-mailing counters, kept in the same transaction as every message state change.

They make statistics O(1) in the size of a mailing: a million messages cost what ten do.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from notiflow.db.base import Base
from notiflow.db.types import BigId, UTCDateTime


class MailingStats(Base):
    __tablename__ = "mailing_stats"

    mailing_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("mailings.id", ondelete="CASCADE"), primary_key=True
    )
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    pending: Mapped[int] = mapped_column(BigInteger, default=0)
    sending: Mapped[int] = mapped_column(BigInteger, default=0)
    sent: Mapped[int] = mapped_column(BigInteger, default=0)
    failed: Mapped[int] = mapped_column(BigInteger, default=0)
    expired: Mapped[int] = mapped_column(BigInteger, default=0)
    cancelled: Mapped[int] = mapped_column(BigInteger, default=0)
    # Every request made to the provider, and the messages that needed more than one.
    attempts: Mapped[int] = mapped_column(BigInteger, default=0)
    retried_messages: Mapped[int] = mapped_column(BigInteger, default=0)
    first_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MailingError(Base):
    """How many failed attempts of a mailing ended with each kind of error."""

    __tablename__ = "mailing_errors"

    mailing_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("mailings.id", ondelete="CASCADE"), primary_key=True
    )
    error: Mapped[str] = mapped_column(String(100), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class MailingTimeline(Base):
    """Messages that became ``sent`` or ``failed`` per minute."""

    __tablename__ = "mailing_timeline"
    # No index on ``at`` alone: every mailing's last hours are read through the key, mailing by
    # mailing (``notiflow.stats.repository``); such an index slowed the engine's write-back.

    mailing_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("mailings.id", ondelete="CASCADE"), primary_key=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    sent: Mapped[int] = mapped_column(BigInteger, default=0)
    failed: Mapped[int] = mapped_column(BigInteger, default=0)
