"""Outcomes written back: the new state of claimed messages, and their mailings' counters.

A write-back changes only messages still ``sending`` and claimed by the writing worker (a message
cancelled, deleted or reclaimed meanwhile is left as it is), except one whose request was already
on its way when it was cancelled and that the provider accepted: that one was sent, and is
recorded so.
"""

from __future__ import annotations

import functools
from collections import Counter, defaultdict
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from notiflow import counters
from notiflow.db.types import UTCDateTime
from notiflow.delivery.records import Done
from notiflow.metrics import count_outcome
from notiflow.metrics.core import Outcome
from notiflow.models import Message, MessageStatus
from notiflow.webhooks import events as webhook_events

SENDING = MessageStatus.sending.value
PENDING = MessageStatus.pending.value
_OUTCOMES: dict[str, Outcome] = {
    "sent": "sent",
    "failed": "failed",
    "expired": "expired",
    "cancelled": "cancelled",
}


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
    SELECT status, attempted, count(*) FROM stored GROUP BY status, attempted
    """
).bindparams(bindparam("now", type_=UTCDateTime()))
# The same, queueing the webhook message events of the stored outcomes too: used only while some
# active webhook subscribes to one, so that without webhooks the write-back is the one above.
_PG_WRITE_BACK_WITH_EVENTS = webhook_events.with_message_events(_PG_WRITE_BACK)

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
    session: AsyncSession,
    *,
    worker: str,
    results: Sequence[Done],
    now: datetime,
    events: Collection[str] = (),
) -> int:
    """Store the outcomes of claimed messages; return how many still belonged to this worker.

    A message cancelled, deleted or reclaimed meanwhile is left as it is — except one whose
    request was already on its way when it was cancelled and that the provider accepted: that one
    was sent, and is recorded so. With ``events`` (the webhook message events some active webhook
    subscribes to), the events of the stored outcomes are queued in the same transaction.
    """
    if not results:
        return 0
    unique = list({r.id: r for r in results}.values())
    if session.get_bind().dialect.name == "postgresql":
        unique.sort(key=lambda r: r.id)
        parts = [_contribution(r, now) for r in unique]
        result = await session.execute(
            _PG_WRITE_BACK_WITH_EVENTS if events else _PG_WRITE_BACK,
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
        if events:
            webhook_events.queued(session)
        counted: Counter[tuple[str, bool]] = Counter()
        for status, attempted, count in result:
            counted[status, bool(attempted)] += int(count)
        _count(session, counted)
        return sum(counted.values())
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
    tally: Counter[tuple[str, bool]] = Counter()
    for r in unique:
        if r.id in late_sent:
            old = MessageStatus.cancelled.value
        elif r.id in stored:
            old = SENDING
        else:
            continue
        tally[r.status.value, r.attempted] += 1
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
    if events:
        await webhook_events.emit_messages(session, ids=sorted(stored | late_sent), now=now)
    _count(session, tally)
    return len(stored) + len(late_sent)


def _count(session: AsyncSession, tally: Counter[tuple[str, bool]]) -> None:
    """Count the stored outcomes in the metrics once they commit: a pending message that was
    attempted was retried; one that was not (given back unsent) reached no outcome."""
    for (status, attempted), count in tally.items():
        if status == PENDING:
            if attempted:
                count_outcome(session, "retried", count)
        elif status in _OUTCOMES:
            count_outcome(session, _OUTCOMES[status], count)


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
