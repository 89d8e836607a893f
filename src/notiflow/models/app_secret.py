from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from notiflow.db.base import Base
from notiflow.db.types import UTCDateTime


class AppSecret(Base):
    """A secret Notiflow generated for itself, once, and shares between its processes: e.g.
    the key that signs the admin UI's session cookie when NOTIFLOW_SESSION_SECRET is unset."""

    __tablename__ = "app_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
