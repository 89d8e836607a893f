from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from notiflow.mailings import service as mailings
from notiflow.models import MailingStatus
from notiflow.stats import repository
from notiflow.stats.schemas import (
    AttemptStats,
    ErrorCount,
    MailingStatsRead,
    MessageCounts,
    OverallStats,
    TimelinePoint,
)


async def counts_for(session: AsyncSession, mailing_ids: Sequence[int]) -> dict[int, MessageCounts]:
    rows = await repository.for_mailings(session, mailing_ids)
    return {
        mailing_id: MessageCounts.of(repository.counts_of(rows.get(mailing_id)))
        for mailing_id in mailing_ids
    }


async def for_mailing(session: AsyncSession, mailing_id: int) -> MailingStatsRead:
    mailing = await mailings.get(session, mailing_id)
    stats = await repository.get(session, mailing_id)
    return MailingStatsRead(
        mailing_id=mailing.id,
        status=MailingStatus(mailing.status),
        stats=MessageCounts.of(repository.counts_of(stats)),
        first_sent_at=stats.first_sent_at if stats else None,
        last_sent_at=stats.last_sent_at if stats else None,
        attempts=AttemptStats(
            total=stats.attempts if stats else 0,
            retried_messages=stats.retried_messages if stats else 0,
        ),
        errors=[
            ErrorCount(error=error, count=count)
            for error, count in await repository.errors(session, mailing_id)
        ],
        timeline=[
            TimelinePoint(at=at, sent=sent, failed=failed)
            for at, sent, failed in await repository.timeline(session, mailing_id)
        ],
    )


async def overall(session: AsyncSession) -> OverallStats:
    by_status = await repository.mailings_by_status(session)
    return OverallStats(
        total_mailings=sum(by_status.values()),
        mailings_by_status={MailingStatus(k): v for k, v in by_status.items()},
        messages=MessageCounts.of(await repository.totals(session)),
    )


async def outcomes_since(session: AsyncSession, since: datetime) -> tuple[int, int]:
    """Messages sent and failed for good since ``since`` (to the minute), over every mailing."""
    return await repository.outcomes_since(session, since)


async def rates(
    session: AsyncSession, mailing_ids: Sequence[int], *, now: datetime, minutes: int = 5
) -> dict[int, float]:
    """Messages per minute each mailing sent over the last ``minutes`` minutes."""
    sent = await repository.sent_since(session, mailing_ids, now - timedelta(minutes=minutes))
    return {mailing_id: count / minutes for mailing_id, count in sent.items()}
