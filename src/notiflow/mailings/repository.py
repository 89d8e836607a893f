"""All SQL about mailings."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from notiflow import counters
from notiflow.models import Mailing, MailingStatus, Message, TestSend


async def get(
    session: AsyncSession, mailing_id: int, *, for_update: bool = False
) -> Mailing | None:
    query = select(Mailing).where(Mailing.id == mailing_id)
    if for_update:
        # FOR NO KEY UPDATE: its id never changes, and the engine's writes of its counters,
        # whose foreign keys take a key-share lock on it, must not wait for this lock while
        # holding messages this transaction may want next.
        query = query.with_for_update(key_share=True)
    return await session.scalar(query)


async def add(session: AsyncSession, mailing: Mailing) -> Mailing:
    session.add(mailing)
    await session.flush()
    await counters.create_row(session, mailing.id)
    return mailing


async def remove(session: AsyncSession, mailing_id: int) -> None:
    """Delete a mailing with its messages (its counters go by ON DELETE CASCADE)."""
    await session.execute(delete(Message).where(Message.mailing_id == mailing_id))
    await session.execute(delete(Mailing).where(Mailing.id == mailing_id))


async def list_page(
    session: AsyncSession, *, status: MailingStatus | None, limit: int, offset: int
) -> tuple[Sequence[Mailing], int]:
    query = select(Mailing)
    count = select(func.count()).select_from(Mailing)
    if status is not None:
        query = query.where(Mailing.status == status.value)
        count = count.where(Mailing.status == status.value)
    rows = await session.scalars(query.order_by(Mailing.id.desc()).limit(limit).offset(offset))
    return rows.all(), int(await session.scalar(count) or 0)


async def test_sends(
    session: AsyncSession, mailing_id: int, *, limit: int, offset: int
) -> tuple[Sequence[TestSend], int]:
    where = TestSend.mailing_id == mailing_id
    rows = await session.scalars(
        select(TestSend).where(where).order_by(TestSend.id.desc()).limit(limit).offset(offset)
    )
    total = await session.scalar(select(func.count()).select_from(TestSend).where(where))
    return rows.all(), int(total or 0)
