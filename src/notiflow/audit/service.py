"""Recording writes and reading the log back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from notiflow.audit import repository
from notiflow.audit.repository import AuditFilter
from notiflow.models import AuditEntry


async def record(
    session: AsyncSession,
    *,
    at: datetime,
    actor: str,
    action: str,
    method: str,
    route: str,
    object_type: str | None,
    object_id: int | None,
    detail: dict[str, Any],
) -> AuditEntry:
    """Add an entry in the session's transaction: it commits or rolls back with the write."""
    return await repository.add(
        session,
        AuditEntry(
            at=at,
            actor=actor[:100],
            action=action[:100],
            method=method,
            route=route[:300],
            object_type=object_type,
            object_id=object_id,
            detail=detail,
        ),
    )


async def list_page(
    session: AsyncSession, where: AuditFilter, *, limit: int, offset: int
) -> tuple[Sequence[AuditEntry], int]:
    return await repository.list_page(session, where, limit=limit, offset=offset)
