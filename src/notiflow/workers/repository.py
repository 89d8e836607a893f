"""All SQL about the workers table: the heartbeat's UPSERT, the clean-up, the reads."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from notiflow.models import Worker

WORKERS: Table = Worker.__table__  # type: ignore[assignment]


def _insert(session: AsyncSession) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


async def beat(session: AsyncSession, row: dict[str, Any]) -> None:
    """Write one engine's row (every column, ``name`` first among them): one statement,
    inserting it the first time and refreshing it after."""
    statement = _insert(session)(WORKERS).values(**row)
    statement = statement.on_conflict_do_update(
        index_elements=[WORKERS.c.name],
        set_={column: statement.excluded[column] for column in row if column != "name"},
    )
    await session.execute(statement)


async def delete_unseen(session: AsyncSession, *, before: datetime) -> int:
    """Forget the workers whose last beat is older than ``before``; return how many."""
    result: Any = await session.execute(delete(WORKERS).where(WORKERS.c.last_beat_at < before))
    return int(result.rowcount or 0)


def _alive(since: datetime) -> ColumnElement[bool]:
    return WORKERS.c.stopped_at.is_(None) & (WORKERS.c.last_beat_at >= since)


async def list_page(
    session: AsyncSession, *, alive_since: datetime | None, limit: int, offset: int
) -> tuple[Sequence[Worker], int]:
    """A page of workers, the most recently started first: only those alive since
    ``alive_since`` (not stopped, and seen since then), or all with ``None``.

    The table holds a day of workers at most, so every matching row is read, in one statement:
    the page and its total come from the same snapshot, even while workers start and stop.
    """
    where = [] if alive_since is None else [_alive(alive_since)]
    rows = (
        await session.scalars(
            select(Worker).where(*where).order_by(Worker.started_at.desc(), Worker.name)
        )
    ).all()
    return rows[offset : offset + limit], len(rows)


async def any_alive(session: AsyncSession, *, since: datetime) -> bool:
    """Whether some worker that has not stopped was seen since ``since``."""
    found = await session.scalar(select(WORKERS.c.name).where(_alive(since)).limit(1))
    return found is not None
