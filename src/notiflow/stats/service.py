from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from notiflow.core.errors import InvalidInput
from notiflow.mailings import service as mailings
from notiflow.models import MailingStatus
from notiflow.stats import repository
from notiflow.stats.schemas import (
    AttemptStats,
    ErrorCount,
    MailingStatsRead,
    MessageCounts,
    OverallStats,
    Timeline,
    TimelinePoint,
)

DEFAULT_HOURS = 6
MAX_HOURS = 48
MAX_MINUTES = MAX_HOURS * 60  # the most minutes one timeline holds
_MINUTE = timedelta(minutes=1)
_FINISHED = frozenset({MailingStatus.completed, MailingStatus.cancelled})


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


def minute_of(at: datetime) -> datetime:
    """The start of the minute ``at`` falls in."""
    return at.replace(second=0, microsecond=0)


async def per_minute(
    session: AsyncSession,
    *,
    first: datetime,
    last: datetime,
    mailing_id: int | None = None,
    status: MailingStatus | None = None,
) -> Timeline:
    """Messages sent and failed in every minute from the one of ``first`` to the one of
    ``last`` (both included), over every mailing or one: a minute with nothing is a 0, never a
    gap. A range that ends before it starts, or that holds more than ``MAX_MINUTES`` minutes,
    is refused (422)."""
    first, last = minute_of(first), minute_of(last)
    if last < first:
        raise InvalidInput("the range ends before it starts", field="last")
    minutes = (last - first) // _MINUTE + 1
    if minutes > MAX_MINUTES:
        raise InvalidInput(f"a range holds at most {MAX_HOURS} hours", field="first")
    counts = await repository.outcomes_per_minute(
        session, first=first, last=last, mailing_id=mailing_id
    )
    points = []
    for n in range(minutes):
        at = first + n * _MINUTE
        sent, failed = counts.get(at, (0, 0))
        points.append(TimelinePoint(at=at, sent=sent, failed=failed))
    return Timeline(
        mailing_id=mailing_id,
        status=status,
        start=first,
        end=last,
        points=points,
        sent=sum(p.sent for p in points),
        failed=sum(p.failed for p in points),
    )


async def recent_timeline(
    session: AsyncSession, *, now: datetime, hours: int = DEFAULT_HOURS
) -> Timeline:
    """Every mailing's messages per minute over the last ``hours`` hours (1 to ``MAX_HOURS``),
    the current minute included: ``hours * 60`` points."""
    if not 1 <= hours <= MAX_HOURS:
        raise InvalidInput(f"must be from 1 to {MAX_HOURS}", field="hours")
    last = minute_of(now)
    return await per_minute(session, first=last - (hours * 60 - 1) * _MINUTE, last=last)


async def mailing_timeline(session: AsyncSession, mailing_id: int, *, now: datetime) -> Timeline:
    """One mailing's messages per minute, from its first outcome to now (to its last outcome
    once it is completed or cancelled); at most its last ``MAX_MINUTES`` minutes. No point
    before its first message was sent or failed."""
    mailing = await mailings.get(session, mailing_id)
    status = MailingStatus(mailing.status)
    first, last = await repository.outcome_minutes(session, mailing_id)
    if first is None or last is None:
        return Timeline(
            mailing_id=mailing_id, status=status, start=None, end=None, points=[], sent=0, failed=0
        )
    if status not in _FINISHED:
        last = max(last, minute_of(now))
    first = max(first, last - (MAX_MINUTES - 1) * _MINUTE)
    return await per_minute(session, first=first, last=last, mailing_id=mailing_id, status=status)
