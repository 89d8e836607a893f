"""All SQL about the audit log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from notiflow.models import AuditEntry


@dataclass(frozen=True, slots=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    object_type: str | None = None
    object_id: int | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


def _filtered(query: Select[Any], where: AuditFilter) -> Select[Any]:
    if where.actor is not None:
        query = query.where(AuditEntry.actor == where.actor)
    if where.action is not None:
        query = query.where(AuditEntry.action == where.action)
    if where.object_type is not None:
        query = query.where(AuditEntry.object_type == where.object_type)
    if where.object_id is not None:
        query = query.where(AuditEntry.object_id == where.object_id)
    if where.since is not None:
        query = query.where(AuditEntry.at >= where.since)
    if where.until is not None:
        query = query.where(AuditEntry.at < where.until)
    return query


async def add(session: AsyncSession, entry: AuditEntry) -> AuditEntry:
    session.add(entry)
    await session.flush()
    return entry


async def list_page(
    session: AsyncSession, where: AuditFilter, *, limit: int, offset: int
) -> tuple[Sequence[AuditEntry], int]:
    """A page of entries, newest first."""
    total = await session.scalar(_filtered(select(func.count()).select_from(AuditEntry), where))
    rows = await session.scalars(
        _filtered(select(AuditEntry), where)
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return rows.all(), int(total or 0)
