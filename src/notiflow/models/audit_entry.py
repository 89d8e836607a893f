from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from notiflow.core.clock import utcnow
from notiflow.db.base import Base
from notiflow.db.types import BigId, UTCDateTime


class AuditEntry(Base):
    """One write made through the API: who, what, to which object, when.

    Written in the same transaction as the write itself (notiflow.audit.recorder), so a write
    that failed has no entry and one that committed always has one.
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The token's name; tokens from the environment are config#1, config-send#1, …
    actor: Mapped[str] = mapped_column(String(100))
    # <object type>.<verb>: mailing.create, mailing.cancel, client.import, token.delete, …
    action: Mapped[str] = mapped_column(String(100))
    method: Mapped[str] = mapped_column(String(10))
    # The route's template, e.g. /api/v1/mailings/{mailing_id}/cancel: never a value.
    route: Mapped[str] = mapped_column(String(300))
    object_type: Mapped[str | None] = mapped_column(String(50))
    object_id: Mapped[int | None] = mapped_column(BigInteger)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_actor_at", "actor", "at"),
        Index("ix_audit_log_action_at", "action", "at"),
        Index("ix_audit_log_object", "object_type", "object_id"),
    )
