"""Reads of the mailing statistics. The counters are written by ``notiflow.counters``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from notiflow.models import (
    Mailing,
    MailingError,
    MailingStats,
    MailingStatus,
    MailingTimeline,
    Message,
    MessageStatus,
)

STATUS_COLUMNS = tuple(status.value for status in MessageStatus)


async def get(session: AsyncSession, mailing_id: int) -> MailingStats | None:
    return await session.get(MailingStats, mailing_id)


async def for_mailings(
    session: AsyncSession, mailing_ids: Sequence[int]
) -> dict[int, MailingStats]:
    if not mailing_ids:
        return {}
    rows = await session.scalars(
        select(MailingStats).where(MailingStats.mailing_id.in_(mailing_ids))
    )
    return {row.mailing_id: row for row in rows}


async def errors(session: AsyncSession, mailing_id: int, limit: int = 50) -> list[tuple[str, int]]:
    rows = await session.execute(
        select(MailingError.error, MailingError.count)
        .where(MailingError.mailing_id == mailing_id)
        .order_by(MailingError.count.desc(), MailingError.error)
        .limit(limit)
    )
    return [(error, int(count)) for error, count in rows]


async def timeline(
    session: AsyncSession, mailing_id: int, limit: int = 1440
) -> list[tuple[datetime, int, int]]:
    rows = await session.execute(
        select(MailingTimeline.at, MailingTimeline.sent, MailingTimeline.failed)
        .where(MailingTimeline.mailing_id == mailing_id)
        .order_by(MailingTimeline.at.desc())
        .limit(limit)
    )
    return sorted((at, int(sent), int(failed)) for at, sent, failed in rows)


async def totals(session: AsyncSession) -> dict[str, int]:
    """Message counts by status over every mailing."""
    columns = [func.coalesce(func.sum(getattr(MailingStats, name)), 0) for name in STATUS_COLUMNS]
    row = (
        await session.execute(select(func.coalesce(func.sum(MailingStats.total), 0), *columns))
    ).one()
    return {
        "total": int(row[0]),
        **{name: int(v) for name, v in zip(STATUS_COLUMNS, row[1:], strict=True)},
    }


async def mailings_by_status(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(Mailing.status, func.count()).group_by(Mailing.status))
    counts = {status.value: 0 for status in MailingStatus}
    counts.update({status: int(count) for status, count in rows})
    return counts


async def recount(session: AsyncSession, mailing_id: int) -> dict[str, int]:
    """Count a mailing's messages by status the slow way, from the messages themselves."""
    rows = await session.execute(
        select(Message.status, func.count())
        .where(Message.mailing_id == mailing_id)
        .group_by(Message.status)
    )
    counts = dict.fromkeys(STATUS_COLUMNS, 0)
    counts.update({status: int(count) for status, count in rows})
    counts["total"] = sum(counts.values())
    return counts


def counts_of(stats: MailingStats | None) -> Mapping[str, int]:
    if stats is None:
        return {"total": 0, **dict.fromkeys(STATUS_COLUMNS, 0)}
    return {"total": stats.total, **{name: getattr(stats, name) for name in STATUS_COLUMNS}}


# How long after a mailing finished an outcome of it may still be written: the answers to the
# requests in flight when it was cancelled (at most the provider's timeout, then a write-back).
LATE_OUTCOMES = timedelta(hours=1)


async def _could_have_outcomes_since(session: AsyncSession, since: datetime) -> list[int]:
    """The mailings that may have a per-minute counter from ``since`` on: started, and not
    finished before it (with ``LATE_OUTCOMES`` to spare). Their counters are then read mailing by
    mailing through the key (mailing_id, at), whatever the planner would guess of a join: an
    index on the minute alone would cost the engine's write-back more than it saves here."""
    ids = await session.scalars(
        select(Mailing.id).where(
            Mailing.started_at.is_not(None),
            or_(Mailing.finished_at.is_(None), Mailing.finished_at >= since - LATE_OUTCOMES),
        )
    )
    return list(ids)


async def outcomes_since(session: AsyncSession, since: datetime) -> tuple[int, int]:
    """Messages sent and failed for good, over every mailing, from the minute of ``since`` on."""
    minute = since.replace(second=0, microsecond=0)
    mailing_ids = await _could_have_outcomes_since(session, minute)
    if not mailing_ids:
        return 0, 0
    row = (
        await session.execute(
            select(
                func.coalesce(func.sum(MailingTimeline.sent), 0),
                func.coalesce(func.sum(MailingTimeline.failed), 0),
            ).where(MailingTimeline.mailing_id.in_(mailing_ids), MailingTimeline.at >= minute)
        )
    ).one()
    return int(row[0]), int(row[1])


async def sent_since(
    session: AsyncSession, mailing_ids: Sequence[int], since: datetime
) -> dict[int, int]:
    """Messages of each mailing sent from the minute of ``since`` on (0 when none)."""
    counts = dict.fromkeys(mailing_ids, 0)
    if not mailing_ids:
        return counts
    rows = await session.execute(
        select(MailingTimeline.mailing_id, func.sum(MailingTimeline.sent))
        .where(
            MailingTimeline.mailing_id.in_(mailing_ids),
            MailingTimeline.at >= since.replace(second=0, microsecond=0),
        )
        .group_by(MailingTimeline.mailing_id)
    )
    counts.update({mailing_id: int(sent or 0) for mailing_id, sent in rows})
    return counts


async def outcomes_per_minute(
    session: AsyncSession, *, first: datetime, last: datetime, mailing_id: int | None = None
) -> dict[datetime, tuple[int, int]]:
    """Messages sent and failed in each minute from ``first`` to ``last`` (both included, both
    the start of a minute), over every mailing or one; minutes with nothing are absent.

    Read from the per-minute counters (``mailing_timeline``, written with every outcome), never
    from the messages: the cost grows with mailings × minutes, not with messages."""
    query = (
        select(
            MailingTimeline.at,
            func.sum(MailingTimeline.sent),
            func.sum(MailingTimeline.failed),
        )
        .where(MailingTimeline.at >= first, MailingTimeline.at <= last)
        .group_by(MailingTimeline.at)
    )
    if mailing_id is not None:
        query = query.where(MailingTimeline.mailing_id == mailing_id)
    else:
        mailing_ids = await _could_have_outcomes_since(session, first)
        if not mailing_ids:
            return {}
        query = query.where(MailingTimeline.mailing_id.in_(mailing_ids))
    rows = await session.execute(query)
    return {at: (int(sent or 0), int(failed or 0)) for at, sent, failed in rows}


async def outcome_minutes(
    session: AsyncSession, mailing_id: int
) -> tuple[datetime | None, datetime | None]:
    """The first and the last minute in which a message of the mailing was sent or failed."""
    row = (
        await session.execute(
            select(func.min(MailingTimeline.at), func.max(MailingTimeline.at)).where(
                MailingTimeline.mailing_id == mailing_id
            )
        )
    ).one()
    return row[0], row[1]
