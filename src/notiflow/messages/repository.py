"""All SQL about messages. Every status change here keeps the mailing counters in step."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from notiflow import counters
from notiflow.db.locks import lock_in_id_order
from notiflow.metrics import count_outcome
from notiflow.models import Client, Message, MessageStatus

UNSENT = (MessageStatus.pending.value, MessageStatus.sending.value)


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message row to write as it is: the engine makes them pending; tests seed any status."""

    client_id: int | None
    status: MessageStatus = MessageStatus.pending
    attempts: int = 0
    next_attempt_at: datetime | None = None
    sent_at: datetime | None = None
    last_error: str | None = None


# The client's phone beside each message: NULL once the client is deleted (client_id is then
# NULL too). Messages have no foreign key to clients (see models.message), hence the LEFT JOIN.
_WITH_PHONE = select(Message, Client.phone).outerjoin(Client, Client.id == Message.client_id)

# What an export reads per row: plain columns, no ORM objects.
EXPORT_COLUMNS = (
    Message.id,
    Message.mailing_id,
    Message.client_id,
    Client.phone,
    Message.status,
    Message.attempts,
    Message.created_at,
    Message.sent_at,
    Message.next_attempt_at,
    Message.last_error,
    Message.updated_at,
)


async def get(session: AsyncSession, message_id: int) -> Message | None:
    return await session.get(Message, message_id)


async def get_with_phone(
    session: AsyncSession, message_id: int
) -> tuple[Message, str | None] | None:
    row = (await session.execute(_WITH_PHONE.where(Message.id == message_id))).first()
    return None if row is None else (row[0], row[1])


async def list_page(
    session: AsyncSession,
    *,
    mailing_id: int,
    status: MessageStatus | None,
    limit: int,
    offset: int,
) -> list[tuple[Message, str | None]]:
    """A page of a mailing's messages, each with its client's phone."""
    query = _WITH_PHONE.where(Message.mailing_id == mailing_id)
    if status is not None:
        query = query.where(Message.status == status.value)
    rows = await session.execute(query.order_by(Message.id).limit(limit).offset(offset))
    return [(message, phone) for message, phone in rows]


async def export_chunk(
    session: AsyncSession,
    *,
    mailing_id: int,
    status: MessageStatus | None,
    after_id: int,
    limit: int,
) -> Sequence[Sequence[Any]]:
    """The next ``limit`` messages of a mailing after ``after_id``, by id (keyset paging: each
    chunk is one index range scan, however far into the mailing)."""
    query = (
        select(*EXPORT_COLUMNS)
        .outerjoin(Client, Client.id == Message.client_id)
        .where(Message.mailing_id == mailing_id, Message.id > after_id)
    )
    if status is not None:
        query = query.where(Message.status == status.value)
    return (await session.execute(query.order_by(Message.id).limit(limit))).all()


async def insert_many(
    session: AsyncSession, mailing_id: int, messages: Sequence[NewMessage], *, now: datetime
) -> None:
    """Write message rows of one mailing and count them."""
    if not messages:
        return
    delta = counters.CounterDelta()
    rows = []
    for message in messages:
        rows.append(
            {
                "mailing_id": mailing_id,
                "client_id": message.client_id,
                "status": message.status.value,
                "attempts": message.attempts,
                "next_attempt_at": message.next_attempt_at
                if message.next_attempt_at is not None
                or message.status is not MessageStatus.pending
                else now,
                "sent_at": message.sent_at,
                "last_error": message.last_error,
                "created_at": now,
                "updated_at": now,
            }
        )
        delta.move(None, message.status.value)
        delta.attempts += message.attempts
        if message.attempts > 1:
            delta.retried_messages += 1
        if message.last_error is not None:
            delta.error(message.last_error)
        if message.status is MessageStatus.sent:
            at = message.sent_at or now
            delta.sent_at(at)
            delta.finished(at, sent=True)
        elif message.status is MessageStatus.failed:
            delta.finished(now, sent=False)
    await session.execute(insert(Message), rows)
    await counters.apply(session, mailing_id, delta)


async def lock_of_mailing(session: AsyncSession, mailing_id: int, *, unsent: bool) -> None:
    """Lock a mailing's messages (only those not sent yet, with ``unsent``) before changing
    them, in the order every writer of messages keeps (see ``db.locks``)."""
    conditions = [Message.mailing_id == mailing_id]
    if unsent:
        conditions.append(Message.status.in_(UNSENT))
    await lock_in_id_order(session, Message.id, *conditions)


def _cancelled(reason: str, now: datetime) -> dict[str, object]:
    # claimed_by stays: a worker whose request was already on its way may still record that
    # the provider accepted the message (see delivery.queue.write_back).
    return {
        "status": MessageStatus.cancelled.value,
        "last_error": reason,
        "next_attempt_at": None,
        "updated_at": now,
    }


async def lock_of_clients(session: AsyncSession, client_ids: Sequence[int]) -> None:
    """Lock the messages of these clients not sent yet, in id order (see ``db.locks``)."""
    await lock_in_id_order(
        session, Message.id, Message.client_id.in_(list(client_ids)), Message.status.in_(UNSENT)
    )


async def cancel_unsent_of_mailing(
    session: AsyncSession, mailing_id: int, *, reason: str, now: datetime
) -> int:
    """Cancel every message of a mailing that is not final yet; return how many."""
    await lock_of_mailing(session, mailing_id, unsent=True)
    delta = counters.CounterDelta()
    for old in UNSENT:
        result = await session.execute(
            update(Message)
            .where(Message.mailing_id == mailing_id, Message.status == old)
            .values(_cancelled(reason, now))
            .execution_options(synchronize_session=False)
        )
        changed = int(result.rowcount or 0)  # type: ignore[attr-defined]
        if changed:
            delta.move(old, MessageStatus.cancelled.value, changed)
    await counters.apply(session, mailing_id, delta)
    cancelled = sum(-change for status, change in delta.statuses.items() if status in UNSENT)
    count_outcome(session, "cancelled", cancelled)
    return cancelled


async def cancel_unsent_of_client(
    session: AsyncSession, client_id: int, *, reason: str, now: datetime
) -> int:
    """Cancel a client's messages that were not sent yet, across every mailing."""
    await lock_in_id_order(session, Message.id, Message.client_id == client_id)
    deltas: dict[int, counters.CounterDelta] = defaultdict(counters.CounterDelta)
    for old in UNSENT:
        result = await session.execute(
            update(Message)
            .where(Message.client_id == client_id, Message.status == old)
            .values(_cancelled(reason, now))
            .returning(Message.mailing_id)
            .execution_options(synchronize_session=False)
        )
        for mailing_id in result.scalars():
            deltas[mailing_id].move(old, MessageStatus.cancelled.value)
    for mailing_id, delta in sorted(deltas.items()):
        await counters.apply(session, mailing_id, delta)
    cancelled = sum(d.statuses.get(MessageStatus.cancelled.value, 0) for d in deltas.values())
    count_outcome(session, "cancelled", cancelled)
    return cancelled


async def requeue(
    session: AsyncSession, mailing_id: int, *, statuses: Sequence[MessageStatus], now: datetime
) -> int:
    """Make a mailing's messages of these final statuses pending again, due now, with a fresh
    set of attempts; return how many. Messages of clients who opted out or were deleted stay as
    they are."""
    values = [status.value for status in statuses]
    reachable = Message.client_id.in_(select(Client.id).where(Client.opted_out_at.is_(None)))
    await lock_in_id_order(
        session,
        Message.id,
        Message.mailing_id == mailing_id,
        Message.status.in_(values),
        reachable,
    )
    delta = counters.CounterDelta()
    for old in values:
        result = await session.execute(
            update(Message)
            .where(Message.mailing_id == mailing_id, Message.status == old, reachable)
            .values(
                status=MessageStatus.pending.value,
                attempts=0,
                next_attempt_at=now,
                claimed_by=None,
                lease_expires_at=None,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        changed = int(result.rowcount or 0)  # type: ignore[attr-defined]
        if changed:
            delta.move(old, MessageStatus.pending.value, changed)
    await counters.apply(session, mailing_id, delta)
    return delta.statuses.get(MessageStatus.pending.value, 0)


async def count(session: AsyncSession, mailing_id: int) -> int:
    return int(
        await session.scalar(
            select(func.count()).select_from(Message).where(Message.mailing_id == mailing_id)
        )
        or 0
    )
