"""Engines per dialect and the session factory."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, NullPool

from notiflow.config import Settings


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    # The driver's own transaction handling starts a transaction only before statements that
    # begin with INSERT/UPDATE/DELETE, so a `WITH … UPDATE` would run outside it. Notiflow begins
    # every transaction itself instead (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets readers run while one writer writes; foreign keys make ON DELETE rules work;
    # busy_timeout makes a second writer wait instead of failing at once.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    # IMMEDIATE takes the write lock up front: SQLite has one writer at a time anyway, and a
    # transaction that read first could otherwise fail to upgrade after another one committed.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(settings: Settings, *, pooled: bool = True) -> AsyncEngine:
    """Build the engine for ``settings.database_url`` with the options its dialect needs.

    ``pooled=False`` opens a connection per use: for callers that run each request on a new
    event loop (asyncpg connections belong to the loop that opened them).
    """
    kwargs: dict[str, Any] = {}
    if settings.is_sqlite:
        kwargs["connect_args"] = {"timeout": 30}
    if not pooled:
        kwargs["poolclass"] = NullPool
    elif not settings.is_sqlite:
        kwargs["pool_size"] = settings.database_pool_size
        kwargs["max_overflow"] = settings.database_pool_size
        # No ping before each use (a round trip every time, on the engine's hot path): a
        # connection found broken invalidates the whole pool, the engine's loops retry, and an
        # API request that meets it answers 503 (core.errors).
    # Errors and logs show the SQL but never its parameters: they carry phones and texts.
    engine = create_async_engine(settings.database_url, hide_parameters=True, **kwargs)
    if settings.is_sqlite:
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
