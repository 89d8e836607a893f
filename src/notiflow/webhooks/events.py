"""Webhook events: what happened, queued as one delivery per active webhook subscribed to it, in
the transaction of the change itself — a rollback takes the event with it, a commit makes it
certain to be delivered (or to fail after every retry).

Emission points call ``emit`` (or ``emit_mailings`` for mailing events); the message events are
written with the engine's write-back (``delivery.queue.outcomes``), and only while some active
webhook subscribes to one. Events are never written for nobody: with no subscriber, an emit is
one small query (or one INSERT … SELECT that inserts nothing).

Every delivery's body is ``{"id": <delivery id>, "event": <name>, "created_at": <when queued>,
"data": {…}}``; ``body`` makes it, the same bytes at every attempt.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from notiflow.db.session import publish
from notiflow.db.types import UTCDateTime
from notiflow.webhooks import repository
from notiflow.webhooks.repository import MailingFacts


class WebhookEvent(StrEnum):
    """The events a webhook may subscribe to."""

    mailing_started = "mailing.started"
    mailing_paused = "mailing.paused"
    mailing_completed = "mailing.completed"
    mailing_cancelled = "mailing.cancelled"
    message_sent = "message.sent"
    message_failed = "message.failed"


MAILING_STARTED = WebhookEvent.mailing_started.value
MAILING_PAUSED = WebhookEvent.mailing_paused.value
MAILING_COMPLETED = WebhookEvent.mailing_completed.value
MAILING_CANCELLED = WebhookEvent.mailing_cancelled.value
MESSAGE_SENT = WebhookEvent.message_sent.value
MESSAGE_FAILED = WebhookEvent.message_failed.value
MESSAGE_EVENTS = frozenset({MESSAGE_SENT, MESSAGE_FAILED})
PING = "ping"  # sent on demand to one webhook (POST /webhooks/{id}/ping); not subscribed to

# Topics of ``db.session.publish``: deliveries were queued (the dispatcher looks at once), and
# the webhooks changed (the engine looks again at which events anybody subscribes to).
QUEUED = "webhooks.queued"
CHANGED = "webhooks.changed"

_WRITE_BACK_RESULT = "SELECT status, attempted, count(*) FROM stored"


def with_message_events(write_back: TextClause) -> TextClause:
    """PostgreSQL: the engine's write-back statement (``delivery.queue.outcomes``) with one more
    CTE, which queues the message events of the outcomes it stores."""
    head, found, tail = write_back.text.rpartition(_WRITE_BACK_RESULT)
    if not found:  # fails at import, should the write-back change shape
        raise RuntimeError(f"the write-back no longer ends with {_WRITE_BACK_RESULT!r}")
    statement = text(head.rstrip() + repository.PG_MESSAGE_EVENTS_CTE + "    " + found + tail)
    return statement.bindparams(bindparam("now", type_=UTCDateTime()))


def timestamp(at: datetime) -> str:
    """The form of every time in an event: ISO 8601, UTC, milliseconds, ``Z``."""
    at = at.astimezone(UTC)
    return f"{at:%Y-%m-%dT%H:%M:%S}.{at.microsecond // 1000:03d}Z"


def encode(data: Mapping[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False)


def body(delivery_id: int, event: str, created_at: datetime, data: str) -> bytes:
    """The body of a delivery, ``data`` being the stored JSON text of the event's data."""
    return b'{"id": %d, "event": %s, "created_at": "%s", "data": %s}' % (
        delivery_id,
        json.dumps(event).encode(),
        timestamp(created_at).encode(),
        data.encode(),
    )


async def emit(session: AsyncSession, event: str, data: Mapping[str, Any], *, now: datetime) -> int:
    """Queue ``event`` with ``data`` for every active webhook subscribed to it, in this
    transaction (one INSERT … SELECT); return how many deliveries were queued."""
    queued = await repository.queue_for_subscribers(
        session, event=event, data=encode(data), now=now
    )
    if queued:
        publish(session, QUEUED)
    return queued


def mailing_data(facts: MailingFacts, now: datetime) -> dict[str, Any]:
    return {
        "mailing_id": facts.id,
        "status": facts.status,
        "start_time": timestamp(facts.start_time),
        "end_time": timestamp(facts.end_time),
        "stats": facts.counts,
        "at": timestamp(now),
    }


async def emit_mailings(
    session: AsyncSession, event: str, mailing_ids: Sequence[int], *, now: datetime
) -> int:
    """Queue a mailing event for each of ``mailing_ids``, telling of the mailing as it is in this
    transaction: its status, times and message counts. Nobody subscribed: one small query."""
    if not mailing_ids or not await repository.any_subscriber(session, event):
        return 0
    await session.flush()  # the mailings' changes still held by the session
    queued = 0
    for facts in await repository.mailing_facts(session, mailing_ids):
        queued += await emit(session, event, mailing_data(facts, now), now=now)
    return queued


async def emit_messages(session: AsyncSession, *, ids: Sequence[int], now: datetime) -> None:
    """SQLite: the message events of the messages whose outcome was stored in this transaction
    (``ids``), for the webhooks subscribed to them. PostgreSQL writes them in the write-back
    statement itself (``with_message_events``) and then calls ``queued``."""
    await repository.queue_message_events(session, ids=ids, now=now)
    queued(session)


def queued(session: AsyncSession) -> None:
    """Deliveries may have been queued in this transaction: wake the dispatcher on commit."""
    publish(session, QUEUED)
