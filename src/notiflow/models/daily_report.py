from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Date, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from notiflow.core.clock import utcnow
from notiflow.db.base import Base
from notiflow.db.types import UTCDateTime


class ReportStatus(StrEnum):
    sending = "sending"  # claimed by claimed_by at claimed_at: an attempt is under way
    retrying = "retrying"  # the last attempt failed; the next one is due at next_attempt_at
    sent = "sent"  # the SMTP server accepted it at sent_at
    skipped = "skipped"  # not sent: too late (NOTIFLOW_REPORT_MAX_LATE) at skipped_at


class DailyReport(Base):
    """The daily report of one day: a row claimed by the engine that sends it, so that however
    many engines run, one e-mail goes out per day.

    The row is made by the first claim (``INSERT … ON CONFLICT DO NOTHING``); a claim whose
    claimer died (``sending`` for longer than a few minutes) may be taken over, as may a
    ``retrying`` one once its next attempt is due.
    """

    __tablename__ = "daily_reports"

    report_date: Mapped[date] = mapped_column(Date, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    claimed_by: Mapped[str] = mapped_column(String(64))
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    # The Message-ID of the e-mail the SMTP server accepted.
    message_id: Mapped[str | None] = mapped_column(String(200))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    skipped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        CheckConstraint("status IN ('sending', 'retrying', 'sent', 'skipped')", name="status"),
    )
