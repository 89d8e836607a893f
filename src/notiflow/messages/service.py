from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from notiflow.core.errors import NotFound
from notiflow.messages import repository
from notiflow.models import Message, MessageStatus
from notiflow.stats import repository as counters


async def get(session: AsyncSession, message_id: int) -> tuple[Message, str | None]:
    """A message and its client's phone (None once the client is deleted)."""
    found = await repository.get_with_phone(session, message_id)
    if found is None:
        raise NotFound(f"message {message_id} not found")
    return found


async def list_page(
    session: AsyncSession,
    *,
    mailing_id: int,
    status: MessageStatus | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[tuple[Message, str | None]], int]:
    """A page of a mailing's messages with their clients' phones; the total comes from the
    mailing's counters."""
    rows = await repository.list_page(
        session, mailing_id=mailing_id, status=status, limit=limit, offset=offset
    )
    counts = counters.counts_of(await counters.get(session, mailing_id))
    total = counts["total"] if status is None else counts[status.value]
    return rows, total
