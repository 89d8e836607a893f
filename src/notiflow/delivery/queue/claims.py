"""The sender's SQL: running mailings, claims, write-backs and leases.

A claim turns due ``pending`` messages into ``sending`` ones held by one worker until a lease
expires; the worker renews the leases of what it still holds, writes outcomes back only for
messages that are still its own, and gives back what it will not send. Every function keeps the
mailing counters in step, in the caller's transaction. Dialect-specific SQL (``FOR UPDATE SKIP
LOCKED``, ``unnest`` on PostgreSQL) sits behind one check per function; SQLite has a single
claimer, so it needs no row locks.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Table, any_, bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from notiflow import counters
from notiflow.db.locks import lock_in_id_order
from notiflow.db.types import UTCDateTime
from notiflow.delivery.records import ActiveMailing, Claimed, Done
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


# --- claims and leases -----------------------------------------------------------------------


def _claim_statement(*, skip_locked: bool) -> Any:
    """Built once: the claim is the hottest statement, and Core on the table skips the ORM."""
    table = MESSAGES
    picked = (
        select(table.c.id)
        .where(
            table.c.mailing_id == bindparam("p_mailing"),
            table.c.status == PENDING,
            table.c.next_attempt_at <= bindparam("p_now", type_=UTCDateTime()),
        )
        .order_by(table.c.next_attempt_at)
        .limit(bindparam("p_limit"))
    )
    if skip_locked:
        picked = picked.with_for_update(skip_locked=True)
    return (
        update(table)
        .where(table.c.id.in_(picked.scalar_subquery()))
        .values(
            status=SENDING,
            claimed_by=bindparam("p_worker"),
            lease_expires_at=bindparam("p_lease", type_=UTCDateTime()),
            updated_at=bindparam("p_now", type_=UTCDateTime()),
        )
        .returning(table.c.id, table.c.client_id, table.c.attempts)
    )


def _claim_with_contacts() -> Any:
    """PostgreSQL: the claim and the phone and time zone of each client, in one statement."""
    claimed = _claim_statement(skip_locked=True).cte("claimed")
    return select(
        claimed.c.id, claimed.c.client_id, claimed.c.attempts, CLIENTS.c.phone, CLIENTS.c.timezone
    ).select_from(claimed.outerjoin(CLIENTS, CLIENTS.c.id == claimed.c.client_id))


_CLAIM_PG = _claim_with_contacts()
_CLAIM_SQLITE = _claim_statement(skip_locked=False)


async def claim(
    session: AsyncSession,
    *,
    mailing_id: int,
    worker: str,
    now: datetime,
    lease_until: datetime,
    limit: int,
) -> tuple[ActiveMailing | None, list[Claimed]]:
    """Take up to ``limit`` due pending messages of a mailing for this worker.

    On PostgreSQL the rows are picked with ``FOR UPDATE SKIP LOCKED``, so any number of workers
    claim disjoint sets without waiting for each other.
    """
    pg = _is_pg(session)
    connection = await session.connection()
    result = await connection.execute(
        _CLAIM_PG if pg else _CLAIM_SQLITE,
        {
            "p_mailing": mailing_id,
            "p_now": now,
            "p_limit": limit,
            "p_worker": worker,
            "p_lease": lease_until,
        },
    )
    rows = result.all()
    if not rows:
        return None, []
    # The mailing as it is now, read after the claim: an edit of its window or end_time that
    # committed before this claim is always seen by it.
    mailing = await active_mailing(session, mailing_id)
    if pg:
        contacts = {row[1]: (row[3], row[4]) for row in rows if row[3] is not None}
    else:
        contacts = await _contacts(connection, [row[1] for row in rows if row[1] is not None])
    # The counters last: their row lock is held only until the commit that follows.
    delta = counters.CounterDelta()
    delta.move(PENDING, SENDING, len(rows))
    await counters.apply(session, mailing_id, delta)
    claimed: list[Claimed] = []
    for row in rows:
        phone, zone = contacts.get(row[1], (None, None))
        claimed.append(Claimed(row[0], mailing_id, row[1], row[2], phone, zone))
    return mailing, claimed


async def _contacts(connection: Any, client_ids: list[int]) -> dict[int, tuple[str, str]]:
    if not client_ids:
        return {}
    found = await connection.execute(
        select(CLIENTS.c.id, CLIENTS.c.phone, CLIENTS.c.timezone).where(
            CLIENTS.c.id.in_(client_ids)
        )
    )
    return {cid: (phone, zone) for cid, phone, zone in found}


_PG_WRITE_BACK = text(
    """
    UPDATE messages AS m SET
        status = v.status,
        attempts = v.attempts,
        next_attempt_at = v.next_attempt_at,
        sent_at = v.sent_at,
        last_error = COALESCE(v.last_error, m.last_error),
        claimed_by = NULL,
        lease_expires_at = NULL,
        updated_at = :now
    FROM unnest(
        CAST(:ids AS bigint[]), CAST(:statuses AS text[]), CAST(:attempts AS int[]),
        CAST(:next AS timestamptz[]), CAST(:sent AS timestamptz[]), CAST(:errors AS text[])
    ) AS v (id, status, attempts, next_attempt_at, sent_at, last_error)
    WHERE m.id = v.id AND m.status = 'sending' AND m.claimed_by = :worker
    RETURNING m.id
    """
).bindparams(bindparam("now", type_=UTCDateTime()))


_SQLITE_SIZES = (1, 8, 64)
_SQLITE_CHUNK = _SQLITE_SIZES[-1]


@functools.cache
def _sqlite_write_back(count: int) -> Any:
    rows = ", ".join(f"(:i{n}, :s{n}, :a{n}, :n{n}, :t{n}, :e{n})" for n in range(count))
    statement = text(
        f"""
        WITH v (id, status, attempts, next_attempt_at, sent_at, last_error) AS (VALUES {rows})
        UPDATE messages SET
            status = v.status,
            attempts = v.attempts,
            next_attempt_at = v.next_attempt_at,
            sent_at = v.sent_at,
            last_error = COALESCE(v.last_error, messages.last_error),
            claimed_by = NULL,
            lease_expires_at = NULL,
            updated_at = :now
        FROM v
        WHERE messages.id = v.id AND messages.status = 'sending' AND messages.claimed_by = :worker
        RETURNING messages.id
        """  # only placeholders are formatted in
    )
    typed = [bindparam("now", type_=UTCDateTime())]
    for n in range(count):
        typed += [bindparam(f"n{n}", type_=UTCDateTime()), bindparam(f"t{n}", type_=UTCDateTime())]
    return statement.bindparams(*typed)


async def write_back(
    session: AsyncSession, *, worker: str, results: Sequence[Done], now: datetime
) -> int:
    """Store the outcomes of claimed messages; return how many still belonged to this worker.

    A message cancelled, deleted or reclaimed meanwhile is left as it is.
    """
    if not results:
        return 0
    # Every message of the batch, late-sent ones included, locked lowest id first.
    if _is_pg(session):
        ids = bindparam("ids", [r.id for r in results], type_=ARRAY(BigInteger))
        await lock_in_id_order(session, Message.id, Message.id == any_(ids))
    if _is_pg(session):
        result = await session.execute(
            _PG_WRITE_BACK,
            {
                "now": now,
                "worker": worker,
                "ids": [r.id for r in results],
                "statuses": [r.status.value for r in results],
                "attempts": [r.attempts for r in results],
                "next": [r.next_attempt_at for r in results],
                "sent": [r.sent_at for r in results],
                "errors": [r.last_error for r in results],
            },
        )
        stored = set(result.scalars())
    else:
        stored = set()
        for start in range(0, len(results), _SQLITE_CHUNK):
            chunk = list(results[start : start + _SQLITE_CHUNK])
            # A few statement sizes only: padding repeats the last row (the same update twice).
            size = next(size for size in _SQLITE_SIZES if size >= len(chunk))
            chunk += [chunk[-1]] * (size - len(chunk))
            params: dict[str, Any] = {"now": now, "worker": worker}
            for n, r in enumerate(chunk):
                params.update(
                    {
                        f"i{n}": r.id,
                        f"s{n}": r.status.value,
                        f"a{n}": r.attempts,
                        f"n{n}": r.next_attempt_at,
                        f"t{n}": r.sent_at,
                        f"e{n}": r.last_error,
                    }
                )
            result = await session.execute(_sqlite_write_back(size), params)
            stored.update(result.scalars())
    late_sent = await _record_late_sends(session, worker, results, stored, now)
    deltas: dict[int, counters.CounterDelta] = defaultdict(counters.CounterDelta)
    for r in results:
        if r.id in late_sent:
            old = MessageStatus.cancelled.value
        elif r.id in stored:
            old = SENDING
        else:
            continue
        delta = deltas[r.mailing_id]
        delta.move(old, r.status.value)
        if r.attempted:
            delta.attempts += 1
            if r.attempts == 2:
                delta.retried_messages += 1
            if r.error_kind is not None:
                delta.error(r.error_kind)
        if r.status is MessageStatus.sent and r.sent_at is not None:
            delta.sent_at(r.sent_at)
            delta.finished(r.sent_at, sent=True)
        elif r.status is MessageStatus.failed:
            delta.finished(now, sent=False)
    for mailing_id in sorted(deltas):
        await counters.apply(session, mailing_id, deltas[mailing_id])
    return len(stored) + len(late_sent)


async def _record_late_sends(
    session: AsyncSession, worker: str, results: Sequence[Done], stored: set[int], now: datetime
) -> set[int]:
    """A message cancelled while its request was already on its way, and that the provider
    accepted, was sent: record the truth rather than ``cancelled``."""
    late = {r.id: r for r in results if r.status is MessageStatus.sent and r.id not in stored}
    if not late:
        return set()
    sent_at = min(r.sent_at or now for r in late.values())
    result = await session.execute(
        update(Message)
        .where(
            Message.id.in_(list(late)),
            Message.status == MessageStatus.cancelled.value,
            Message.claimed_by == worker,
        )
        .values(
            status=MessageStatus.sent.value,
            sent_at=sent_at,
            attempts=Message.attempts + 1,
            claimed_by=None,
            lease_expires_at=None,
            updated_at=now,
        )
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    )
    return set(result.scalars())


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


async def renew_leases(session: AsyncSession, *, worker: str, until: datetime) -> int:
    """Extend the lease of every message this worker still holds (its heartbeat)."""
    held = (Message.status == SENDING, Message.claimed_by == worker)
    await lock_in_id_order(session, Message.id, *held)
    result = await session.execute(
        update(Message)
        .where(*held)
        .values(lease_expires_at=until)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


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
