from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from notiflow.core.clock import utcnow
from notiflow.db.base import Base
from notiflow.db.types import BigId, UTCDateTime


class ApiToken(Base):
    """A bearer token managed by the service. Only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # What the token may do: read, send or admin (notiflow.auth.roles). Tokens made before roles
    # existed are admin, as they could do everything.
    role: Mapped[str] = mapped_column(String(16), default="admin")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (CheckConstraint("role IN ('read', 'send', 'admin')", name="role"),)
