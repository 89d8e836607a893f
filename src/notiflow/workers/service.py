"""Which workers are alive.

A worker is alive while it has not stopped and its last heartbeat is under
:data:`ALIVE_SECONDS` old (every engine beats every ``NOTIFLOW_WORKER_HEARTBEAT_SECONDS``, at
most 20 s, so a live one beats three times in that window at least).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from notiflow.models import Worker
from notiflow.workers import repository

ALIVE_SECONDS = 60


def alive_since(now: datetime) -> datetime:
    """The oldest last beat of a live worker at ``now``."""
    return now - timedelta(seconds=ALIVE_SECONDS)


def is_alive(worker: Worker, now: datetime) -> bool:
    return worker.stopped_at is None and worker.last_beat_at >= alive_since(now)


async def list_page(
    session: AsyncSession, *, now: datetime, include_all: bool, limit: int, offset: int
) -> tuple[Sequence[Worker], int]:
    """The live workers (or, with ``include_all``, every one seen in the last day), the most
    recently started first."""
    return await repository.list_page(
        session,
        alive_since=None if include_all else alive_since(now),
        limit=limit,
        offset=offset,
    )
