from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from notiflow.core.clock import utcnow
from notiflow.db.base import Base
from notiflow.db.types import BigId, UTCDateTime


class TestSend(Base):
    """One test send of a mailing's text to one phone, kept apart from its statistics."""

    __tablename__ = "test_sends"
    __test__ = False  # not a pytest test class, despite its name

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    mailing_id: Mapped[int] = mapped_column(BigId, ForeignKey("mailings.id", ondelete="CASCADE"))
    client_id: Mapped[int | None] = mapped_column(BigId)
    phone: Mapped[str] = mapped_column(String(11))
    verdict: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    latency_ms: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_test_sends_mailing_id", "mailing_id"),)
