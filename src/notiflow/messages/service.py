from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from notiflow.core.errors import NotFound
from notiflow.messages import repository
from notiflow.models import Message, MessageStatus
from notiflow.stats import repository as counters


async def get(session: AsyncSession, message_id: int) -> Message:
    message = await repository.get(session, message_id)
    if message is None:
        raise NotFound(f"message {message_id} not found")
    return message


async def list_page(
    session: AsyncSession,
    *,
    mailing_id: int,
    status: MessageStatus | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[Message], int]:
    """A page of a mailing's messages; the total comes from the mailing's counters."""
    rows = await repository.list_page(
        session, mailing_id=mailing_id, status=status, limit=limit, offset=offset
    )
    counts = counters.counts_of(await counters.get(session, mailing_id))
    total = counts["total"] if status is None else counts[status.value]
    return rows, total
