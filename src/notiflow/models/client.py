from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from notiflow.core.clock import utcnow
from notiflow.db.base import Base
from notiflow.db.types import BigId, UTCDateTime


class Client(Base):
    """An entry of the address book."""

    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    phone: Mapped[str] = mapped_column(String(11), unique=True)
    operator_code: Mapped[str] = mapped_column(String(3))
    tag: Mapped[str | None] = mapped_column(String(255))
    timezone: Mapped[str] = mapped_column(String(64))
    # Set when the client asked to receive nothing more: never in an audience again.
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    # Audiences are selected by operator code and tag; with the time zone in the index, an
    # audience preview counts clients per zone from the index alone.
    __table_args__ = (
        Index("ix_clients_audience", "operator_code", "tag", "timezone"),
        Index("ix_clients_tag", "tag"),
        # Few clients opt out: a partial index counts them within any audience at once.
        Index(
            "ix_clients_opted_out",
            "operator_code",
            "tag",
            "timezone",
            postgresql_where=text("opted_out_at IS NOT NULL"),
            sqlite_where=text("opted_out_at IS NOT NULL"),
        ),
    )
