"""Transactions: the request edge (or a worker step) owns the transaction; services never commit.

``on_commit`` registers a callback that runs only once the transaction has committed, e.g. to wake
the delivery engine after a mailing was created.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

_AFTER_COMMIT = "notiflow.after_commit"


def on_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


async def commit(session: AsyncSession) -> None:
    await session.commit()
    callbacks: list[Callable[[], None]] = session.info.pop(_AFTER_COMMIT, [])
    for callback in callbacks:
        callback()


@asynccontextmanager
async def transaction(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session whose work is committed on success and rolled back on any error."""
    async with factory() as session:
        try:
            yield session
        except BaseException:
            session.info.pop(_AFTER_COMMIT, None)
            await session.rollback()
            raise
        await commit(session)


@asynccontextmanager
async def one_statement(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session for work that PostgreSQL does in one statement, which is atomic on its own:
    autocommit, so no BEGIN and COMMIT round trips (the engine's hot path, where every round trip
    waits for a turn of a busy event loop). Elsewhere, where the same work takes several
    statements, a transaction."""
    async with factory() as session:
        if session.get_bind().dialect.name == "postgresql":
            await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await session.commit()
