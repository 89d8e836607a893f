from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from notiflow.db.base import Base
from notiflow.db.types import UTCDateTime


class Worker(Base):
    """One delivery engine (of ``notiflow serve`` or ``notiflow worker``) as its heartbeat last
    wrote it: one short UPSERT every ``NOTIFLOW_WORKER_HEARTBEAT_SECONDS``
    (``notiflow.delivery.heartbeat``). Rows not seen for a day are deleted."""

    __tablename__ = "workers"

    # Engine.worker: the name in leases and logs, unique per engine start.
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_beat_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set by a graceful stop; a worker that died (kill -9, a lost machine) just stops beating.
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    in_flight: Mapped[int] = mapped_column(Integer)
    sent: Mapped[int] = mapped_column(BigInteger)
    # ok · unauthorized · circuit_open · circuit_half_open (the provider gate's state)
    provider: Mapped[str] = mapped_column(String(20))
    provider_error: Mapped[str | None] = mapped_column(String(500))
    error: Mapped[str | None] = mapped_column(String(500))  # a loop that keeps failing
    problems: Mapped[list[str]] = mapped_column(JSON)  # loops that complete no round

    __table_args__ = (Index("ix_workers_last_beat_at", "last_beat_at"),)
