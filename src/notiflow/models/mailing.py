from __future__ import annotations

from datetime import datetime, time
from enum import StrEnum

from sqlalchemy import JSON, CheckConstraint, Index, String, Text, Time
from sqlalchemy.orm import Mapped, mapped_column

from notiflow.core.clock import utcnow
from notiflow.db.base import Base
from notiflow.db.types import BigId, UTCDateTime


class MailingStatus(StrEnum):
    scheduled = "scheduled"
    running = "running"
    paused = "paused"
    completed = "completed"
    cancelled = "cancelled"


class Mailing(Base):
    """A campaign: one text sent to every client matching a filter between two instants."""

    __tablename__ = "mailings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    start_time: Mapped[datetime] = mapped_column(UTCDateTime)
    end_time: Mapped[datetime] = mapped_column(UTCDateTime)
    operator_codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    window_start: Mapped[time | None] = mapped_column(Time)
    window_end: Mapped[time | None] = mapped_column(Time)
    status: Mapped[str] = mapped_column(String(16), default=MailingStatus.scheduled.value)
    # Why a paused mailing is paused: by whom, or the engine's reason for pausing it.
    paused_reason: Mapped[str | None] = mapped_column(String(500))
    # Set by the engine once the audience has been written as message rows.
    materialized_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        CheckConstraint(
            "status IN ('scheduled', 'running', 'paused', 'completed', 'cancelled')",
            name="status",
        ),
        CheckConstraint("end_time > start_time", name="end_after_start"),
        CheckConstraint("(window_start IS NULL) = (window_end IS NULL)", name="window_pair"),
        Index("ix_mailings_status_start_time", "status", "start_time"),
    )
