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

from sqlalchemy import Table, bindparam, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from notiflow import counters
from notiflow.core.clock import as_utc
from notiflow.db.locks import lock_in_id_order
from notiflow.db.types import UTCDateTime
from notiflow.delivery.records import ActiveMailing, Claimed, Done, Timing
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
           mm.end_time, mm.window_start, mm.window_end
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
        return timing, [Claimed(row[0], mailing_id, row[1], row[2], row[3], row[4]) for row in rows]
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
        phone, zone = contacts.get(row[1], (None, None))
        claimed.append(Claimed(row[0], mailing_id, row[1], row[2], phone, zone))
    timing = None
    if mailing is not None:
        timing = Timing(mailing.end_time, mailing.window_start, mailing.window_end)
    return timing, claimed


async def _contacts(connection: Any, client_ids: list[int]) -> dict[int, tuple[str, str]]:
    if not client_ids:
        return {}
    found = await connection.execute(
        select(CLIENTS.c.id, CLIENTS.c.phone, CLIENTS.c.timezone).where(
            CLIENTS.c.id.in_(client_ids)
        )
    )
    return {cid: (phone, zone) for cid, phone, zone in found}


# PostgreSQL: a whole write-back in one statement, run on its own (autocommit): the messages of
# the batch locked lowest id first, the outcomes of those still this worker's stored (and the sent
# ones of those cancelled on the way recorded as sent), and the counters of their mailings moved
# by what each stored outcome contributes (computed in Python, by ``_contribution``). One round
# trip per batch: under load every await waits for a turn of a busy event loop.
_PG_WRITE_BACK = text(
    """
    WITH v AS (
        SELECT * FROM unnest(
            CAST(:ids AS bigint[]), CAST(:mailings AS bigint[]), CAST(:statuses AS text[]),
            CAST(:attempts AS int[]), CAST(:next AS timestamptz[]), CAST(:sent AS timestamptz[]),
            CAST(:errors AS text[]), CAST(:attempted AS int[]), CAST(:retried AS int[]),
            CAST(:kinds AS text[]), CAST(:minutes AS timestamptz[]), CAST(:sent_n AS int[]),
            CAST(:failed_n AS int[])
        ) AS v (id, mailing_id, status, attempts, next_attempt_at, sent_at, last_error,
                attempted, retried, kind, minute, sent_n, failed_n)
    ),
    locked AS MATERIALIZED (
        SELECT id FROM messages WHERE id = ANY(CAST(:ids AS bigint[])) ORDER BY id FOR UPDATE
    ),
    updated AS (
        UPDATE messages AS m SET
            status = v.status,
            attempts = v.attempts,
            next_attempt_at = v.next_attempt_at,
            sent_at = v.sent_at,
            last_error = COALESCE(v.last_error, m.last_error),
            claimed_by = NULL,
            lease_expires_at = NULL,
            updated_at = :now
        FROM v
        WHERE m.id = v.id AND m.id IN (SELECT id FROM locked)
          AND m.status = 'sending' AND m.claimed_by = :worker
        RETURNING m.id, 'sending' AS old
    ),
    late AS (
        UPDATE messages AS m SET
            status = 'sent',
            attempts = v.attempts,
            sent_at = v.sent_at,
            claimed_by = NULL,
            lease_expires_at = NULL,
            updated_at = :now
        FROM v
        WHERE m.id = v.id AND v.status = 'sent' AND m.id IN (SELECT id FROM locked)
          AND m.status = 'cancelled' AND m.claimed_by = :worker
        RETURNING m.id, 'cancelled' AS old
    ),
    stored AS (
        SELECT v.*, c.old
        FROM v JOIN (SELECT * FROM updated UNION ALL SELECT * FROM late) AS c ON c.id = v.id
    ),
    moved AS (
        SELECT mailing_id,
            count(*) FILTER (WHERE old = 'sending') AS from_sending,
            count(*) FILTER (WHERE old = 'cancelled') AS from_cancelled,
            count(*) FILTER (WHERE status = 'pending') AS to_pending,
            count(*) FILTER (WHERE status = 'sent') AS to_sent,
            count(*) FILTER (WHERE status = 'failed') AS to_failed,
            count(*) FILTER (WHERE status = 'expired') AS to_expired,
            count(*) FILTER (WHERE status = 'cancelled') AS to_cancelled,
            sum(attempted) AS attempted,
            sum(retried) AS retried,
            min(sent_at) FILTER (WHERE status = 'sent') AS first_sent,
            max(sent_at) FILTER (WHERE status = 'sent') AS last_sent
        FROM stored GROUP BY mailing_id
    ),
    counted AS (
        UPDATE mailing_stats AS s SET
            pending = s.pending + d.to_pending,
            sending = s.sending - d.from_sending,
            sent = s.sent + d.to_sent,
            failed = s.failed + d.to_failed,
            expired = s.expired + d.to_expired,
            cancelled = s.cancelled + d.to_cancelled - d.from_cancelled,
            attempts = s.attempts + d.attempted,
            retried_messages = s.retried_messages + d.retried,
            first_sent_at = LEAST(s.first_sent_at, d.first_sent),
            last_sent_at = GREATEST(s.last_sent_at, d.last_sent)
        FROM moved AS d WHERE s.mailing_id = d.mailing_id
    ),
    errors AS (
        INSERT INTO mailing_errors (mailing_id, error, count)
        SELECT mailing_id, kind, count(*) FROM stored WHERE kind IS NOT NULL
        GROUP BY mailing_id, kind ORDER BY mailing_id, kind
        ON CONFLICT (mailing_id, error) DO UPDATE SET count = mailing_errors.count + excluded.count
    ),
    timeline AS (
        INSERT INTO mailing_timeline (mailing_id, at, sent, failed)
        SELECT mailing_id, minute, sum(sent_n), sum(failed_n) FROM stored WHERE minute IS NOT NULL
        GROUP BY mailing_id, minute ORDER BY mailing_id, minute
        ON CONFLICT (mailing_id, at) DO UPDATE SET
            sent = mailing_timeline.sent + excluded.sent,
            failed = mailing_timeline.failed + excluded.failed
    )
    SELECT count(*) FROM stored
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


_Contribution = tuple[int, int, "str | None", "datetime | None", int, int]


def _contribution(r: Done, now: datetime) -> _Contribution:
    """What a stored outcome adds to its mailing's counters besides its status: whether it was an
    attempt, whether it made its message a retried one, the kind of error of a failed attempt,
    and the minute in which it ended sent or failed (with which of the two)."""
    attempted = r.attempted
    kind = r.error_kind[:100] if attempted and r.error_kind is not None else None
    if r.status is MessageStatus.sent and r.sent_at is not None:
        finished: tuple[datetime | None, int, int] = (_minute(r.sent_at), 1, 0)
    elif r.status is MessageStatus.failed:
        finished = (_minute(now), 0, 1)
    else:
        finished = (None, 0, 0)
    return (int(attempted), int(attempted and r.attempts == 2), kind, *finished)


def _minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


async def write_back(
    session: AsyncSession, *, worker: str, results: Sequence[Done], now: datetime
) -> int:
    """Store the outcomes of claimed messages; return how many still belonged to this worker.

    A message cancelled, deleted or reclaimed meanwhile is left as it is — except one whose
    request was already on its way when it was cancelled and that the provider accepted: that one
    was sent, and is recorded so.
    """
    if not results:
        return 0
    unique = list({r.id: r for r in results}.values())
    if _is_pg(session):
        unique.sort(key=lambda r: r.id)
        parts = [_contribution(r, now) for r in unique]
        result = await session.execute(
            _PG_WRITE_BACK,
            {
                "now": now,
                "worker": worker,
                "ids": [r.id for r in unique],
                "mailings": [r.mailing_id for r in unique],
                "statuses": [r.status.value for r in unique],
                "attempts": [r.attempts for r in unique],
                "next": [r.next_attempt_at for r in unique],
                "sent": [r.sent_at for r in unique],
                "errors": [r.last_error for r in unique],
                "attempted": [p[0] for p in parts],
                "retried": [p[1] for p in parts],
                "kinds": [p[2] for p in parts],
                "minutes": [p[3] for p in parts],
                "sent_n": [p[4] for p in parts],
                "failed_n": [p[5] for p in parts],
            },
        )
        return int(result.scalar_one())
    stored: set[int] = set()
    for start in range(0, len(unique), _SQLITE_CHUNK):
        chunk = unique[start : start + _SQLITE_CHUNK]
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
    late_sent = await _record_late_sends(session, worker, unique, stored, now)
    deltas: dict[int, counters.CounterDelta] = defaultdict(counters.CounterDelta)
    for r in unique:
        if r.id in late_sent:
            old = MessageStatus.cancelled.value
        elif r.id in stored:
            old = SENDING
        else:
            continue
        delta = deltas[r.mailing_id]
        delta.move(old, r.status.value)
        attempted, retried, kind, minute, sent_n, failed_n = _contribution(r, now)
        delta.attempts += attempted
        delta.retried_messages += retried
        if kind is not None:
            delta.error(kind)
        if r.status is MessageStatus.sent and r.sent_at is not None:
            delta.sent_at(r.sent_at)
        if minute is not None:
            delta.count_finished(minute, sent=sent_n, failed=failed_n)
    for mailing_id in sorted(deltas):
        await counters.apply(session, mailing_id, deltas[mailing_id])
    return len(stored) + len(late_sent)


async def _record_late_sends(
    session: AsyncSession, worker: str, results: Sequence[Done], stored: set[int], now: datetime
) -> set[int]:
    """SQLite: a message cancelled while its request was already on its way, and that the
    provider accepted, was sent: record the truth rather than ``cancelled``."""
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
