"""Transactions: the request edge (or a worker step) owns the transaction; services never commit.

``on_commit`` registers a callback that runs only once the transaction has committed, e.g. to wake
the delivery engine after a mailing was created.
"""

from __future__ import annotations

import contextlib
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


class Lane:
    """A session kept open by one loop of the delivery engine for its units of work, one after
    another: no session to open and close around each (under load every await, and closing a
    session takes one, waits for a turn of a busy event loop).

    On PostgreSQL each unit is one statement, atomic on its own, run in autocommit: no BEGIN and
    COMMIT round trips either. Elsewhere (SQLite, where the same work takes several statements)
    each unit is a transaction. A unit that fails is rolled back; after a database outage the
    connection is dropped and the next unit gets a new one.
    """

    def __init__(self, factory: async_sessionmaker[AsyncSession]) -> None:
        self._factory = factory
        self._session: AsyncSession | None = None

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[AsyncSession]:
        session = self._session
        if session is None:
            session = self._session = self._factory()
        if session.get_bind().dialect.name == "postgresql":
            await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        try:
            yield session
        except BaseException as exc:
            await self._discard(session, exc)
            raise
        await session.commit()

    async def _discard(self, session: AsyncSession, exc: BaseException) -> None:
        from sqlalchemy.exc import InterfaceError, OperationalError

        self._session = None
        with contextlib.suppress(Exception):
            if isinstance(exc, OperationalError | InterfaceError | OSError | TimeoutError):
                await (await session.connection()).invalidate()
        with contextlib.suppress(Exception):
            await session.rollback()
        with contextlib.suppress(Exception):
            await session.close()

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            with contextlib.suppress(Exception):
                await session.close()
