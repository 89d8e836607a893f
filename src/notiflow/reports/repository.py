"""All SQL of the daily report: the day's statistics, and the claims of ``daily_reports``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from notiflow.models import DailyReport, Mailing, Message, MessageStatus, ReportStatus

# The outcomes a report counts, and the statuses whose last error is a delivery error (a
# cancelled message's last_error is why it was cancelled: an operator's decision).
OUTCOMES = (
    MessageStatus.sent.value,
    MessageStatus.failed.value,
    MessageStatus.expired.value,
    MessageStatus.cancelled.value,
)
NOT_DELIVERED = (MessageStatus.failed.value, MessageStatus.expired.value)
ENDED_AT_UPDATE = (*NOT_DELIVERED, MessageStatus.cancelled.value)


# --- the day's statistics ---------------------------------------------------------------------


async def mailings_of_day(session: AsyncSession, *, start: datetime, end: datetime) -> list[Any]:
    """The mailings that were under way (running or paused) at some instant of [start, end):
    started before the end and not finished before the start. Rows of id, text, status."""
    rows = await session.execute(
        select(Mailing.id, Mailing.text, Mailing.status)
        .where(
            Mailing.started_at.is_not(None),
            Mailing.started_at < end,
            or_(Mailing.finished_at.is_(None), Mailing.finished_at >= start),
        )
        .order_by(Mailing.id)
    )
    return list(rows)


def _ended_between(start: datetime, end: datetime) -> ColumnElement[bool]:
    """Messages that reached their final status in [start, end): a sent one when the provider
    accepted it (sent_at), another when it last changed (updated_at)."""
    return or_(
        and_(
            Message.status == MessageStatus.sent.value,
            Message.sent_at >= start,
            Message.sent_at < end,
        ),
        and_(
            Message.status.in_(ENDED_AT_UPDATE),
            Message.updated_at >= start,
            Message.updated_at < end,
        ),
    )


async def outcomes(
    session: AsyncSession, mailing_ids: Sequence[int], *, start: datetime, end: datetime
) -> dict[int, dict[str, int]]:
    """Per mailing, its messages that ended in [start, end), by final status."""
    counts: dict[int, dict[str, int]] = {m: dict.fromkeys(OUTCOMES, 0) for m in mailing_ids}
    if not mailing_ids:
        return counts
    rows = await session.execute(
        select(Message.mailing_id, Message.status, func.count())
        .where(Message.mailing_id.in_(list(mailing_ids)), _ended_between(start, end))
        .group_by(Message.mailing_id, Message.status)
    )
    for mailing_id, status, count in rows:
        counts[mailing_id][status] = int(count)
    return counts


def _errors_between(start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(
        Message.status.in_(NOT_DELIVERED),
        Message.updated_at >= start,
        Message.updated_at < end,
        Message.last_error.is_not(None),
    )


async def top_errors(
    session: AsyncSession,
    mailing_ids: Sequence[int],
    *,
    start: datetime,
    end: datetime,
    limit: int = 5,
) -> dict[int, list[tuple[str, int]]]:
    """Per mailing, the last errors of its messages that failed or expired in [start, end),
    grouped by text, most frequent first (ties by text), at most ``limit`` each."""
    found: dict[int, list[tuple[str, int]]] = defaultdict(list)
    if not mailing_ids:
        return found
    count = func.count()
    ranked = (
        select(
            Message.mailing_id,
            Message.last_error.label("error"),
            count.label("count"),
            func.row_number()
            .over(partition_by=Message.mailing_id, order_by=(count.desc(), Message.last_error))
            .label("rank"),
        )
        .where(Message.mailing_id.in_(list(mailing_ids)), _errors_between(start, end))
        .group_by(Message.mailing_id, Message.last_error)
        .subquery()
    )
    rows = await session.execute(
        select(ranked.c.mailing_id, ranked.c.error, ranked.c.count)
        .where(ranked.c.rank <= limit)
        .order_by(ranked.c.mailing_id, ranked.c.rank)
    )
    for mailing_id, error, n in rows:
        found[mailing_id].append((error, int(n)))
    return found


async def top_errors_overall(
    session: AsyncSession,
    mailing_ids: Sequence[int],
    *,
    start: datetime,
    end: datetime,
    limit: int = 5,
) -> list[tuple[str, int]]:
    """The same over all these mailings together."""
    if not mailing_ids:
        return []
    count = func.count()
    rows = await session.execute(
        select(Message.last_error, count)
        .where(Message.mailing_id.in_(list(mailing_ids)), _errors_between(start, end))
        .group_by(Message.last_error)
        .order_by(count.desc(), Message.last_error)
        .limit(limit)
    )
    return [(str(error), int(n)) for error, n in rows]


# --- daily_reports: one row per day, claimed by the engine that sends it ----------------------


def _insert(session: AsyncSession) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def _claimable(now: datetime, stale_before: datetime) -> ColumnElement[bool]:
    """A row another claimer may take: its next attempt is due, or its claimer died."""
    return or_(
        and_(
            DailyReport.status == ReportStatus.retrying.value,
            DailyReport.next_attempt_at <= now,
        ),
        and_(
            DailyReport.status == ReportStatus.sending.value,
            DailyReport.claimed_at < stale_before,
        ),
    )


async def get(session: AsyncSession, day: date) -> DailyReport | None:
    return await session.get(DailyReport, day)


async def claim(
    session: AsyncSession,
    *,
    day: date,
    worker: str,
    now: datetime,
    stale_before: datetime,
    by_hand: bool = False,
    force: bool = False,
) -> int | None:
    """Claim the report of ``day`` for an attempt; return the attempt's number, or None when
    somebody else holds it or it is done.

    The first claim makes the row (``INSERT … ON CONFLICT DO NOTHING``: of claimers racing,
    exactly one inserts); later ones take it over only when it is claimable. ``by_hand`` may
    also take a skipped day, or one waiting for its next attempt; ``force`` takes it whatever
    its state (to send it again).
    """
    inserted = await session.scalar(
        _insert(session)(DailyReport)
        .values(
            report_date=day,
            status=ReportStatus.sending.value,
            claimed_by=worker,
            claimed_at=now,
            attempts=1,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=[DailyReport.report_date])
        .returning(DailyReport.attempts)
    )
    if inserted is not None:
        return int(inserted)
    conditions: list[ColumnElement[bool]] = [DailyReport.report_date == day]
    if by_hand and not force:  # by hand: now, whenever its next attempt would be
        conditions.append(
            or_(
                _claimable(now, stale_before),
                DailyReport.status.in_((ReportStatus.retrying.value, ReportStatus.skipped.value)),
            )
        )
    elif not force:
        conditions.append(_claimable(now, stale_before))
    attempts = await session.scalar(
        update(DailyReport)
        .where(*conditions)
        .values(
            status=ReportStatus.sending.value,
            claimed_by=worker,
            claimed_at=now,
            attempts=DailyReport.attempts + 1,
            next_attempt_at=None,
        )
        .returning(DailyReport.attempts)
        .execution_options(synchronize_session=False)
    )
    return None if attempts is None else int(attempts)


async def mark_sent(session: AsyncSession, *, day: date, now: datetime, message_id: str) -> None:
    """The SMTP server accepted the report of ``day``."""
    await session.execute(
        update(DailyReport)
        .where(DailyReport.report_date == day)
        .values(
            status=ReportStatus.sent.value,
            sent_at=now,
            message_id=message_id[:200],
            next_attempt_at=None,
        )
        .execution_options(synchronize_session=False)
    )


async def mark_failed(
    session: AsyncSession, *, day: date, worker: str, error: str, retry_at: datetime
) -> bool:
    """``worker``'s attempt failed: the next one is due at ``retry_at`` (a report sent before,
    and claimed again to be sent once more, stays sent). False if the claim was lost."""
    was_sent = DailyReport.sent_at.is_not(None)
    result = await session.execute(
        update(DailyReport)
        .where(
            DailyReport.report_date == day,
            DailyReport.status == ReportStatus.sending.value,
            DailyReport.claimed_by == worker,
        )
        .values(
            status=case((was_sent, ReportStatus.sent.value), else_=ReportStatus.retrying.value),
            next_attempt_at=case((was_sent, None), else_=retry_at),
            last_error=error[:500],
        )
        .returning(DailyReport.report_date)
        .execution_options(synchronize_session=False)
    )
    return result.first() is not None


async def skip(
    session: AsyncSession, *, day: date, worker: str, now: datetime, stale_before: datetime
) -> bool:
    """Mark the report of ``day`` skipped, unless it was sent or is being sent now; return
    whether this call did (so that one claimer only says so)."""
    inserted = await session.scalar(
        _insert(session)(DailyReport)
        .values(
            report_date=day,
            status=ReportStatus.skipped.value,
            claimed_by=worker,
            claimed_at=now,
            attempts=0,
            skipped_at=now,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=[DailyReport.report_date])
        .returning(DailyReport.report_date)
    )
    if inserted is not None:
        return True
    # Waiting for its next attempt (due or not), or its claimer dead: not being sent now.
    not_under_way = or_(
        DailyReport.status == ReportStatus.retrying.value,
        and_(
            DailyReport.status == ReportStatus.sending.value,
            DailyReport.claimed_at < stale_before,
        ),
    )
    result = await session.execute(
        update(DailyReport)
        .where(DailyReport.report_date == day, not_under_way)
        .values(
            status=ReportStatus.skipped.value,
            claimed_by=worker,
            claimed_at=now,
            skipped_at=now,
            next_attempt_at=None,
        )
        .returning(DailyReport.report_date)
        .execution_options(synchronize_session=False)
    )
    return result.first() is not None
