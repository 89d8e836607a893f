"""The sender's SQL: running mailings, claims and leases (write-backs are in ``outcomes``).

A claim turns due ``pending`` messages into ``sending`` ones held by one worker until a lease
expires; the worker renews the leases of what it still holds, and other workers take back what a
dead one held. Every function keeps the mailing counters in step, in the caller's transaction.
Dialect-specific SQL (``FOR UPDATE SKIP LOCKED`` on PostgreSQL) sits behind one check per
function; SQLite has a single claimer, so it needs no row locks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from notiflow import counters
from notiflow.core.clock import as_utc
from notiflow.db.locks import lock_in_id_order
from notiflow.db.types import UTCDateTime
from notiflow.delivery.records import ActiveMailing, Claimed, Timing
from notiflow.models import Client, Mailing, MailingStatus, Message, MessageStatus

MESSAGES: Table = Message.__table__  # type: ignore[assignment]
CLIENTS: Table = Client.__table__  # type: ignore[assignment]
PENDING = MessageStatus.pending.value
SENDING = MessageStatus.sending.value


def _is_pg(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# --- running mailings ------------------------------------------------------------------------


_ACTIVE_COLUMNS = (
    Mailing.id,
    Mailing.text,
    Mailing.end_time,
    Mailing.window_start,
    Mailing.window_end,
)


async def active_mailing(session: AsyncSession, mailing_id: int) -> ActiveMailing | None:
    row = (
        await session.execute(
            select(*_ACTIVE_COLUMNS).where(
                Mailing.id == mailing_id, Mailing.status == MailingStatus.running.value
            )
        )
    ).first()
    return ActiveMailing(*row) if row is not None else None


async def active_mailings(session: AsyncSession) -> list[ActiveMailing]:
    rows = await session.execute(
        select(*_ACTIVE_COLUMNS)
        .where(Mailing.status == MailingStatus.running.value, Mailing.materialized_at.is_not(None))
        .order_by(Mailing.id)
    )
    return [ActiveMailing(*row) for row in rows]


async def ended_mailings(session: AsyncSession, mailing_ids: set[int]) -> set[int]:
    """Which of these mailings were cancelled, deleted or completed (their requests in flight
    are stopped; a paused one's finish)."""
    rows = await session.execute(
        select(Mailing.id, Mailing.status).where(Mailing.id.in_(sorted(mailing_ids)))
    )
    alive = {
        mailing_id
        for mailing_id, status in rows
        if status in (MailingStatus.running.value, MailingStatus.paused.value)
    }
    return set(mailing_ids) - alive


# --- claims and leases -----------------------------------------------------------------------


_PG_CLAIM = text(
    """
    WITH picked AS (
        SELECT id FROM messages
        WHERE mailing_id = :mailing AND status = 'pending' AND next_attempt_at <= :now
        ORDER BY next_attempt_at LIMIT :limit FOR UPDATE SKIP LOCKED
    ),
    claimed AS (
        UPDATE messages AS m SET
            status = 'sending', claimed_by = :worker, lease_expires_at = :lease, updated_at = :now
        FROM picked WHERE m.id = picked.id
        RETURNING m.id, m.client_id, m.attempts
    ),
    counted AS (
        UPDATE mailing_stats AS s SET pending = s.pending - n.c, sending = s.sending + n.c
        FROM (SELECT count(*) AS c FROM claimed) AS n
        WHERE s.mailing_id = :mailing AND n.c > 0
    )
    SELECT c.id, c.client_id, c.attempts, cl.phone, cl.timezone,
           mm.end_time, mm.window_start, mm.window_end, cl.opted_out_at IS NOT NULL
    FROM claimed AS c
    LEFT JOIN clients AS cl ON cl.id = c.client_id
    LEFT JOIN (
        SELECT end_time, window_start, window_end FROM mailings
        WHERE id = :mailing AND status = 'running'
    ) AS mm ON true
    """
).bindparams(
    bindparam("now", type_=UTCDateTime()),
    bindparam("lease", type_=UTCDateTime()),
)


def _sqlite_claim_statement() -> Any:
    """Built once: the claim is the hottest statement, and Core on the table skips the ORM."""
    table = MESSAGES
    picked = (
        select(table.c.id)
        .where(
            table.c.mailing_id == bindparam("mailing"),
            table.c.status == PENDING,
            table.c.next_attempt_at <= bindparam("now", type_=UTCDateTime()),
        )
        .order_by(table.c.next_attempt_at)
        .limit(bindparam("limit"))
    )
    return (
        update(table)
        .where(table.c.id.in_(picked.scalar_subquery()))
        .values(
            status=SENDING,
            claimed_by=bindparam("worker"),
            lease_expires_at=bindparam("lease", type_=UTCDateTime()),
            updated_at=bindparam("now", type_=UTCDateTime()),
        )
        .returning(table.c.id, table.c.client_id, table.c.attempts)
    )


_SQLITE_CLAIM = _sqlite_claim_statement()


async def claim(
    session: AsyncSession,
    *,
    mailing_id: int,
    worker: str,
    now: datetime,
    lease_until: datetime,
    limit: int,
) -> tuple[Timing | None, list[Claimed]]:
    """Take up to ``limit`` due pending messages of a mailing for this worker; return them with
    the mailing's timing as it is now (None if it no longer runs): an edit of its window or
    end_time that committed before the claim is always seen by it.

    On PostgreSQL this is one statement (run it in a ``db.session.Lane``), and the rows
    are picked with ``FOR UPDATE SKIP LOCKED``, so any number of workers claim disjoint sets
    without waiting for each other.
    """
    params = {"mailing": mailing_id, "now": now, "limit": limit, "worker": worker}
    params["lease"] = lease_until
    connection = await session.connection()
    if _is_pg(session):
        rows = (await connection.execute(_PG_CLAIM, params)).all()
        if not rows:
            return None, []
        first = rows[0]
        timing = Timing(as_utc(first[5]), first[6], first[7]) if first[5] is not None else None
        return timing, [
            Claimed(row[0], mailing_id, row[1], row[2], row[3], row[4], opted_out=row[8])
            for row in rows
        ]
    rows = (await connection.execute(_SQLITE_CLAIM, params)).all()
    if not rows:
        return None, []
    mailing = await active_mailing(session, mailing_id)
    contacts = await _contacts(connection, [row[1] for row in rows if row[1] is not None])
    # The counters last: their row lock is held only until the commit that follows.
    delta = counters.CounterDelta()
    delta.move(PENDING, SENDING, len(rows))
    await counters.apply(session, mailing_id, delta)
    claimed = []
    for row in rows:
        phone, zone, opted_out = contacts.get(row[1], (None, None, False))
        claimed.append(Claimed(row[0], mailing_id, row[1], row[2], phone, zone, opted_out))
    timing = None
    if mailing is not None:
        timing = Timing(mailing.end_time, mailing.window_start, mailing.window_end)
    return timing, claimed


async def _contacts(connection: Any, client_ids: list[int]) -> dict[int, tuple[str, str, bool]]:
    if not client_ids:
        return {}
    found = await connection.execute(
        select(CLIENTS.c.id, CLIENTS.c.phone, CLIENTS.c.timezone, CLIENTS.c.opted_out_at).where(
            CLIENTS.c.id.in_(client_ids)
        )
    )
    return {cid: (phone, zone, opted is not None) for cid, phone, zone, opted in found}


async def back_to_pending(session: AsyncSession, condition: Any, *, now: datetime) -> int:
    await lock_in_id_order(session, Message.id, Message.status == SENDING, condition)
    result = await session.execute(
        update(Message)
        .where(Message.status == SENDING, condition)
        .values(
            status=PENDING,
            claimed_by=None,
            lease_expires_at=None,
            next_attempt_at=now,
            updated_at=now,
        )
        .returning(Message.mailing_id)
        .execution_options(synchronize_session=False)
    )
    per_mailing: dict[int, int] = defaultdict(int)
    for mailing_id in result.scalars():
        per_mailing[mailing_id] += 1
    for mailing_id in sorted(per_mailing):
        delta = counters.CounterDelta()
        delta.move(SENDING, PENDING, per_mailing[mailing_id])
        await counters.apply(session, mailing_id, delta)
    return sum(per_mailing.values())


async def renew_leases(session: AsyncSession, *, worker: str, until: datetime) -> set[int]:
    """Extend the lease of every message this worker still holds (its heartbeat); return their
    ids (a message another worker took back is not among them)."""
    held = (Message.status == SENDING, Message.claimed_by == worker)
    await lock_in_id_order(session, Message.id, *held)
    result = await session.execute(
        update(Message)
        .where(*held)
        .values(lease_expires_at=until)
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    )
    return set(result.scalars())


async def reclaim_expired_leases(session: AsyncSession, now: datetime) -> int:
    """Messages held by a worker that died go back to the queue."""
    return await back_to_pending(session, Message.lease_expires_at < now, now=now)


async def next_lease_expiry(session: AsyncSession) -> datetime | None:
    return await session.scalar(
        select(func.min(Message.lease_expires_at)).where(Message.status == SENDING)
    )


async def next_due(session: AsyncSession, mailing_ids: Sequence[int]) -> datetime | None:
    """The earliest next_attempt_at of pending messages of these mailings (index per mailing)."""
    earliest: datetime | None = None
    for mailing_id in mailing_ids:
        value = await session.scalar(
            select(func.min(Message.next_attempt_at)).where(
                Message.mailing_id == mailing_id, Message.status == PENDING
            )
        )
        if value is not None and (earliest is None or value < earliest):
            earliest = value
    return earliest
