"""Transactions: the request edge (or a worker step) owns the transaction; services never commit.

``on_commit`` registers a callback that runs only once the transaction has committed, e.g. to wake
the delivery engine after a mailing was created. ``subscribe`` and ``publish`` do the same for
code that has no callback at hand: whoever runs a loop subscribes to a topic on the session
factory, and a transaction that publishes the topic wakes it once it has committed (in this
process; other processes learn of it by polling, or by NOTIFY on PostgreSQL).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

_AFTER_COMMIT = "notiflow.after_commit"
_LISTENERS = "notiflow.listeners"


def on_commit(session: AsyncSession, callback: Callable[[], None], *, first: bool = False) -> None:
    """Call ``callback`` once the transaction has committed: after those registered before it,
    or, with ``first``, before them."""
    callbacks: list[Callable[[], None]] = session.info.setdefault(_AFTER_COMMIT, [])
    if first:
        callbacks.insert(0, callback)
    else:
        callbacks.append(callback)


def subscribe(
    factory: async_sessionmaker[AsyncSession], topic: str, callback: Callable[[], None]
) -> Callable[[], None]:
    """Call ``callback`` after each commit of a session of ``factory`` that published ``topic``;
    return the function that stops it. Sessions made before the first subscription of a factory
    do not see it."""
    info: dict[str, Any] | None = factory.kw.get("info")
    if info is None or _LISTENERS not in info:
        info = {**(info or {}), _LISTENERS: {}}
        factory.configure(info=info)
    listeners: dict[str, list[Callable[[], None]]] = info[_LISTENERS]
    listeners.setdefault(topic, []).append(callback)

    def unsubscribe() -> None:
        with contextlib.suppress(ValueError):
            listeners[topic].remove(callback)

    return unsubscribe


def publish(session: AsyncSession, topic: str) -> None:
    """Wake the subscribers of ``topic`` (in this process) once this transaction commits."""
    callbacks = session.info.get(_LISTENERS, {}).get(topic)
    if not callbacks:
        return
    pending: list[Callable[[], None]] = session.info.setdefault(_AFTER_COMMIT, [])
    for callback in callbacks:
        if callback not in pending:
            pending.append(callback)


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
        await commit(session)

    async def _discard(self, session: AsyncSession, exc: BaseException) -> None:
        from sqlalchemy.exc import InterfaceError, OperationalError

        self._session = None
        session.info.pop(_AFTER_COMMIT, None)
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
