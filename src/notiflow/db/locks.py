"""Row locks in one order.

Every transaction that changes live messages — the engine's write-backs, lease renewals and
reclaims, the API's cancels and deletes — first locks the rows it will change in ascending id
order. Two of them may then wait for one another, but never in a circle, so PostgreSQL never has
to end one of them with a deadlock error (which the API would have to answer with a 500). Claims
need none of this: they skip locked rows. SQLite has one writer at a time and no row locks.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession


async def lock_in_id_order(session: AsyncSession, id_column: Any, *conditions: Any) -> None:
    """Lock the rows of ``id_column``'s table that match ``conditions``, lowest id first."""
    if session.get_bind().dialect.name != "postgresql":
        return
    locked = select(id_column).where(*conditions).order_by(id_column).with_for_update()
    await session.execute(select(func.count()).select_from(locked.subquery()))
