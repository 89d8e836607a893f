"""The scheduler's SQL: start mailings on time, write their audiences, expire what passed its
end time, complete what is finished.

Every function keeps the mailing counters in step, in the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from notiflow import counters
from notiflow.clients.repository import audience_condition
from notiflow.db.types import UTCDateTime
from notiflow.metrics import count_outcome
from notiflow.models import Client, Mailing, MailingStats, MailingStatus, Message, MessageStatus
from notiflow.webhooks import events as webhook_events

PENDING = MessageStatus.pending.value
# Mailings between start and finish: a paused one still has its audience written, its unsent
# messages expired at its end_time, and is completed then.
UNDER_WAY = (MailingStatus.running.value, MailingStatus.paused.value)


def _is_pg(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


async def start_due(session: AsyncSession, now: datetime) -> tuple[list[int], list[int]]:
    """Scheduled mailings whose start time has come become running; those whose whole interval
    passed unstarted, completed. Return the ids of both."""
    result = await session.execute(
        update(Mailing)
        .where(
            Mailing.status == MailingStatus.scheduled.value,
            Mailing.start_time <= now,
            Mailing.end_time > now,
        )
        .values(status=MailingStatus.running.value, started_at=now, updated_at=now)
        .returning(Mailing.id)
        .execution_options(synchronize_session=False)
    )
    started = list(result.scalars())
    await webhook_events.emit_mailings(session, webhook_events.MAILING_STARTED, started, now=now)
    # Scheduled mailings whose whole interval passed while no engine ran: nothing to send.
    missed = await session.execute(
        update(Mailing)
        .where(Mailing.status == MailingStatus.scheduled.value, Mailing.end_time <= now)
        .values(
            status=MailingStatus.completed.value,
            materialized_at=now,
            finished_at=now,
            updated_at=now,
        )
        .returning(Mailing.id)
        .execution_options(synchronize_session=False)
    )
    completed = list(missed.scalars())
    await webhook_events.emit_mailings(
        session, webhook_events.MAILING_COMPLETED, completed, now=now
    )
    return started, completed


async def unmaterialised(session: AsyncSession) -> list[int]:
    rows = await session.scalars(
        select(Mailing.id)
        .where(Mailing.status.in_(UNDER_WAY), Mailing.materialized_at.is_(None))
        .order_by(Mailing.id)
    )
    return list(rows)


async def materialise(session: AsyncSession, mailing_id: int, now: datetime) -> int | None:
    """Write the audience of a running mailing as pending messages, in one statement.

    Idempotent: the unique (mailing, client) pair makes a repeat insert nothing. Returns the
    number of messages written, or None when another worker holds or has done it.
    """
    query = select(Mailing).where(
        Mailing.id == mailing_id,
        Mailing.status.in_(UNDER_WAY),
        Mailing.materialized_at.is_(None),
    )
    if _is_pg(session):
        query = query.with_for_update(skip_locked=True)
    mailing = await session.scalar(query)
    if mailing is None:
        return None
    audience = select(
        literal(mailing.id),
        Client.id,
        literal(PENDING, String()),
        literal(0),
        literal(now, UTCDateTime()),
        literal(now, UTCDateTime()),
        literal(now, UTCDateTime()),
    ).where(
        audience_condition(mailing.operator_codes, mailing.tags),
        Client.opted_out_at.is_(None),
    )
    dialect_insert = pg_insert if _is_pg(session) else sqlite_insert
    statement = (
        dialect_insert(Message)
        .from_select(
            [
                "mailing_id",
                "client_id",
                "status",
                "attempts",
                "next_attempt_at",
                "created_at",
                "updated_at",
            ],
            audience,
        )
        .on_conflict_do_nothing(index_elements=["mailing_id", "client_id"])
    )
    result = await session.execute(statement)
    written = int(result.rowcount or 0)  # type: ignore[attr-defined]
    delta = counters.CounterDelta()
    if written:
        delta.move(None, PENDING, written)
    await counters.apply(session, mailing.id, delta)
    mailing.materialized_at = now
    await session.flush()
    return written


async def expire_ended(session: AsyncSession, now: datetime) -> dict[int, int]:
    """Pending messages of running mailings whose end_time has passed become expired; return
    how many, by mailing."""
    ended = list(
        await session.scalars(
            select(Mailing.id).where(Mailing.status.in_(UNDER_WAY), Mailing.end_time <= now)
        )
    )
    expired: dict[int, int] = {}
    for mailing_id in ended:
        result = await session.execute(
            update(Message)
            .where(Message.mailing_id == mailing_id, Message.status == PENDING)
            .values(
                status=MessageStatus.expired.value,
                next_attempt_at=None,
                last_error=func.coalesce(Message.last_error, "end_time passed before sending"),
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        changed = int(result.rowcount or 0)  # type: ignore[attr-defined]
        if changed:
            delta = counters.CounterDelta()
            delta.move(PENDING, MessageStatus.expired.value, changed)
            await counters.apply(session, mailing_id, delta)
            expired[mailing_id] = changed
    count_outcome(session, "expired", sum(expired.values()))
    return expired


async def complete_finished(session: AsyncSession, now: datetime) -> list[int]:
    """Running mailings with every message final become completed; return the ids of those
    this transaction completed."""
    done = list(
        await session.scalars(
            select(Mailing.id)
            .join(MailingStats, MailingStats.mailing_id == Mailing.id)
            .where(
                Mailing.status.in_(UNDER_WAY),
                Mailing.materialized_at.is_not(None),
                MailingStats.pending == 0,
                MailingStats.sending == 0,
            )
        )
    )
    if done and _is_pg(session):
        # Lock them, then read their counters again in a statement of its own: a retry-failed
        # that committed meanwhile (it holds the same lock while it makes messages pending
        # again) is then seen, and its mailing is not completed with messages still to send.
        await session.execute(
            select(Mailing.id)
            .where(Mailing.id.in_(done))
            .order_by(Mailing.id)
            .with_for_update(key_share=True)
        )
        done = list(
            await session.scalars(
                select(MailingStats.mailing_id).where(
                    MailingStats.mailing_id.in_(done),
                    MailingStats.pending == 0,
                    MailingStats.sending == 0,
                )
            )
        )
    if done:
        completed = await session.execute(
            update(Mailing)
            .where(Mailing.id.in_(done), Mailing.status.in_(UNDER_WAY))
            .values(status=MailingStatus.completed.value, finished_at=now, updated_at=now)
            .returning(Mailing.id)  # those this transaction completed: told of exactly once
            .execution_options(synchronize_session=False)
        )
        done = list(completed.scalars())
        await webhook_events.emit_mailings(session, webhook_events.MAILING_COMPLETED, done, now=now)
    return done


async def next_start(session: AsyncSession) -> datetime | None:
    return await session.scalar(
        select(func.min(Mailing.start_time)).where(Mailing.status == MailingStatus.scheduled.value)
    )


async def next_end(session: AsyncSession) -> datetime | None:
    return await session.scalar(
        select(func.min(Mailing.end_time)).where(Mailing.status.in_(UNDER_WAY))
    )


async def reschedule_pending(session: AsyncSession, mailing_id: int, now: datetime) -> None:
    """Make a mailing's pending messages due now (after its send window changed)."""
    await session.execute(
        update(Message)
        .where(
            Message.mailing_id == mailing_id,
            Message.status == PENDING,
            or_(Message.next_attempt_at > now, Message.next_attempt_at.is_(None)),
        )
        .values(next_attempt_at=now)
        .execution_options(synchronize_session=False)
    )
