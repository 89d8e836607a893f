"""The write side of the mailing statistics: every change of a message's status goes through
``apply``, in the same transaction as the change itself.

Counters are updated with relative increments (``pending = pending + :d``), so concurrent
transactions of several workers compose, and a row lock on one mailing's counters is held only
until the transaction that changed its messages commits. The read side is ``stats.repository``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, case, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from notiflow.models import MailingError, MailingStats, MailingTimeline, MessageStatus

STATUS_COLUMNS = tuple(status.value for status in MessageStatus)


@dataclass
class CounterDelta:
    """What one transaction did to one mailing's messages."""

    statuses: dict[str, int] = field(default_factory=dict)
    total: int = 0
    attempts: int = 0
    retried_messages: int = 0
    first_sent_at: datetime | None = None
    last_sent_at: datetime | None = None
    errors: dict[str, int] = field(default_factory=dict)
    # minute → (sent, failed)
    timeline: dict[datetime, list[int]] = field(default_factory=dict)

    def move(self, old: str | None, new: str, count: int = 1) -> None:
        if old is not None:
            self.statuses[old] = self.statuses.get(old, 0) - count
        self.statuses[new] = self.statuses.get(new, 0) + count
        if old is None:
            self.total += count

    def sent_at(self, at: datetime) -> None:
        if self.first_sent_at is None or at < self.first_sent_at:
            self.first_sent_at = at
        if self.last_sent_at is None or at > self.last_sent_at:
            self.last_sent_at = at

    def finished(self, at: datetime, *, sent: bool) -> None:
        self.count_finished(
            at.replace(second=0, microsecond=0), sent=int(sent), failed=int(not sent)
        )

    def count_finished(self, minute: datetime, *, sent: int, failed: int) -> None:
        bucket = self.timeline.setdefault(minute, [0, 0])
        bucket[0] += sent
        bucket[1] += failed

    def error(self, kind: str, count: int = 1) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + count


def _insert(session: AsyncSession) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


async def create_row(session: AsyncSession, mailing_id: int) -> None:
    session.add(MailingStats(mailing_id=mailing_id))
    await session.flush()


async def apply(session: AsyncSession, mailing_id: int, delta: CounterDelta) -> None:
    table: Table = MailingStats.__table__  # type: ignore[assignment]
    values: dict[str, Any] = {}
    for status, change in delta.statuses.items():
        if change:
            values[status] = table.c[status] + change
    if delta.total:
        values["total"] = table.c.total + delta.total
    if delta.attempts:
        values["attempts"] = table.c.attempts + delta.attempts
    if delta.retried_messages:
        values["retried_messages"] = table.c.retried_messages + delta.retried_messages
    if delta.first_sent_at is not None:
        values["first_sent_at"] = case(
            (
                (table.c.first_sent_at.is_(None)) | (table.c.first_sent_at > delta.first_sent_at),
                delta.first_sent_at,
            ),
            else_=table.c.first_sent_at,
        )
    if delta.last_sent_at is not None:
        values["last_sent_at"] = case(
            (
                (table.c.last_sent_at.is_(None)) | (table.c.last_sent_at < delta.last_sent_at),
                delta.last_sent_at,
            ),
            else_=table.c.last_sent_at,
        )
    if values:
        # A Core statement on the table: this runs with every claim and write-back.
        connection = await session.connection()
        await connection.execute(
            update(table).where(table.c.mailing_id == mailing_id).values(**values)
        )
    insert = _insert(session)
    if delta.errors:
        statement = insert(MailingError)
        statement = statement.on_conflict_do_update(
            index_elements=[MailingError.mailing_id, MailingError.error],
            set_={"count": MailingError.count + statement.excluded.count},
        )
        await session.execute(
            statement,
            [
                {"mailing_id": mailing_id, "error": kind[:100], "count": count}
                for kind, count in delta.errors.items()
            ],
        )
    if delta.timeline:
        statement = insert(MailingTimeline)
        statement = statement.on_conflict_do_update(
            index_elements=[MailingTimeline.mailing_id, MailingTimeline.at],
            set_={
                "sent": MailingTimeline.sent + statement.excluded.sent,
                "failed": MailingTimeline.failed + statement.excluded.failed,
            },
        )
        await session.execute(
            statement,
            [
                {"mailing_id": mailing_id, "at": at, "sent": sent, "failed": failed}
                for at, (sent, failed) in delta.timeline.items()
            ],
        )
