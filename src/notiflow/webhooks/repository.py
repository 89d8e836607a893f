"""All SQL about webhooks and their deliveries.

Subscribers of an event are found with one portable condition: ``webhooks.events`` holds the
subscribed names comma-delimited with a comma at each end, so ``events LIKE '%,<name>,%'`` is
an exact match on SQLite and PostgreSQL alike (event names hold no LIKE wildcard).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    Table,
    bindparam,
    delete,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from notiflow.db.types import UTCDateTime
from notiflow.models import (
    DeliveryStatus,
    Mailing,
    MailingStats,
    Webhook,
    WebhookDelivery,
)

DELIVERIES: Table = WebhookDelivery.__table__  # type: ignore[assignment]
PENDING = DeliveryStatus.pending.value
SENDING = DeliveryStatus.sending.value
_LIVE = (PENDING, SENDING)
_INSERTED = ["webhook_id", "event", "data", "status", "attempts", "next_attempt_at"]


def _is_pg(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def join_events(events: Sequence[str]) -> str:
    """The stored form of a list of event names: ``,a,b,``."""
    return "," + ",".join(events) + ","


def split_events(stored: str) -> list[str]:
    return [name for name in stored.split(",") if name]


def subscribes(event: str) -> ColumnElement[bool]:
    """Active webhooks subscribed to ``event``."""
    return Webhook.active & Webhook.events.like(f"%,{event},%")


# --- webhooks ----------------------------------------------------------------------------------


async def get(
    session: AsyncSession, webhook_id: int, *, for_update: bool = False
) -> Webhook | None:
    query = select(Webhook).where(Webhook.id == webhook_id)
    if for_update:
        # NO KEY UPDATE: deliveries being written for it (a key-share lock each) need not wait.
        query = query.with_for_update(key_share=True)
    return await session.scalar(query)


async def add(session: AsyncSession, webhook: Webhook) -> Webhook:
    session.add(webhook)
    await session.flush()
    return webhook


async def remove(session: AsyncSession, webhook_id: int) -> None:
    """Delete a webhook with its deliveries."""
    await session.execute(delete(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id))
    await session.execute(delete(Webhook).where(Webhook.id == webhook_id))


async def list_page(
    session: AsyncSession, *, limit: int, offset: int
) -> tuple[Sequence[Webhook], int]:
    rows = await session.scalars(select(Webhook).order_by(Webhook.id).limit(limit).offset(offset))
    total = await session.scalar(select(func.count()).select_from(Webhook))
    return rows.all(), int(total or 0)


async def subscribed_events(session: AsyncSession) -> set[str]:
    """Every event some active webhook subscribes to."""
    rows = await session.scalars(select(Webhook.events).where(Webhook.active))
    return {name for stored in rows for name in split_events(stored)}


async def any_subscriber(session: AsyncSession, event: str) -> bool:
    found = await session.scalar(select(Webhook.id).where(subscribes(event)).limit(1))
    return found is not None


# --- queueing deliveries -----------------------------------------------------------------------


async def queue_for_subscribers(
    session: AsyncSession, *, event: str, data: str, now: datetime
) -> int:
    """One delivery of ``event`` per active webhook subscribed to it, in one INSERT … SELECT;
    return how many."""
    rows = select(
        Webhook.id,
        literal(event, String()),
        literal(data, String()),
        literal(PENDING, String()),
        literal(0, Integer()),
        literal(now, UTCDateTime()),
    ).where(subscribes(event))
    return await _insert_from(session, rows, now)


async def queue_for_webhook(
    session: AsyncSession, *, webhook_id: int, event: str, data: str, now: datetime
) -> WebhookDelivery:
    delivery = WebhookDelivery(
        webhook_id=webhook_id,
        event=event,
        data=data,
        status=PENDING,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
    session.add(delivery)
    await session.flush()
    return delivery


async def _insert_from(session: AsyncSession, rows: Any, now: datetime) -> int:
    rows = rows.add_columns(literal(now, UTCDateTime()), literal(now, UTCDateTime()))
    result = await session.execute(
        DELIVERIES.insert().from_select([*_INSERTED, "created_at", "updated_at"], rows)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class MailingFacts:
    """What a mailing event tells of its mailing."""

    id: int
    status: str
    start_time: datetime
    end_time: datetime
    counts: dict[str, int]


_COUNTS = ("total", "pending", "sending", "sent", "failed", "expired", "cancelled")


async def mailing_facts(session: AsyncSession, mailing_ids: Sequence[int]) -> list[MailingFacts]:
    """Mailings with their counters, read afresh (columns, not ORM objects: the counters are
    moved by Core statements the identity map does not see)."""
    rows = await session.execute(
        select(
            Mailing.id,
            Mailing.status,
            Mailing.start_time,
            Mailing.end_time,
            *(getattr(MailingStats, name) for name in _COUNTS),
        )
        .outerjoin(MailingStats, MailingStats.mailing_id == Mailing.id)
        .where(Mailing.id.in_(list(mailing_ids)))
        .order_by(Mailing.id)
    )
    return [
        MailingFacts(
            id=row[0],
            status=row[1],
            start_time=row[2],
            end_time=row[3],
            counts={name: int(value or 0) for name, value in zip(_COUNTS, row[4:], strict=True)},
        )
        for row in rows
    ]


# Message events, written with the outcomes of the engine's write-back (only while some active
# webhook subscribes to one: otherwise the write-back runs exactly as it would without webhooks).
# "at" is when the message was sent, or when its failure was stored; the error only of a failure.
#
# PostgreSQL: one more CTE of the write-back statement (delivery.queue.outcomes), reading its
# ``stored`` rows (the outcomes that were stored) and the messages as they were before it (their
# client and previous error do not change).
PG_MESSAGE_EVENTS_CTE = """,
    webhook_events AS (
        INSERT INTO webhook_deliveries (webhook_id, event, data, status, attempts,
                                        next_attempt_at, created_at, updated_at)
        SELECT w.id, 'message.' || s.status,
            json_build_object(
                'message_id', s.id, 'mailing_id', s.mailing_id, 'client_id', m.client_id,
                'phone', cl.phone, 'status', s.status, 'attempts', s.attempts,
                'error', CASE WHEN s.status = 'failed'
                              THEN COALESCE(s.last_error, m.last_error) END,
                'at', to_char(COALESCE(s.sent_at, :now) AT TIME ZONE 'UTC',
                              'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
            )::text,
            'pending', 0, :now, :now, :now
        FROM stored AS s
        JOIN messages AS m ON m.id = s.id
        LEFT JOIN clients AS cl ON cl.id = m.client_id
        JOIN webhooks AS w ON w.active AND w.events LIKE ('%,message.' || s.status || ',%')
        WHERE s.status IN ('sent', 'failed')
        ORDER BY s.id, w.id
    )
"""


@functools.cache
def _sqlite_message_events() -> Any:
    return text(
        """
        INSERT INTO webhook_deliveries (webhook_id, event, data, status, attempts,
                                        next_attempt_at, created_at, updated_at)
        SELECT w.id, 'message.' || m.status,
            json_object(
                'message_id', m.id, 'mailing_id', m.mailing_id, 'client_id', m.client_id,
                'phone', cl.phone, 'status', m.status, 'attempts', m.attempts,
                'error', CASE WHEN m.status = 'failed' THEN m.last_error END,
                'at', strftime('%Y-%m-%dT%H:%M:%fZ', COALESCE(m.sent_at, :now))
            ),
            'pending', 0, :now, :now, :now
        FROM messages AS m
        LEFT JOIN clients AS cl ON cl.id = m.client_id
        JOIN webhooks AS w ON w.active AND w.events LIKE ('%,message.' || m.status || ',%')
        WHERE m.id IN :ids AND m.status IN ('sent', 'failed')
        ORDER BY m.id, w.id
        """
    ).bindparams(bindparam("now", type_=UTCDateTime()), bindparam("ids", expanding=True))


async def queue_message_events(session: AsyncSession, *, ids: Sequence[int], now: datetime) -> int:
    """SQLite: the message events of messages whose outcome was just stored (in this
    transaction), from their stored state."""
    if not ids:
        return 0
    result = await session.execute(_sqlite_message_events(), {"ids": list(ids), "now": now})
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --- deliveries --------------------------------------------------------------------------------


async def get_delivery(session: AsyncSession, delivery_id: int) -> WebhookDelivery | None:
    return await session.get(WebhookDelivery, delivery_id)


async def list_deliveries(
    session: AsyncSession,
    *,
    webhook_id: int,
    status: DeliveryStatus | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[WebhookDelivery], int]:
    conditions = [WebhookDelivery.webhook_id == webhook_id]
    if status is not None:
        conditions.append(WebhookDelivery.status == status.value)
    rows = await session.scalars(
        select(WebhookDelivery)
        .where(*conditions)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
        .offset(offset)
    )
    total = await session.scalar(
        select(func.count()).select_from(WebhookDelivery).where(*conditions)
    )
    return rows.all(), int(total or 0)


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A delivery this worker holds (``sending``), with where and how to send it."""

    id: int
    webhook_id: int
    event: str
    data: str
    attempts: int
    created_at: datetime
    url: str
    secret: str


async def claim(
    session: AsyncSession, *, worker: str, now: datetime, lease_until: datetime, limit: int
) -> list[ClaimedDelivery]:
    """Take up to ``limit`` due deliveries of active webhooks — pending ones whose time has come,
    and those a worker held past its lease (it died) — for this worker until ``lease_until``.

    On PostgreSQL, ``FOR UPDATE SKIP LOCKED`` hands concurrent workers disjoint rows without
    waiting; SQLite has one writer at a time.
    """
    picked = (
        select(WebhookDelivery.id)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(
            WebhookDelivery.status.in_(_LIVE),
            WebhookDelivery.next_attempt_at <= now,
            Webhook.active,
        )
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
    )
    if _is_pg(session):
        picked = picked.with_for_update(skip_locked=True, of=WebhookDelivery)
    result = await session.execute(
        update(DELIVERIES)
        .where(DELIVERIES.c.id.in_(picked.scalar_subquery()))
        .values(status=SENDING, claimed_by=worker, next_attempt_at=lease_until, updated_at=now)
        .returning(
            DELIVERIES.c.id,
            DELIVERIES.c.webhook_id,
            DELIVERIES.c.event,
            DELIVERIES.c.data,
            DELIVERIES.c.attempts,
            DELIVERIES.c.created_at,
        )
    )
    rows = result.all()
    if not rows:
        return []
    hooks = {
        row.id: (row.url, row.secret)
        for row in await session.execute(
            select(Webhook.id, Webhook.url, Webhook.secret).where(
                Webhook.id.in_({row.webhook_id for row in rows})
            )
        )
    }
    return [
        ClaimedDelivery(
            id=row.id,
            webhook_id=row.webhook_id,
            event=row.event,
            data=row.data,
            attempts=row.attempts,
            created_at=row.created_at,
            url=hooks[row.webhook_id][0],
            secret=hooks[row.webhook_id][1],
        )
        for row in rows
        if row.webhook_id in hooks
    ]


@dataclass(frozen=True, slots=True)
class Attempted:
    """The outcome of one attempt, as it is stored."""

    id: int
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    status_code: int | None
    error: str | None
    delivered_at: datetime | None


async def record(
    session: AsyncSession, *, worker: str, results: Sequence[Attempted], now: datetime
) -> None:
    """Store attempts of deliveries this worker still holds (one a worker lost to another after
    its lease ran out is left to that one)."""
    if not results:
        return
    statement = (
        update(DELIVERIES)
        .where(
            DELIVERIES.c.id == bindparam("b_id"),
            DELIVERIES.c.status == SENDING,
            DELIVERIES.c.claimed_by == worker,
        )
        .values(
            status=bindparam("b_status"),
            attempts=bindparam("b_attempts"),
            next_attempt_at=bindparam("b_next", type_=UTCDateTime()),
            last_status_code=bindparam("b_code"),
            last_error=bindparam("b_error"),
            delivered_at=bindparam("b_delivered", type_=UTCDateTime()),
            claimed_by=None,
            updated_at=now,
        )
    )
    connection = await session.connection()
    await connection.execute(
        statement,
        [
            {
                "b_id": r.id,
                "b_status": r.status.value,
                "b_attempts": r.attempts,
                "b_next": r.next_attempt_at,
                "b_code": r.status_code,
                "b_error": r.error,
                "b_delivered": r.delivered_at,
            }
            for r in sorted(results, key=lambda r: r.id)  # rows locked lowest id first
        ],
    )
