from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, String
from sqlalchemy.orm import Mapped, mapped_column

from notiflow.core.clock import utcnow
from notiflow.db.base import Base
from notiflow.db.types import BigId, UTCDateTime


class Webhook(Base):
    """A URL that is told of events (``webhooks.events`` lists them)."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    # The event names it subscribes to, comma-delimited with a comma at each end
    # (",mailing.completed,message.failed,"), so that one portable condition,
    # ``events LIKE '%,<name>,%'``, finds the subscribers of an event on SQLite and PostgreSQL
    # alike (no event name holds a LIKE wildcard).
    events: Mapped[str] = mapped_column(String(500))
    # Used to sign every delivery, so it is kept as it is (it is never returned but on creation
    # and rotation, and never logged).
    secret: Mapped[str] = mapped_column(String(128))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
